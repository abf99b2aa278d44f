package dev.vhostnet.e2e;

/**
 * The feature bits the e2e tests check in a guest's negotiated feature string
 * (/sys/class/net/eth0/device/features: one '0'/'1' per bit, bit 0 first). Numbers from the
 * virtio 1.2 specification, sections 5.1.3 and 6.
 */
public enum VirtioFeatureBits {
    CSUM(0),
    GUEST_CSUM(1),
    GUEST_TSO4(7),
    GUEST_TSO6(8),
    HOST_TSO4(11),
    HOST_TSO6(12),
    MRG_RXBUF(15),
    CTRL_VQ(17),
    MQ(22),
    VERSION_1(32),
    RING_PACKED(34);

    private final int bit;

    VirtioFeatureBits(int bit) {
        this.bit = bit;
    }

    public int bit() {
        return bit;
    }

    /** Whether {@code features} (the sysfs bit string) has this bit set. */
    public boolean in(String features) {
        if (features == null || features.length() <= bit) {
            throw new IllegalArgumentException("feature string too short for bit " + bit + ": " + features);
        }
        return features.charAt(bit) == '1';
    }
}
