package dev.vhostnet.spec;

import org.agrona.MutableDirectBuffer;

import java.nio.ByteOrder;

/**
 * Base of every wire-format codec: a view over a region of a buffer, reused by re-wrapping so that
 * decoding and encoding never allocate. All vhost-user and virtio 1.x fields are little-endian.
 */
public abstract class Flyweight {
    protected static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    protected MutableDirectBuffer buffer;
    protected int offset;

    /** Point this flyweight at {@code buffer[offset .. offset + encodedLength())}. */
    @SuppressWarnings("unchecked")
    public <T extends Flyweight> T wrap(final MutableDirectBuffer buffer, final int offset) {
        this.buffer = buffer;
        this.offset = offset;
        return (T) this;
    }

    public MutableDirectBuffer buffer() {
        return buffer;
    }

    public int offset() {
        return offset;
    }

    /** Size in bytes of the fixed layout this flyweight covers. */
    public abstract int encodedLength();

    /** Zero the whole layout (padding included), so that encoders start from a known state. */
    public void clear() {
        buffer.setMemory(offset, encodedLength(), (byte) 0);
    }

    protected long u64(final int at) {
        return buffer.getLong(offset + at, LE);
    }

    protected void u64(final int at, final long value) {
        buffer.putLong(offset + at, value, LE);
    }

    protected long u32(final int at) {
        return buffer.getInt(offset + at, LE) & 0xFFFF_FFFFL;
    }

    protected void u32(final int at, final long value) {
        buffer.putInt(offset + at, (int) value, LE);
    }

    protected int u16(final int at) {
        return buffer.getShort(offset + at, LE) & 0xFFFF;
    }

    protected void u16(final int at, final int value) {
        buffer.putShort(offset + at, (short) value, LE);
    }

    protected int u8(final int at) {
        return buffer.getByte(offset + at) & 0xFF;
    }

    protected void u8(final int at, final int value) {
        buffer.putByte(offset + at, (byte) value);
    }
}
