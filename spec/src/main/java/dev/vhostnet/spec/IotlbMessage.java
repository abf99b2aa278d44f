package dev.vhostnet.spec;

/**
 * {@code struct vhost_iotlb_msg} (32 bytes with its tail padding): iova, size, uaddr (u64 each), perm (u8),
 * type (u8).
 */
public final class IotlbMessage extends Flyweight {
    public static final int LENGTH = 32;

    public static final int TYPE_MISS = 1;
    public static final int TYPE_UPDATE = 2;
    public static final int TYPE_INVALIDATE = 3;
    public static final int TYPE_ACCESS_FAIL = 4;
    public static final int TYPE_BATCH_BEGIN = 5;
    public static final int TYPE_BATCH_END = 6;

    public static final int PERM_NONE = 0;
    public static final int PERM_RO = 1;
    public static final int PERM_WO = 2;
    public static final int PERM_RW = 3;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long iova() {
        return u64(0);
    }

    public IotlbMessage iova(final long v) {
        u64(0, v);
        return this;
    }

    public long size() {
        return u64(8);
    }

    public IotlbMessage size(final long v) {
        u64(8, v);
        return this;
    }

    public long userAddr() {
        return u64(16);
    }

    public IotlbMessage userAddr(final long v) {
        u64(16, v);
        return this;
    }

    public int perm() {
        return u8(24);
    }

    public IotlbMessage perm(final int v) {
        u8(24, v);
        return this;
    }

    public int type() {
        return u8(25);
    }

    public IotlbMessage type(final int v) {
        u8(25, v);
        return this;
    }
}
