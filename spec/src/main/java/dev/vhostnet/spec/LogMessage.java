package dev.vhostnet.spec;

/** SET_LOG_BASE payload: size of the dirty log (u64) and its offset into the passed fd (u64). */
public final class LogMessage extends Flyweight {
    public static final int LENGTH = 16;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long mmapSize() {
        return u64(0);
    }

    public LogMessage mmapSize(final long v) {
        u64(0, v);
        return this;
    }

    public long mmapOffset() {
        return u64(8);
    }

    public LogMessage mmapOffset(final long v) {
        u64(8, v);
        return this;
    }
}
