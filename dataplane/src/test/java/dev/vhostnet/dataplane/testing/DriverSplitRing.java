package dev.vhostnet.dataplane.testing;

import dev.vhostnet.spec.SplitRingLayout;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The driver side of a split ring, written straight from virtio 1.x section 2.7, for tests: a free list of
 * descriptors, chains published through the avail ring, used entries reaped from the used ring.
 */
public final class DriverSplitRing {
    public final int size;
    public final long descOffset;
    public final long availOffset;
    public final long usedOffset;
    private final UnsafeBuffer b;
    private int availIdx;
    private int lastUsed;
    private int freeHead;
    private int free;
    private final int[] chainLength;

    public DriverSplitRing(final TestGuest guest, final int size) {
        this.size = size;
        this.b = guest.bytes;
        descOffset = guest.alloc(SplitRingLayout.descTableSize(size), 16);
        availOffset = guest.alloc(SplitRingLayout.availRingSize(size), 2);
        usedOffset = guest.alloc(SplitRingLayout.usedRingSize(size), 4);
        for (int i = 0; i < size; i++) {
            b.putShort(desc(i) + SplitRingLayout.DESC_NEXT, (short) ((i + 1) % size));
        }
        free = size;
        chainLength = new int[size];
    }

    private int desc(final int i) {
        return (int) descOffset + i * SplitRingLayout.DESC_SIZE;
    }

    public int free() {
        return free;
    }

    /** Publish a chain; returns its head id. */
    public int add(final long[] gpas, final int[] lens, final boolean[] writable) {
        final int n = gpas.length;
        if (n > free) {
            throw new IllegalStateException("ring full");
        }
        final int head = freeHead;
        int d = head;
        for (int i = 0; i < n; i++) {
            b.putLong(desc(d) + SplitRingLayout.DESC_ADDR, gpas[i]);
            b.putInt(desc(d) + SplitRingLayout.DESC_LEN, lens[i]);
            final int flags = (writable[i] ? SplitRingLayout.DESC_F_WRITE : 0)
                | (i < n - 1 ? SplitRingLayout.DESC_F_NEXT : 0);
            b.putShort(desc(d) + SplitRingLayout.DESC_FLAGS, (short) flags);
            final int next = b.getShort(desc(d) + SplitRingLayout.DESC_NEXT) & 0xFFFF;
            if (i < n - 1) {
                d = next;
            } else {
                freeHead = next;
            }
        }
        free -= n;
        chainLength[head] = n;
        b.putShort((int) availOffset + SplitRingLayout.AVAIL_RING + 2 * (availIdx % size), (short) head);
        availIdx = (availIdx + 1) & 0xFFFF;
        b.putShortVolatile((int) availOffset + SplitRingLayout.AVAIL_IDX, (short) availIdx);
        return head;
    }

    /**
     * Publish a chain of one descriptor pointing at an indirect table of {@code gpas.length} entries, which
     * this method writes at {@code tableOffset} in guest memory (16 bytes per entry).
     */
    public int addIndirect(final long tableOffset, final long tableGpa, final long[] gpas, final int[] lens,
                           final boolean[] writable) {
        final int n = gpas.length;
        for (int i = 0; i < n; i++) {
            final int at = (int) tableOffset + i * SplitRingLayout.DESC_SIZE;
            b.putLong(at + SplitRingLayout.DESC_ADDR, gpas[i]);
            b.putInt(at + SplitRingLayout.DESC_LEN, lens[i]);
            b.putShort(at + SplitRingLayout.DESC_FLAGS, (short) ((writable[i] ? SplitRingLayout.DESC_F_WRITE : 0)
                | (i < n - 1 ? SplitRingLayout.DESC_F_NEXT : 0)));
            b.putShort(at + SplitRingLayout.DESC_NEXT, (short) (i + 1));
        }
        final int head = freeHead;
        b.putLong(desc(head) + SplitRingLayout.DESC_ADDR, tableGpa);
        b.putInt(desc(head) + SplitRingLayout.DESC_LEN, n * SplitRingLayout.DESC_SIZE);
        b.putShort(desc(head) + SplitRingLayout.DESC_FLAGS, (short) SplitRingLayout.DESC_F_INDIRECT);
        freeHead = b.getShort(desc(head) + SplitRingLayout.DESC_NEXT) & 0xFFFF;
        free--;
        chainLength[head] = 1;
        b.putShort((int) availOffset + SplitRingLayout.AVAIL_RING + 2 * (availIdx % size), (short) head);
        availIdx = (availIdx + 1) & 0xFFFF;
        b.putShortVolatile((int) availOffset + SplitRingLayout.AVAIL_IDX, (short) availIdx);
        return head;
    }

    /** Reap every used entry without allocating (benchmarks); returns how many. */
    public int reapAll() {
        int n = 0;
        while (reapOne() >= 0) {
            n++;
        }
        return n;
    }

    /** Reap one used entry: {id, len}, or null. */
    public int[] pollUsed() {
        final int at = (int) usedOffset + SplitRingLayout.USED_RING + SplitRingLayout.USED_ELEM_SIZE * (lastUsed % size);
        final int id = reapOne(); // acquire: used->idx is read first, then the entry
        return id < 0 ? null : new int[] {id, b.getInt(at + 4)};
    }

    /** Reap one used entry and return its id, or -1 if none. */
    private int reapOne() {
        final int usedIdx = b.getShortVolatile((int) usedOffset + SplitRingLayout.USED_IDX) & 0xFFFF;
        if (usedIdx == lastUsed) {
            return -1;
        }
        final int at = (int) usedOffset + SplitRingLayout.USED_RING + SplitRingLayout.USED_ELEM_SIZE * (lastUsed % size);
        final int id = b.getInt(at);
        lastUsed = (lastUsed + 1) & 0xFFFF;
        // Return the chain to the free list: its last descriptor's next is the old free head.
        int d = id;
        for (int i = 1; i < chainLength[id]; i++) {
            d = b.getShort(desc(d) + SplitRingLayout.DESC_NEXT) & 0xFFFF;
        }
        b.putShort(desc(d) + SplitRingLayout.DESC_NEXT, (short) freeHead);
        freeHead = id;
        free += chainLength[id];
        return id;
    }
}
