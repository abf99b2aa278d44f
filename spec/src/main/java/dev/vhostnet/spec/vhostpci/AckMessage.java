package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/**
 * ACK payload: acked_seq u64, acked_type u16, status u16, reason u32, value u64, nvqs u32, reserved u32
 * (32 bytes), then {@code nvqs} 8-byte {@link VirtqState} entries (final queue positions of a DEL_DONE).
 */
public final class AckMessage extends Flyweight {
    public static final int HEADER_LENGTH = 32;
    public static final int MAX_LENGTH = HEADER_LENGTH + VhostPci.MAX_VIRTQUEUES * VirtqState.LENGTH;

    private final VirtqState state = new VirtqState();

    @Override
    public int encodedLength() {
        return lengthFor((int) Math.min(nvqs(), VhostPci.MAX_VIRTQUEUES));
    }

    public static int lengthFor(final int nvqs) {
        return HEADER_LENGTH + nvqs * VirtqState.LENGTH;
    }

    public long ackedSeq() {
        return u64(0);
    }

    public AckMessage ackedSeq(final long v) {
        u64(0, v);
        return this;
    }

    public int ackedType() {
        return u16(8);
    }

    public AckMessage ackedType(final int v) {
        u16(8, v);
        return this;
    }

    public int status() {
        return u16(10);
    }

    public AckMessage status(final int v) {
        u16(10, v);
        return this;
    }

    public long reason() {
        return u32(12);
    }

    public AckMessage reason(final long v) {
        u32(12, v);
        return this;
    }

    public long value() {
        return u64(16);
    }

    public AckMessage value(final long v) {
        u64(16, v);
        return this;
    }

    public long nvqs() {
        return u32(24);
    }

    public AckMessage nvqs(final long v) {
        u32(24, v);
        u32(28, 0);
        return this;
    }

    /** The i-th final queue state; the flyweight returned is reused by the next call. */
    public VirtqState state(final int i) {
        return state.wrap(buffer, offset + HEADER_LENGTH + i * VirtqState.LENGTH);
    }

    public boolean success() {
        return VhostPci.isSuccess(status());
    }
}
