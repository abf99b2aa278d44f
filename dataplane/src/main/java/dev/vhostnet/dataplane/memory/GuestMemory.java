package dev.vhostnet.dataplane.memory;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * An immutable memory table: the guest's regions, mapped. Translates guest physical addresses (descriptor
 * buffers) and front-end virtual addresses (ring addresses) to addresses in this process, refusing any range
 * that is not entirely inside one region. All range checks are written so that they cannot overflow: a hostile
 * address near 2^64 fails the check instead of wrapping into a region.
 *
 * <p>A new table is built for every change; the dataplane switches to it between bursts and the old one is
 * closed afterwards, so a region is unmapped only when no table uses it.
 */
public final class GuestMemory implements AutoCloseable {
    /** Returned by the translate methods when the range is not mapped. Address 0 is never a mapping. */
    public static final long UNMAPPED = 0;
    public static final int MAX_REGIONS = 509;

    public static final GuestMemory EMPTY = new GuestMemory(new GuestRegion[0]);

    private final GuestRegion[] regions;
    // Flat copies of the region bounds, scanned on the hot path without pointer chasing.
    private final long[] gpaStart;
    private final long[] uvaStart;
    private final long[] sizes;
    private final long[] hostStart;

    private GuestMemory(final GuestRegion[] regions) {
        this.regions = regions;
        final int n = regions.length;
        gpaStart = new long[n];
        uvaStart = new long[n];
        sizes = new long[n];
        hostStart = new long[n];
        for (int i = 0; i < n; i++) {
            gpaStart[i] = regions[i].guestPhysAddr();
            uvaStart[i] = regions[i].userAddr();
            sizes[i] = regions[i].size();
            hostStart[i] = regions[i].hostAddr();
        }
    }

    /** A table of freshly mapped regions (ownership moves to the table). Rejects overlapping regions. */
    public static GuestMemory of(final List<GuestRegion> regions) {
        checkNoOverlap(regions);
        return new GuestMemory(regions.toArray(new GuestRegion[0]));
    }

    /** A new table with one more region; shared regions are retained, not remapped. */
    public GuestMemory withRegion(final GuestRegion added) {
        if (regions.length >= MAX_REGIONS) {
            throw new InvalidMemoryException("too many memory regions (" + MAX_REGIONS + " max)");
        }
        final List<GuestRegion> next = new ArrayList<>(List.of(regions));
        next.add(added);
        checkNoOverlap(next);
        for (final GuestRegion r : regions) {
            r.retain();
        }
        return new GuestMemory(next.toArray(new GuestRegion[0]));
    }

    /** A new table without the region matching the description, or null if there is none. */
    public GuestMemory withoutRegion(final long gpa, final long size, final long uva) {
        final List<GuestRegion> next = new ArrayList<>();
        boolean found = false;
        for (final GuestRegion r : regions) {
            if (!found && r.describes(gpa, size, uva)) {
                found = true;
            } else {
                next.add(r);
            }
        }
        if (!found) {
            return null;
        }
        for (final GuestRegion r : next) {
            r.retain();
        }
        return new GuestMemory(next.toArray(new GuestRegion[0]));
    }

    private static void checkNoOverlap(final List<GuestRegion> regions) {
        for (int i = 0; i < regions.size(); i++) {
            for (int j = i + 1; j < regions.size(); j++) {
                final GuestRegion a = regions.get(i);
                final GuestRegion b = regions.get(j);
                if (a.overlapsGuest(b.guestPhysAddr(), b.size())) {
                    throw new InvalidMemoryException("memory regions overlap: " + a + " and " + b);
                }
            }
        }
    }

    public int regionCount() {
        return regions.length;
    }

    public List<GuestRegion> regions() {
        return Collections.unmodifiableList(List.of(regions));
    }

    /** Host address of guest physical range [gpa, gpa+len), or {@link #UNMAPPED}. len 0 is a valid range. */
    public long gpaToHost(final long gpa, final long len) {
        final long[] starts = gpaStart;
        for (int i = 0; i < starts.length; i++) {
            final long off = gpa - starts[i];
            // Unsigned: off < size means gpa lies in the region; len <= size - off means the end does too.
            if (Long.compareUnsigned(off, sizes[i]) < 0 && Long.compareUnsigned(len, sizes[i] - off) <= 0) {
                return hostStart[i] + off;
            }
        }
        return UNMAPPED;
    }

    /**
     * For a buffer that may straddle two adjacent regions: the host address of gpa, and via
     * {@link #contiguousBytes(long)} how many bytes from it lie in the same region.
     */
    public long gpaToHostStart(final long gpa) {
        return gpaToHost(gpa, 1);
    }

    /** Bytes from gpa to the end of its region, or 0 if gpa is unmapped. */
    public long contiguousBytes(final long gpa) {
        final long[] starts = gpaStart;
        for (int i = 0; i < starts.length; i++) {
            final long off = gpa - starts[i];
            if (Long.compareUnsigned(off, sizes[i]) < 0) {
                return sizes[i] - off;
            }
        }
        return 0;
    }

    /** Host address of front-end virtual range [uva, uva+len), or {@link #UNMAPPED}. */
    public long uvaToHost(final long uva, final long len) {
        final long[] starts = uvaStart;
        for (int i = 0; i < starts.length; i++) {
            final long off = uva - starts[i];
            if (Long.compareUnsigned(off, sizes[i]) < 0 && Long.compareUnsigned(len, sizes[i] - off) <= 0) {
                return hostStart[i] + off;
            }
        }
        return UNMAPPED;
    }

    /** Bytes from uva to the end of its region, or 0 if unmapped. */
    public long uvaContiguousBytes(final long uva) {
        for (int i = 0; i < uvaStart.length; i++) {
            final long off = uva - uvaStart[i];
            if (Long.compareUnsigned(off, sizes[i]) < 0) {
                return sizes[i] - off;
            }
        }
        return 0;
    }

    /** Guest physical address of a front-end virtual address, or -1 (used for dirty logging of rings). */
    public long uvaToGpa(final long uva) {
        for (int i = 0; i < uvaStart.length; i++) {
            final long off = uva - uvaStart[i];
            if (Long.compareUnsigned(off, sizes[i]) < 0) {
                return gpaStart[i] + off;
            }
        }
        return -1;
    }

    /**
     * Mark host range [host, host+len) dirty in {@code log}, splitting it at region boundaries. The guest
     * physical address comes from the region the host address lies in, which is exact also under a vIOMMU
     * (where a ring's IOVA, and the log_guest_addr QEMU sends for it, is not a guest physical address).
     * Bytes in no region are counted in the log and reported, never silently skipped.
     */
    public void logWrite(final DirtyLog log, final long host, final long len) {
        long a = host;
        long remaining = len;
        while (remaining > 0) {
            int r = -1;
            for (int i = 0; i < hostStart.length; i++) {
                if (Long.compareUnsigned(a - hostStart[i], sizes[i]) < 0) {
                    r = i;
                    break;
                }
            }
            if (r < 0) {
                log.outsideRegions(a, remaining);
                return;
            }
            final long off = a - hostStart[r];
            final long n = Math.min(remaining, sizes[r] - off);
            log.mark(gpaStart[r] + off, n);
            a += n;
            remaining -= n;
        }
    }

    /** Whether every region's fd still covers it (see {@link GuestRegion#isIntact()}). */
    public boolean isIntact() {
        for (final GuestRegion r : regions) {
            if (!r.isIntact()) {
                return false;
            }
        }
        return true;
    }

    /** Release this table's references; regions no other table uses are unmapped and their fds closed. */
    @Override
    public void close() {
        for (final GuestRegion r : regions) {
            r.close();
        }
    }

    @Override
    public String toString() {
        return "GuestMemory" + List.of(regions);
    }
}
