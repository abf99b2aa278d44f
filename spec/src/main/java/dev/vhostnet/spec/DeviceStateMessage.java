package dev.vhostnet.spec;

/** SET_DEVICE_STATE_FD payload: transfer direction (u32) and migration phase (u32). */
public final class DeviceStateMessage extends Flyweight {
    public static final int LENGTH = 8;
    public static final int DIRECTION_SAVE = 0;
    public static final int DIRECTION_LOAD = 1;
    public static final int PHASE_STOPPED = 0;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long direction() {
        return u32(0);
    }

    public DeviceStateMessage direction(final long v) {
        u32(0, v);
        return this;
    }

    public long phase() {
        return u32(4);
    }

    public DeviceStateMessage phase(final long v) {
        u32(4, v);
        return this;
    }
}
