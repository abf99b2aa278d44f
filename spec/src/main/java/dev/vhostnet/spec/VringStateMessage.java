package dev.vhostnet.spec;

/** {@code struct vhost_vring_state}: index (u32), num (u32). SET_VRING_NUM/BASE, GET_VRING_BASE, SET_VRING_ENABLE. */
public final class VringStateMessage extends Flyweight {
    public static final int LENGTH = 8;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long index() {
        return u32(0);
    }

    public VringStateMessage index(final long index) {
        u32(0, index);
        return this;
    }

    public long num() {
        return u32(4);
    }

    public VringStateMessage num(final long num) {
        u32(4, num);
        return this;
    }
}
