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

    public int size() {
        return count;
    }

    public long generation() {
        return generation;
    }

    public long lastContiguous() {
        return lastContiguous;
    }

    /** Add a mapping, replacing whatever it overlaps. Returns false if it is malformed. */
    public boolean update(final long start, final long length, final long userAddr, final int permission) {
        if (length <= 0 || Long.compareUnsigned(start, -length) > 0 || Long.compareUnsigned(userAddr, -length) > 0
            || permission < IotlbMessage.PERM_RO || permission > IotlbMessage.PERM_RW) {
            return false;
        }
        invalidate(start, length);
        if (count == MAX_ENTRIES) {
            return false;
        }
        if (count == iova.length) {
            iova = java.util.Arrays.copyOf(iova, count * 2);
            size = java.util.Arrays.copyOf(size, count * 2);
            uaddr = java.util.Arrays.copyOf(uaddr, count * 2);
            perm = java.util.Arrays.copyOf(perm, count * 2);
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
        generation++;
        return true;
    }

    /**
     * Remove every mapping overlapping [start, start+length); the parts of entries outside the range are
     * kept. Runs as a control command (rare), so it may allocate.
     */
    public void invalidate(final long start, final long length) {
        if (length <= 0) {
            return;
        }
        final long end = Long.compareUnsigned(start, -length) > 0 ? -1L : start + length - 1; // inclusive
        final int capacity = Math.max(64, count + 1);
        final long[] ni = new long[capacity];
        final long[] ns = new long[capacity];
        final long[] nu = new long[capacity];
        final int[] np = new int[capacity];
        int w = 0;
        for (int r = 0; r < count; r++) {
            final long s = iova[r];
            final long e = s + size[r] - 1;
            if (Long.compareUnsigned(e, start) < 0 || Long.compareUnsigned(s, end) > 0) {
                ni[w] = s;
                ns[w] = size[r];
                nu[w] = uaddr[r];
                np[w++] = perm[r];
                continue;
            }
            if (Long.compareUnsigned(s, start) < 0) {
                ni[w] = s;
                ns[w] = start - s;
                nu[w] = uaddr[r];
                np[w++] = perm[r];
            }
            if (Long.compareUnsigned(e, end) > 0) {
                ni[w] = end + 1;
                ns[w] = e - end;
                nu[w] = uaddr[r] + (end + 1 - s);
                np[w++] = perm[r];
            }
        }
        iova = ni;
        size = ns;
        uaddr = nu;
        perm = np;
        count = w;
        lastHit = 0;
        generation++;
    }

    public void clear() {
        count = 0;
        lastHit = 0;
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
            return MISS;
        }
        if ((perm[i] & needed) != needed) {
            return DENIED;
        }
        final long off = address - iova[i];
        final long inEntry = Math.min(length, size[i] - off);
        final long uva = uaddr[i] + off;
        final long host = memory.uvaToHost(uva, 1);
        if (host == GuestMemory.UNMAPPED) {
            return DENIED;
        }
        // The entry may cross a memory-region boundary; stop there.
        final long inRegion = Math.min(inEntry, memory.uvaContiguousBytes(uva));
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
                return DENIED; // not contiguous in host memory: a ring must be
            }
            done += lastContiguous;
        }
        return first;
    }
}
