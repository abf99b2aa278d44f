package dev.vhostnet.dataplane.virtq;

import org.agrona.concurrent.UnsafeBuffer;

import java.lang.invoke.VarHandle;
import java.util.Arrays;

import static dev.vhostnet.spec.SplitRingLayout.AVAIL_RING;

/**
 * Inflight tracking of one split virtqueue in its region of the {@link InflightBuffer}, the format and the
 * algorithms of the vhost-user specification ("Inflight I/O tracking"):
 *
 * <pre>
 * QueueRegionSplit: features u64 | version u16 | desc_num u16 | last_batch_head u16 | used_idx u16 | desc[desc_num]
 * DescStateSplit:   inflight u8 | padding[5] | next u16 | counter u64                       (16 bytes)
 * </pre>
 *
 * <p>Costs on the data path: a pop stores the head's counter and inflight flag; a completion records its head
 * in a private array; a publish links the batch (one store per entry) before the release store of used->idx
 * and clears the inflight flags (one store per entry) after it, then stores used_idx.
 *
 * <p>Crash consistency: the back-end may die (SIGKILL) between any two of these stores. Stores to a shared
 * mapping survive the process; only their order matters, and only the order the compiled code issues them in
 * (the CPU's store buffer drains when the kernel takes the dying thread). The batch links are ordered before
 * used->idx by its release store, the inflight clears before used_idx by a store-store fence. On reconnect,
 * used_idx != used->idx means the last batch was published but its flags may not be cleared: clear them.
 *
 * <p>Dataplane thread only.
 */
final class SplitInflight {
    static final int HEADER = 16;
    static final int ENTRY = 16;
    static final int VERSION_1 = 1;

    private static final int FEATURES = 0;
    private static final int VERSION = 8;
    private static final int DESC_NUM = 10;
    private static final int LAST_BATCH_HEAD = 12;
    private static final int USED_IDX = 14;
    private static final int E_INFLIGHT = 0;
    private static final int E_NEXT = 6;
    private static final int E_COUNTER = 8;

    private final UnsafeBuffer region;
    /** desc_num: entries of the region (the front-end's queue size; the ring may be smaller). */
    private final int entries;
    private int size;
    private int mask;
    /** Global fetch counter: orders resubmission. */
    private long counter;
    /** Head of each queued completion, by used index (not yet published). */
    private int[] usedHeads = new int[0];
    /** Heads found inflight at start, in counter order; popped before the avail ring. */
    private int[] resubmit = new int[0];
    private int resubmitNext;
    private int resubmitCount;
    private int markResubmit;

    SplitInflight(final InflightBuffer.Region r) {
        if (r.length() < HEADER + (long) ENTRY * r.entries()) {
            throw new IllegalArgumentException("inflight region of " + r.length() + " bytes for " + r.entries() + " entries");
        }
        this.region = new UnsafeBuffer(r.address(), (int) r.length());
        this.entries = r.entries();
    }

    int entries() {
        return entries;
    }

    /**
     * Ring start. A fresh (zeroed) or foreign region is initialized and -1 returned: start at the front-end's
     * base. Otherwise this is a reconnect: the spec's procedure runs, inflight heads are queued for
     * resubmission in counter order, and the avail index to continue from is returned: every chain taken from
     * the avail ring was either completed (used->idx counts those) or is inflight, so the next one to take is
     * at used->idx + inflight.
     */
    int start(final int ringSize, final int ringUsedIdx) {
        size = ringSize;
        mask = ringSize - 1;
        if (usedHeads.length < ringSize) {
            usedHeads = new int[ringSize];
        }
        resubmitNext = 0;
        resubmitCount = 0;
        markResubmit = 0;
        if ((region.getShort(VERSION) & 0xFFFF) != VERSION_1 || (region.getShort(DESC_NUM) & 0xFFFF) != (entries & 0xFFFF)) {
            initialize(ringUsedIdx);
            return -1;
        }
        final int regionUsed = region.getShort(USED_IDX) & 0xFFFF;
        if (regionUsed != ringUsedIdx) {
            // The last batch reached used->idx but not used_idx: its inflight flags may still be set.
            final int batch = (ringUsedIdx - regionUsed) & 0xFFFF;
            if (batch > ringSize) {
                initialize(ringUsedIdx); // not this ring's history (the driver reset its rings)
                return -1;
            }
            int j = region.getShort(LAST_BATCH_HEAD) & 0xFFFF;
            for (int k = 0; k < batch && j < entries; k++) {
                region.putByte(entry(j) + E_INFLIGHT, (byte) 0);
                j = region.getShort(entry(j) + E_NEXT) & 0xFFFF;
            }
            VarHandle.storeStoreFence();
            region.putShort(USED_IDX, (short) ringUsedIdx);
        }
        final int[] heads = new int[ringSize];
        int n = 0;
        for (int i = 0; i < entries; i++) {
            if (region.getByte(entry(i) + E_INFLIGHT) != 0) {
                if (i < ringSize) {
                    heads[n++] = i;
                } else {
                    region.putByte(entry(i) + E_INFLIGHT, (byte) 0); // cannot be a head of this ring
                }
            }
        }
        final Integer[] order = new Integer[n];
        long max = -1;
        for (int k = 0; k < n; k++) {
            order[k] = heads[k];
            max = Math.max(max, counterOf(heads[k]));
        }
        Arrays.sort(order, (a, b) -> Long.compareUnsigned(counterOf(a), counterOf(b)));
        resubmit = new int[n];
        for (int k = 0; k < n; k++) {
            resubmit[k] = order[k];
        }
        resubmitCount = n;
        counter = max + 1;
        return (ringUsedIdx + n) & 0xFFFF;
    }

    private void initialize(final int ringUsedIdx) {
        region.setMemory(0, HEADER + ENTRY * entries, (byte) 0);
        region.putLong(FEATURES, 0);
        region.putShort(DESC_NUM, (short) entries);
        region.putShort(LAST_BATCH_HEAD, (short) 0);
        region.putShort(USED_IDX, (short) ringUsedIdx);
        VarHandle.storeStoreFence();
        region.putShort(VERSION, (short) VERSION_1);
        counter = 0;
    }

    private static int entry(final int i) {
        return HEADER + ENTRY * i;
    }

    private long counterOf(final int head) {
        return region.getLong(entry(head) + E_COUNTER);
    }

    // ---------------------------------------------------------------------------------------------
    // Data path

    /** Heads left to resubmit. */
    int pendingResubmits() {
        return resubmitCount - resubmitNext;
    }

    int nextResubmit() {
        return resubmit[resubmitNext++];
    }

    /** A head taken from the avail ring: inflight, in fetch order. */
    void onPop(final int head) {
        final int at = HEADER + ENTRY * head;
        region.putLong(at + E_COUNTER, counter++);
        region.putByte(at + E_INFLIGHT, (byte) 1);
    }

    /** A completion queued at used index {@code usedIdx}. */
    void onUsed(final int usedIdx, final int head) {
        usedHeads[usedIdx & mask] = head;
    }

    /** Before used->idx moves from {@code from} to {@code to}: link the batch from last_batch_head. */
    void linkBatch(final int from, final int to) {
        int last = region.getShort(LAST_BATCH_HEAD) & 0xFFFF;
        for (int i = from; i != to; i = (i + 1) & 0xFFFF) {
            final int head = usedHeads[i & mask];
            if (head < entries) {
                region.putShort(HEADER + ENTRY * head + E_NEXT, (short) last);
                last = head;
            }
        }
        region.putShort(LAST_BATCH_HEAD, (short) last);
    }

    /** After the release store of used->idx = {@code to}: the batch is no longer inflight. */
    void completeBatch(final int from, final int to) {
        for (int i = from; i != to; i = (i + 1) & 0xFFFF) {
            final int head = usedHeads[i & mask];
            if (head < entries) {
                region.putByte(HEADER + ENTRY * head + E_INFLIGHT, (byte) 0);
            }
        }
        VarHandle.storeStoreFence();
        region.putShort(USED_IDX, (short) to);
    }

    void mark() {
        markResubmit = resubmitNext;
    }

    /**
     * Chains taken since the last {@link #mark()} are given back: resubmitted ones go back to the resubmit
     * list (still inflight), those taken from avail slots [{@code fromAvail}, {@code toAvail}) are no longer
     * inflight (they were never completed, and will be taken again, with a new counter).
     */
    void rewind(final UnsafeBuffer avail, final int fromAvail, final int toAvail) {
        resubmitNext = markResubmit;
        for (int p = fromAvail; p != toAvail; p = (p + 1) & 0xFFFF) {
            final int head = avail.getShort(AVAIL_RING + 2 * (p & mask)) & 0xFFFF;
            if (head < size) {
                region.putByte(HEADER + ENTRY * head + E_INFLIGHT, (byte) 0);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Inspection (tests, diagnostics)

    boolean isInflight(final int head) {
        return region.getByte(entry(head) + E_INFLIGHT) != 0;
    }

    int regionUsedIdx() {
        return region.getShort(USED_IDX) & 0xFFFF;
    }
}
