package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/**
 * DIRTY_PAGE_LOGGING payload (24 bytes): op u16 (STOP = 0, START = 1), 6 reserved bytes, log_size u64,
 * mmap_offset u64. START carries one fd (the dirty bitmap); STOP none.
 */
public final class DirtyPageLoggingMessage extends Flyweight {
    public static final int LENGTH = 24;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int op() {
        return u16(0);
    }

    public DirtyPageLoggingMessage op(final int v) {
        u16(0, v);
        u16(2, 0);
        u32(4, 0);
        return this;
    }

    public long logSize() {
        return u64(8);
    }

    public DirtyPageLoggingMessage logSize(final long v) {
        u64(8, v);
        return this;
    }

    public long mmapOffset() {
        return u64(16);
    }

    public DirtyPageLoggingMessage mmapOffset(final long v) {
        u64(16, v);
        return this;
    }

    public int expectedFds() {
        return op() == VhostPci.LOG_START ? 1 : 0;
    }
}
