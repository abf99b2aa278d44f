package dev.vhostnet.dataplane.memory;

import dev.vhostnet.spec.IotlbMessage;

/**
 * The device IOTLB of a port whose driver negotiated VIRTIO_F_ACCESS_PLATFORM: ring and buffer addresses
 * are I/O virtual addresses, mapped by the front-end's (v)IOMMU to its own virtual addresses with
 * permissions. Entries are sorted by IOVA and never overlap.
 *
 * <p>Owned by the dataplane thread: updates and invalidations arrive as dataplane commands, so once an
 * invalidation has been applied (and only then acknowledged), no walk can still use the old mapping.
 * Lookups allocate nothing; the contiguous length of the last translation is left in a field.
 */
public final class Iotlb {
    public static final long MISS = -1;
    public static final long DENIED = -2;
    private static final int MAX_ENTRIES = 1 << 16;
    private static final long PAGE_MASK = ~4095L;
    private static final long PAGE_MASK_LOW = 4095L;
    /** A free slot of {@link #outstanding}: no page starts at 2^64 - 1. */
    private static final long NONE = -1L;

    private long[] iova = new long[64];
    private long[] size = new long[64];
    private long[] uaddr = new long[64];
    private int[] perm = new int[64];
    private int count;
    private int lastHit;
    /** Bytes, from the address of the last successful translation, that are contiguous in host memory. */
    private long lastContiguous;
    /** Incremented on every change, so queues know to re-resolve their rings. */
    private long generation;
    /**
     * Pages asked for (IOTLB miss sent) and not answered by an update yet, device-wide, so that no queue
     * sends a second request while one is on its way: QEMU handles requests in order, and a duplicate it
     * reaches after the guest has unmapped the page again (the queue used the first answer meanwhile)
     * makes it log a translation fault. Invalidations leave the set alone: the answer is still coming.
     * Bounded; when full the oldest request is forgotten (and at worst asked for again).
     */
    private static final int OUTSTANDING = 256;
    private final long[] outstanding = new long[OUTSTANDING];

    {
        java.util.Arrays.fill(outstanding, NONE);
    }

    private int outstandingNext;
    /** Invalidations and clears that removed something (diagnostics, tests). */
    private long removals;
    /** First address that failed in the last MISS / DENIED result (may lie after the address asked for). */
    private long lastFault;
    // Control-path counters, for diagnostics (the back-end logs them).
    private long updates;
    private long invalidations;

    public int size() {
        return count;
    }

    public long generation() {
        return generation;
    }

    public long lastContiguous() {
        return lastContiguous;
    }

    /** Invalidations and clears that removed some mapping. */
    public long removals() {
        return removals;
    }

    /** Whether a miss for the page holding {@code iova} was sent and no update has covered it since. */
    public boolean outstanding(final long iova) {
        final long page = iova & PAGE_MASK;
        for (int i = 0; i < OUTSTANDING; i++) {
            if (outstanding[i] == page) {
                return true;
            }
        }
        return false;
    }

    /** A miss for the page holding {@code iova} is being sent. */
    public void requested(final long iova) {
        final long page = iova & PAGE_MASK;
        if (!outstanding(page)) {
            outstanding[outstandingNext] = page;
            outstandingNext = (outstandingNext + 1) % OUTSTANDING;
        }
    }

    private void answered(final long start, final long last) {
        for (int i = 0; i < OUTSTANDING; i++) {
            final long p = outstanding[i];
            if (p != NONE && Long.compareUnsigned(p, last) <= 0 && Long.compareUnsigned(p + PAGE_MASK_LOW, start) >= 0) {
                outstanding[i] = NONE;
            }
        }
    }

    /**
     * The first byte that could not be translated by the last {@link #translate} or
     * {@link #translateContiguous} that returned MISS or DENIED: what to ask the front-end for, since asking
     * for the start of a range whose first pages are mapped would bring nothing new.
     */
    public long lastFault() {
        return lastFault;
    }

    /** Updates applied (malformed ones not counted). */
    public long updates() {
        return updates;
    }

    /** Invalidations applied, including those that removed nothing. */
    public long invalidations() {
        return invalidations;
    }

    /** Add a mapping, replacing whatever it overlaps. Returns false if it is malformed. */
    public boolean update(final long start, final long length, final long userAddr, final int permission) {
        // Sizes are unsigned 64-bit: a mapping may be 2^63 bytes or more, but it must not wrap around.
        if (length == 0 || Long.compareUnsigned(start, -length) > 0 || Long.compareUnsigned(userAddr, -length) > 0
            || permission < IotlbMessage.PERM_RO || permission > IotlbMessage.PERM_RW) {
            return false;
        }
        final long last = endOf(start, length);
        remove(start, last); // replaced, not removed: no removal event
        updates++;
        if (count == MAX_ENTRIES) {
            return false;
        }
        if (count == iova.length) {
            grow(count + 1);
        }
        int at = count;
        while (at > 0 && Long.compareUnsigned(iova[at - 1], start) > 0) {
            iova[at] = iova[at - 1];
            size[at] = size[at - 1];
            uaddr[at] = uaddr[at - 1];
            perm[at] = perm[at - 1];
            at--;
        }
        iova[at] = start;
        size[at] = length;
        uaddr[at] = userAddr;
        perm[at] = permission;
        count++;
        answered(start, last);
        generation++;
        return true;
    }

    /**
     * Remove every mapping overlapping [start, start+length); the parts of entries outside the range are
     * kept. {@code length} is unsigned: 0, or a range ending past 2^64 - 1, means "from start to the end of
     * the IOVA space". QEMU sends such sizes: it crops a full device-IOTLB flush to each notifier section,
     * and the section above the MSI window (0xfef00000 up) gets a size of 2^64 - 0xfef00000, negative as a
     * Java long, and a section covering everything would get 2^64, i.e. 0.
     *
     * <p>In place: entries are sorted and disjoint, so the overlapped ones are a contiguous run that is
     * replaced by at most two fragments (at most one entry more than before).
     */
    public void invalidate(final long start, final long length) {
        invalidations++;
        final long end = endOf(start, length);
        if (remove(start, end)) {
            removals++;
        }
        generation++; // also when nothing was removed: a change for queues parked on a stale view
    }

    /** Remove [start, end] (inclusive); whether any entry overlapped it. */
    private boolean remove(final long start, final long end) {
        // First entry ending at or after start, then the run of entries starting at or before end.
        int lo = 0;
        while (lo < count && Long.compareUnsigned(iova[lo] + size[lo] - 1, start) < 0) {
            lo++;
        }
        int hi = lo;
        while (hi < count && Long.compareUnsigned(iova[hi], end) <= 0) {
            hi++;
        }
        if (lo == hi) {
            return false;
        }
        final long firstStart = iova[lo];
        final long firstUaddr = uaddr[lo];
        final int firstPerm = perm[lo];
        final long lastStart = iova[hi - 1];
        final long lastEnd = lastStart + size[hi - 1] - 1;
        final long lastUaddr = uaddr[hi - 1];
        final int lastPerm = perm[hi - 1];
        final boolean keepLeft = Long.compareUnsigned(firstStart, start) < 0;
        final boolean keepRight = Long.compareUnsigned(lastEnd, end) > 0;
        final int fragments = (keepLeft ? 1 : 0) + (keepRight ? 1 : 0);
        final int newCount = count - (hi - lo) + fragments;
        if (newCount > iova.length) {
            grow(newCount);
        }
        final int tail = count - hi;
        System.arraycopy(iova, hi, iova, lo + fragments, tail);
        System.arraycopy(size, hi, size, lo + fragments, tail);
        System.arraycopy(uaddr, hi, uaddr, lo + fragments, tail);
        System.arraycopy(perm, hi, perm, lo + fragments, tail);
        int w = lo;
        if (keepLeft) {
            iova[w] = firstStart;
            size[w] = start - firstStart;
            uaddr[w] = firstUaddr;
            perm[w++] = firstPerm;
        }
        if (keepRight) {
            iova[w] = end + 1;
            size[w] = lastEnd - end;
            uaddr[w] = lastUaddr + (end + 1 - lastStart);
            perm[w] = lastPerm;
        }
        count = newCount;
        lastHit = 0;
        return true;
    }

    /** Inclusive last IOVA of [start, start+length), length unsigned, 0 or past the top meaning the top. */
    static long endOf(final long start, final long length) {
        if (length == 0 || Long.compareUnsigned(length - 1, -1L - start) >= 0) {
            return -1L;
        }
        return start + length - 1;
    }

    private void grow(final int atLeast) {
        final int capacity = Math.max(atLeast, iova.length * 2);
        iova = java.util.Arrays.copyOf(iova, capacity);
        size = java.util.Arrays.copyOf(size, capacity);
        uaddr = java.util.Arrays.copyOf(uaddr, capacity);
        perm = java.util.Arrays.copyOf(perm, capacity);
    }

    /** Forget every mapping (GET_VRING_BASE, SET_MEM_TABLE: the front-end maps again on demand). */
    public void clear() {
        count = 0;
        lastHit = 0;
        removals++;
        generation++;
    }

    private int find(final long address) {
        if (lastHit < count && Long.compareUnsigned(address - iova[lastHit], size[lastHit]) < 0) {
            return lastHit;
        }
        int lo = 0;
        int hi = count - 1;
        while (lo <= hi) {
            final int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(iova[mid], address) <= 0) {
                if (Long.compareUnsigned(address - iova[mid], size[mid]) < 0) {
                    lastHit = mid;
                    return mid;
                }
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return -1;
    }

    /**
     * Translate {@code address}: the host address of its first byte, with {@link #lastContiguous()} bytes
     * (at most {@code length}) contiguous from there; or {@link #MISS} (no entry: ask the front-end) or
     * {@link #DENIED} (entry lacks {@code needed} permission).
     */
    public long translate(final long address, final long length, final int needed, final GuestMemory memory) {
        final int i = find(address);
        if (i < 0) {
            lastFault = address;
            return MISS;
        }
        if ((perm[i] & needed) != needed) {
            lastFault = address;
            return DENIED;
        }
        final long off = address - iova[i];
        // Unsigned: an entry may be larger than 2^63 bytes.
        final long inEntry = Long.compareUnsigned(length, size[i] - off) <= 0 ? length : size[i] - off;
        final long uva = uaddr[i] + off;
        final long host = memory.uvaToHost(uva, 1);
        if (host == GuestMemory.UNMAPPED) {
            lastFault = address;
            return DENIED;
        }
        // The entry may cross a memory-region boundary; stop there.
        final long inRegionBytes = memory.uvaContiguousBytes(uva);
        final long inRegion = Long.compareUnsigned(inEntry, inRegionBytes) <= 0 ? inEntry : inRegionBytes;
        lastContiguous = inRegion;
        return host;
    }

    /**
     * Host address of [address, address+length) if the whole range is one contiguous mapping (rings), else
     * MISS / DENIED; a range crossing entries that happen to be contiguous in host memory is accepted.
     */
    public long translateContiguous(final long address, final long length, final int needed, final GuestMemory memory) {
        final long first = translate(address, length, needed, memory);
        if (first < 0) {
            return first;
        }
        long done = lastContiguous;
        while (done < length) {
            final long next = translate(address + done, length - done, needed, memory);
            if (next < 0) {
                return next;
            }
            if (next != first + done) {
                lastFault = address + done;
                return DENIED; // not contiguous in host memory: a ring must be
            }
            done += lastContiguous;
        }
        return first;
    }
}
