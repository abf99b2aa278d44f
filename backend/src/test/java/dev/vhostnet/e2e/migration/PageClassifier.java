package dev.vhostnet.e2e.migration;

import java.util.ArrayList;
import java.util.List;

/**
 * Says what a guest page holds, from the virtqueues' state in the source's RAM: a ring the back-end writes
 * (split used ring, packed descriptor ring), a ring only the driver writes, a buffer the device may write
 * (RX) or only reads (TX), or none of those. Descriptors are read as they are now, so a buffer the back-end
 * filled and the guest has since recycled counts as "other": the classification is a lead for a differing
 * page, not a proof of who wrote it.
 */
final class PageClassifier {
    private static final int DESC_F_WRITE = 2;
    private static final int DESC_F_INDIRECT = 4;

    private record Range(long start, long end, String label) {
        boolean overlapsPage(long page) {
            long ps = page * GuestRam.PAGE;
            return start < ps + GuestRam.PAGE && end > ps;
        }
    }

    private final List<Range> rings = new ArrayList<>();
    private final List<Range> buffers = new ArrayList<>();

    PageClassifier(GuestRam ram, List<QueueStatus> queues, boolean packed) {
        for (QueueStatus q : queues) {
            if (q.desc() == 0 || q.num() == 0) {
                continue;
            }
            String name = "q" + q.queue();
            if (packed) {
                rings.add(new Range(q.desc(), q.desc() + 16 * q.num(), name + " packed ring (device writes)"));
                rings.add(new Range(q.used(), q.used() + 4, name + " device event area (device writes)"));
                rings.add(new Range(q.avail(), q.avail() + 4, name + " driver event area"));
            } else {
                rings.add(new Range(q.used(), q.used() + 6 + 8 * q.num(), name + " used ring (device writes)"));
                rings.add(new Range(q.avail(), q.avail() + 6 + 2 * q.num(), name + " avail ring"));
                rings.add(new Range(q.desc(), q.desc() + 16 * q.num(), name + " descriptor table"));
            }
            addBuffers(ram, name, q.desc(), q.num(), true);
        }
    }

    private void addBuffers(GuestRam ram, String name, long table, long entries, boolean mayNest) {
        if (!ram.contains(table, 16 * entries)) {
            return;
        }
        for (long i = 0; i < entries; i++) {
            long at = table + 16 * i;
            long addr = ram.u64(at);
            long len = ram.u32(at + 8);
            int flags = ram.u16(at + 12);
            if (len == 0 || !ram.contains(addr, len)) {
                continue;
            }
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (mayNest) {
                    addBuffers(ram, name, addr, len / 16, false);
                }
                continue;
            }
            buffers.add(new Range(addr, addr + len, name + ((flags & DESC_F_WRITE) != 0
                    ? " device-writable buffer (back-end writes)" : " device-readable buffer")));
        }
    }

    String classify(long page) {
        for (Range r : rings) {
            if (r.overlapsPage(page)) {
                return r.label();
            }
        }
        for (Range r : buffers) {
            if (r.overlapsPage(page)) {
                return r.label();
            }
        }
        return "other";
    }
}
