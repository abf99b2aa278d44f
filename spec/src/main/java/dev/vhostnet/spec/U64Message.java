package dev.vhostnet.spec;

/**
 * The common u64 payload: features, protocol features, queue number, MTU, status, max memory slots, and the
 * vring index + flags of SET_VRING_KICK/CALL/ERR (bits 0-7 index, bit 8 "no fd": poll instead).
 */
public final class U64Message extends Flyweight {
    public static final int LENGTH = 8;
    public static final long VRING_INDEX_MASK = 0xFF;
    public static final long VRING_NOFD_FLAG = 1L << 8;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long value() {
        return u64(0);
    }

    public U64Message value(final long v) {
        u64(0, v);
        return this;
    }
}
