package dev.vhostnet.dataplane.testing;

import dev.vhostnet.spec.SplitRingLayout;
import org.agrona.concurrent.UnsafeBuffer;

import static dev.vhostnet.spec.SplitRingLayout.AVAIL_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_IDX;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_RING;
import static dev.vhostnet.spec.SplitRingLayout.DESC_ADDR;
import static dev.vhostnet.spec.SplitRingLayout.DESC_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.DESC_LEN;
import static dev.vhostnet.spec.SplitRingLayout.DESC_NEXT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_SIZE;
import static dev.vhostnet.spec.SplitRingLayout.USED_ELEM_SIZE;
import static dev.vhostnet.spec.SplitRingLayout.USED_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.USED_IDX;
import static dev.vhostnet.spec.SplitRingLayout.USED_RING;

/**
 * The driver side of a split ring written by hand, byte by byte, so tests can build any chain, well-formed
 * or not. Offsets are into a {@link TestMemory}; addresses the device sees are {@code gpaBase + offset}
 * (descriptors) and {@code uvaBase + offset} (ring addresses).
 */
public final class DriverRing {
    private final UnsafeBuffer mem;
    private final int size;
    private final long gpaBase;
    private final long uvaBase;
    private final int descOffset;
    private final int availOffset;
    private final int usedOffset;
    private int availIdx;

    public DriverRing(final TestMemory memory, final int size, final long gpaBase, final long uvaBase,
                      final int descOffset, final int availOffset, final int usedOffset) {
        this.mem = memory.buffer();
        this.size = size;
        this.gpaBase = gpaBase;
        this.uvaBase = uvaBase;
        this.descOffset = descOffset;
        this.availOffset = availOffset;
        this.usedOffset = usedOffset;
    }

    public long descUva() {
        return uvaBase + descOffset;
    }

    public long availUva() {
        return uvaBase + availOffset;
    }

    public long usedUva() {
        return uvaBase + usedOffset;
    }

    public long gpa(final long offset) {
        return gpaBase + offset;
    }

    /** Descriptor {@code i} of the ring's table. */
    public DriverRing desc(final int i, final long addr, final int len, final int flags, final int next) {
        return descAt(descOffset, i, addr, len, flags, next);
    }

    /** Descriptor {@code i} of a table at {@code tableOffset} (an indirect table). */
    public DriverRing descAt(final int tableOffset, final int i, final long addr, final int len, final int flags,
                             final int next) {
        final int at = tableOffset + i * DESC_SIZE;
        mem.putLong(at + DESC_ADDR, addr);
        mem.putInt(at + DESC_LEN, len);
        mem.putShort(at + DESC_FLAGS, (short) flags);
        mem.putShort(at + DESC_NEXT, (short) next);
        return this;
    }

    /** Put {@code head} in the next avail slot and publish it (release store of avail->idx). */
    public DriverRing offer(final int head) {
        mem.putShort(availOffset + AVAIL_RING + 2 * (availIdx & (size - 1)), (short) head);
        availIdx = (availIdx + 1) & 0xFFFF;
        mem.putShortVolatile(availOffset + AVAIL_IDX, (short) availIdx);
        return this;
    }

    /** Publish an arbitrary avail->idx (and make it the shadow index). */
    public void setAvailIdx(final int idx) {
        availIdx = idx & 0xFFFF;
        mem.putShortVolatile(availOffset + AVAIL_IDX, (short) availIdx);
    }

    /** Both indexes as a driver resuming at {@code base} would have them. */
    public void startAt(final int base) {
        setAvailIdx(base);
        mem.putShortVolatile(usedOffset + USED_IDX, (short) base);
    }

    public void setAvailFlags(final int flags) {
        mem.putShortVolatile(availOffset + AVAIL_FLAGS, (short) flags);
    }

    public void setUsedEvent(final int idx) {
        mem.putShortVolatile(availOffset + SplitRingLayout.usedEventOffset(size), (short) idx);
    }

    public int usedIdx() {
        return mem.getShortVolatile(usedOffset + USED_IDX) & 0xFFFF;
    }

    public int usedFlags() {
        return mem.getShortVolatile(usedOffset + USED_FLAGS) & 0xFFFF;
    }

    public int availEvent() {
        return mem.getShortVolatile(usedOffset + SplitRingLayout.availEventOffset(size)) & 0xFFFF;
    }

    /** id of the used entry for free-running used index {@code idx}. */
    public int usedId(final int idx) {
        return mem.getInt(usedOffset + USED_RING + USED_ELEM_SIZE * (idx & (size - 1)));
    }

    public int usedLen(final int idx) {
        return mem.getInt(usedOffset + USED_RING + USED_ELEM_SIZE * (idx & (size - 1)) + 4);
    }
}
