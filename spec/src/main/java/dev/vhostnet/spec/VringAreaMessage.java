package dev.vhostnet.spec;

/**
 * {@code VhostUserVringArea} (24 bytes): u64 whose bits 0-7 are the queue index and bit 8 the "no fd" flag,
 * then size and offset (u64) of the area within the passed fd.
 */
public final class VringAreaMessage extends Flyweight {
    public static final int LENGTH = 24;
    public static final long INDEX_MASK = 0xFF;
    public static final long NOFD_FLAG = 1L << 8;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long indexAndFlags() {
        return u64(0);
    }

    public VringAreaMessage indexAndFlags(final long v) {
        u64(0, v);
        return this;
    }

    public int queueIndex() {
        return (int) (indexAndFlags() & INDEX_MASK);
    }

    public boolean noFd() {
        return (indexAndFlags() & NOFD_FLAG) != 0;
    }

    public long size() {
        return u64(8);
    }

    public VringAreaMessage size(final long v) {
        u64(8, v);
        return this;
    }

    public long areaOffset() {
        return u64(16);
    }

    public VringAreaMessage areaOffset(final long v) {
        u64(16, v);
        return this;
    }
}
