package dev.vhostnet.spec;

/**
 * {@code struct vhost_vring_addr} (40 bytes): index u32, flags u32, then front-end virtual addresses of the
 * descriptor table, used ring and available ring (u64 each, in that order) and the guest address of the used
 * ring for dirty logging.
 */
public final class VringAddrMessage extends Flyweight {
    public static final int LENGTH = 40;
    /** flags bit 0: log writes to the used ring at {@link #logGuestAddr()}. */
    public static final int F_LOG = 1;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long index() {
        return u32(0);
    }

    public VringAddrMessage index(final long v) {
        u32(0, v);
        return this;
    }

    public long flags() {
        return u32(4);
    }

    public VringAddrMessage flags(final long v) {
        u32(4, v);
        return this;
    }

    public long descUserAddr() {
        return u64(8);
    }

    public VringAddrMessage descUserAddr(final long v) {
        u64(8, v);
        return this;
    }

    public long usedUserAddr() {
        return u64(16);
    }

    public VringAddrMessage usedUserAddr(final long v) {
        u64(16, v);
        return this;
    }

    public long availUserAddr() {
        return u64(24);
    }

    public VringAddrMessage availUserAddr(final long v) {
        u64(24, v);
        return this;
    }

    public long logGuestAddr() {
        return u64(32);
    }

    public VringAddrMessage logGuestAddr(final long v) {
        u64(32, v);
        return this;
    }
}
