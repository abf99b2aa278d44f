package dev.vhostnet.spec;

/** virtio device status bits (SET_STATUS / GET_STATUS payload, u64 whose low byte is the status). */
public final class VirtioDeviceStatus {
    public static final int ACKNOWLEDGE = 1;
    public static final int DRIVER = 2;
    public static final int DRIVER_OK = 4;
    public static final int FEATURES_OK = 8;
    public static final int DEVICE_NEEDS_RESET = 64;
    public static final int FAILED = 128;

    private VirtioDeviceStatus() {
    }
}
