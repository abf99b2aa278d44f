package dev.vhostnet.dataplane.virtq;

import org.agrona.concurrent.UnsafeBuffer;

import java.lang.invoke.VarHandle;
import java.util.Arrays;

import static dev.vhostnet.spec.PackedRingLayout.DESC_F_AVAIL;
import static dev.vhostnet.spec.PackedRingLayout.DESC_F_USED;
import static dev.vhostnet.spec.PackedRingLayout.DESC_FLAGS;
import static dev.vhostnet.spec.PackedRingLayout.DESC_SIZE;

/**
 * Inflight tracking of one packed virtqueue in its region of the {@link InflightBuffer}, the format and the
 * algorithms of the vhost-user specification ("Inflight I/O tracking"):
 *
 * <pre>
 * QueueRegionPacked: features u64 | version u16 | desc_num u16 | free_head u16 | old_free_head u16 | used_idx u16
 *                    | old_used_idx u16 | used_wrap_counter u8 | old_used_wrap_counter u8 | padding[7] | desc[desc_num]
 *                    (desc[] is 8-byte aligned: it starts at 32)
 * DescStatePacked:   inflight u8 | padding u8 | next u16 | last u16 | num u16 | counter u64 | id u16 | flags u16
 *                    | len u32 | addr u64                                                     (32 bytes)
 * </pre>
 *
 * <p>Entries form a free list; a chain taken from the ring is copied into free entries (a packed ring slot is
 * overwritten by used elements as soon as anything completes, so the descriptors themselves must be kept), its
 * head entry carrying inflight, counter, num and last. The "old" fields are the last consistent state: a chain
 * is committed by old_free_head, a batch of completions by old_free_head / old_used_idx / old_used_wrap_counter
 * after its used flags are written; a reconnect rolls back to them unless the ring shows the batch reached the
 * driver. Fields only this object reads back (free_head while taking chains) are cached and written to the
 * region where the procedure needs them.
 *
 * <p>Dataplane thread only.
 */
final class PackedInflight {
    static final int HEADER = 32;
    static final int ENTRY = 32;
    static final int VERSION_1 = 1;

    private static final int FEATURES = 0;
    private static final int VERSION = 8;
    private static final int DESC_NUM = 10;
    private static final int FREE_HEAD = 12;
    private static final int OLD_FREE_HEAD = 14;
    private static final int USED_IDX = 16;
    private static final int OLD_USED_IDX = 18;
    private static final int USED_WRAP = 20;
    private static final int OLD_USED_WRAP = 21;

    private static final int E_INFLIGHT = 0;
    private static final int E_NEXT = 2;
    private static final int E_LAST = 4;
    private static final int E_NUM = 6;
    private static final int E_COUNTER = 8;
    private static final int E_ID = 16;
    private static final int E_FLAGS = 18;
    private static final int E_LEN = 20;
    private static final int E_ADDR = 24;

    private final UnsafeBuffer region;
    private final int entries;
    private int size;
    private long counter;
    private int freeHead;
    /** Head entry of the chain being taken. */
    private int chainSlot;
    /** Head entry of each inflight buffer id, -1 if none. */
    private int[] slotOfId = new int[0];
    private int[] resubmit = new int[0];
    private int resubmitNext;
    private int resubmitCount;
    private int markResubmit;
    private int markFreeHead;

    PackedInflight(final InflightBuffer.Region r) {
        if (r.length() < HEADER + (long) ENTRY * r.entries()) {
            throw new IllegalArgumentException("inflight region of " + r.length() + " bytes for " + r.entries() + " entries");
        }
        this.region = new UnsafeBuffer(r.address(), (int) r.length());
        this.entries = r.entries();
    }

    int entries() {
        return entries;
    }

    private static int entry(final int i) {
        return HEADER + ENTRY * i;
    }

    private int u16(final int at) {
        return region.getShort(at) & 0xFFFF;
    }

    /**
     * Ring start with the device positions the front-end gave ({@code usedIdx}/{@code usedWrap}); {@code ring}
     * is the mapped descriptor ring. A fresh or foreign region is initialized and -1 returned (start where the
     * front-end said). Otherwise the spec's reconnect procedure runs, inflight chains are queued for
     * resubmission in counter order, and the position to continue from is returned in the vhost-user base
     * encoding (avail index | avail wrap << 15 | (used index | used wrap << 15) << 16, as an unsigned long): used from the region,
     * avail after every descriptor the inflight chains occupy (each chain taken was completed or is inflight).
     */
    long start(final int ringSize, final int usedIdx, final boolean usedWrap, final UnsafeBuffer ring) {
        size = ringSize;
        if (slotOfId.length < ringSize) {
            slotOfId = new int[ringSize];
        }
        Arrays.fill(slotOfId, -1);
        resubmitNext = 0;
        resubmitCount = 0;
        markResubmit = 0;
        if (u16(VERSION) != VERSION_1 || u16(DESC_NUM) != (entries & 0xFFFF)) {
            initialize(usedIdx, usedWrap);
            return -1;
        }
        // 1. A batch of completions in progress: did its used flags reach the ring?
        if (u16(USED_IDX) != u16(OLD_USED_IDX) || region.getByte(USED_WRAP) != region.getByte(OLD_USED_WRAP)) {
            final int oldUsed = u16(OLD_USED_IDX);
            final boolean oldWrap = region.getByte(OLD_USED_WRAP) != 0;
            if (oldUsed < ringSize) {
                final int flags = ring.getShortVolatile(oldUsed * DESC_SIZE + DESC_FLAGS) & (DESC_F_AVAIL | DESC_F_USED);
                final int stillAvailable = oldWrap ? DESC_F_AVAIL : DESC_F_USED;
                if (flags != stillAvailable) {
                    // The driver may have seen it: commit the batch.
                    region.putShort(OLD_FREE_HEAD, region.getShort(FREE_HEAD));
                    region.putShort(OLD_USED_IDX, region.getShort(USED_IDX));
                    region.putByte(OLD_USED_WRAP, region.getByte(USED_WRAP));
                }
            }
        }
        // 2. Roll back anything in progress.
        region.putShort(FREE_HEAD, region.getShort(OLD_FREE_HEAD));
        region.putShort(USED_IDX, region.getShort(OLD_USED_IDX));
        region.putByte(USED_WRAP, region.getByte(OLD_USED_WRAP));
        final int used = u16(OLD_USED_IDX);
        final boolean wrap = region.getByte(OLD_USED_WRAP) != 0;
        if (used >= ringSize) {
            initialize(usedIdx, usedWrap);
            return -1;
        }
        // 3. Entries on the free list are not inflight.
        int e = u16(FREE_HEAD);
        for (int steps = 0; e < entries && steps < entries; steps++) {
            region.putByte(entry(e) + E_INFLIGHT, (byte) 0);
            e = u16(entry(e) + E_NEXT);
        }
        // 4. What is left inflight, in fetch order.
        final boolean[] taken = new boolean[entries];
        final int[] heads = new int[entries];
        int n = 0;
        long descs = 0;
        long max = -1;
        for (int i = 0; i < entries; i++) {
            if (region.getByte(entry(i) + E_INFLIGHT) == 0) {
                continue;
            }
            final int num = u16(entry(i) + E_NUM);
            if (!claimChain(i, num, taken)) {
                region.putByte(entry(i) + E_INFLIGHT, (byte) 0); // malformed: drop it rather than resubmit garbage
                continue;
            }
            heads[n++] = i;
            descs += num;
            max = Math.max(max, region.getLong(entry(i) + E_COUNTER));
        }
        if (descs > ringSize) {
            initialize(usedIdx, usedWrap); // more than the ring holds: not this ring's history
            return -1;
        }
        final Integer[] order = new Integer[n];
        for (int k = 0; k < n; k++) {
            order[k] = heads[k];
        }
        Arrays.sort(order, (a, b) -> Long.compareUnsigned(region.getLong(entry(a) + E_COUNTER),
            region.getLong(entry(b) + E_COUNTER)));
        resubmit = new int[n];
        for (int k = 0; k < n; k++) {
            resubmit[k] = order[k];
        }
        resubmitCount = n;
        counter = max + 1;
        // Relink every entry no inflight chain holds, so entries lost by a crash between steps return to the list.
        relinkFree(taken);
        int avail = used + (int) descs;
        boolean availWrap = wrap;
        if (avail >= ringSize) {
            avail -= ringSize;
            availWrap = !availWrap;
        }
        // As a long: with the used wrap counter set, bit 31 makes the int negative, and -1 means "fresh".
        return ((avail | (availWrap ? 0x8000 : 0)) | ((used | (wrap ? 0x8000 : 0)) << 16)) & 0xFFFF_FFFFL;
    }

    /** Mark the {@code num} entries of the chain at {@code head}; false if they leave the region or overlap. */
    private boolean claimChain(final int head, final int num, final boolean[] taken) {
        if (num < 1 || num > size) {
            return false;
        }
        int j = head;
        final int[] seen = new int[num];
        for (int k = 0; k < num; k++) {
            if (j >= entries || taken[j]) {
                for (int u = 0; u < k; u++) {
                    taken[seen[u]] = false;
                }
                return false;
            }
            taken[j] = true;
            seen[k] = j;
            j = u16(entry(j) + E_NEXT);
        }
        return true;
    }

    private void relinkFree(final boolean[] taken) {
        int first = entries;
        int prev = -1;
        for (int i = 0; i < entries; i++) {
            if (taken[i]) {
                continue;
            }
            region.putByte(entry(i) + E_INFLIGHT, (byte) 0);
            if (prev < 0) {
                first = i;
            } else {
                region.putShort(entry(prev) + E_NEXT, (short) i);
            }
            prev = i;
        }
        if (prev >= 0) {
            region.putShort(entry(prev) + E_NEXT, (short) entries);
        }
        freeHead = first;
        region.putShort(FREE_HEAD, (short) first);
        VarHandle.storeStoreFence();
        region.putShort(OLD_FREE_HEAD, (short) first);
    }

    private void initialize(final int usedIdx, final boolean usedWrap) {
        region.setMemory(0, HEADER + ENTRY * entries, (byte) 0);
        region.putLong(FEATURES, 0);
        region.putShort(DESC_NUM, (short) entries);
        for (int i = 0; i < entries; i++) {
            region.putShort(entry(i) + E_NEXT, (short) (i + 1)); // the last one points past the end: list end
        }
        region.putShort(FREE_HEAD, (short) 0);
        region.putShort(OLD_FREE_HEAD, (short) 0);
        region.putShort(USED_IDX, (short) usedIdx);
        region.putShort(OLD_USED_IDX, (short) usedIdx);
        region.putByte(USED_WRAP, (byte) (usedWrap ? 1 : 0));
        region.putByte(OLD_USED_WRAP, (byte) (usedWrap ? 1 : 0));
        VarHandle.storeStoreFence();
        region.putShort(VERSION, (short) VERSION_1);
        freeHead = 0;
        counter = 0;
    }

    // ---------------------------------------------------------------------------------------------
    // Taking chains

    int pendingResubmits() {
        return resubmitCount - resubmitNext;
    }

    int nextResubmit() {
        return resubmit[resubmitNext++];
    }

    /**
     * Ring descriptor {@code descIndex} (0: head) of the chain being taken, {@code last} if it ends the chain:
     * copied into the next free entry; the last one makes the chain inflight and commits it (old_free_head).
     *
     * @return false if no entry is free (more outstanding descriptors than the ring holds: ids reused)
     */
    boolean onDescriptor(final int descIndex, final boolean last, final long addr, final int len, final int flags,
                         final int id) {
        final int slot = freeHead;
        if (slot >= entries) {
            return false;
        }
        if (descIndex == 0) {
            chainSlot = slot;
        }
        final int at = HEADER + ENTRY * slot;
        region.putLong(at + E_ADDR, addr);
        region.putInt(at + E_LEN, len);
        region.putShort(at + E_FLAGS, (short) flags);
        region.putShort(at + E_ID, (short) id);
        freeHead = region.getShort(at + E_NEXT) & 0xFFFF;
        if (last) {
            final int h = HEADER + ENTRY * chainSlot;
            region.putShort(h + E_LAST, (short) slot);
            region.putShort(h + E_NUM, (short) (descIndex + 1));
            region.putLong(h + E_COUNTER, counter++);
            region.putByte(h + E_INFLIGHT, (byte) 1);
            region.putShort(OLD_FREE_HEAD, (short) freeHead);
        }
        return true;
    }

    /** The chain just taken (from the ring or resubmitted from {@code slot}) is buffer {@code id}. */
    void bind(final int id) {
        slotOfId[id] = chainSlot;
    }

    void bindResubmitted(final int id, final int slot) {
        slotOfId[id] = slot;
    }

    // Stored descriptors of an inflight chain, for resubmission.
    int num(final int slot) {
        return u16(entry(slot) + E_NUM);
    }

    int next(final int slot) {
        return u16(entry(slot) + E_NEXT);
    }

    long addr(final int slot) {
        return region.getLong(entry(slot) + E_ADDR);
    }

    int len(final int slot) {
        return region.getInt(entry(slot) + E_LEN);
    }

    int flags(final int slot) {
        return u16(entry(slot) + E_FLAGS);
    }

    int id(final int slot) {
        return u16(entry(slot) + E_ID);
    }

    // ---------------------------------------------------------------------------------------------
    // Completing

    /**
     * Before the used flags of a batch are written: return the batch's entries to the free list and record the
     * used position after the batch.
     */
    void linkBatch(final int[] ids, final int n, final int usedIdx, final boolean usedWrap) {
        int head = freeHead;
        for (int i = 0; i < n; i++) {
            final int id = ids[i];
            final int e = id < slotOfId.length ? slotOfId[id] : -1;
            if (e < 0) {
                continue;
            }
            final int last = u16(entry(e) + E_LAST);
            if (last < entries) {
                region.putShort(entry(last) + E_NEXT, (short) head);
                head = e;
            }
        }
        freeHead = head;
        region.putShort(FREE_HEAD, (short) head);
        region.putShort(USED_IDX, (short) usedIdx);
        region.putByte(USED_WRAP, (byte) (usedWrap ? 1 : 0));
    }

    /** After the batch's used flags were released to the driver: not inflight any more; commit. */
    void completeBatch(final int[] ids, final int n, final int usedIdx, final boolean usedWrap) {
        for (int i = 0; i < n; i++) {
            final int id = ids[i];
            final int e = id < slotOfId.length ? slotOfId[id] : -1;
            if (e >= 0) {
                region.putByte(entry(e) + E_INFLIGHT, (byte) 0);
                slotOfId[id] = -1;
            }
        }
        VarHandle.storeStoreFence();
        region.putShort(OLD_FREE_HEAD, (short) freeHead);
        region.putShort(OLD_USED_IDX, (short) usedIdx);
        region.putByte(OLD_USED_WRAP, (byte) (usedWrap ? 1 : 0));
    }

    void mark() {
        markResubmit = resubmitNext;
        markFreeHead = freeHead;
    }

    /**
     * Give back every chain taken since the last {@link #mark()}: resubmitted ones return to the resubmit list,
     * chains taken from the ring leave the inflight state and their entries return to the free list.
     */
    void rewind() {
        resubmitNext = markResubmit;
        int e = markFreeHead;
        for (int steps = 0; e != freeHead && e < entries && steps < entries; steps++) {
            region.putByte(entry(e) + E_INFLIGHT, (byte) 0);
            final int num = Math.min(u16(entry(e) + E_NUM), entries);
            int j = e;
            for (int k = 0; k < num && j < entries; k++) {
                j = u16(entry(j) + E_NEXT);
            }
            e = j;
        }
        freeHead = markFreeHead;
        region.putShort(FREE_HEAD, (short) freeHead);
        region.putShort(OLD_FREE_HEAD, (short) freeHead);
    }

    // ---------------------------------------------------------------------------------------------
    // Inspection (tests)

    boolean isInflight(final int slot) {
        return region.getByte(entry(slot) + E_INFLIGHT) != 0;
    }

    int inflightCount() {
        int n = 0;
        for (int i = 0; i < entries; i++) {
            if (isInflight(i)) {
                n++;
            }
        }
        return n;
    }
}
