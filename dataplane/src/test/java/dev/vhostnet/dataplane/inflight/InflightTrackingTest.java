package dev.vhostnet.dataplane.inflight;

import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.testing.DriverRing;
import dev.vhostnet.dataplane.testing.TestMemory;
import dev.vhostnet.dataplane.virtq.DescriptorChain;
import dev.vhostnet.dataplane.virtq.InflightBuffer;
import dev.vhostnet.dataplane.virtq.PackedVirtqueue;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.SplitVirtqueue;
import dev.vhostnet.dataplane.virtq.Virtqueue;
import dev.vhostnet.spec.PackedRingLayout;
import dev.vhostnet.spec.SplitRingLayout;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The inflight regions driven through real queues: a queue object thrown away with chains taken and not
 * completed stands for a back-end that died; a new queue on the same region must resubmit exactly those, in
 * fetch order, and continue with the driver's next chain. Completion out of order (which the forwarder never
 * does) and rewinding (which mergeable receive does) are covered too, for split and packed rings.
 */
class InflightTrackingTest {
    private static final long GPA = 0x4000_0000L;
    private static final long UVA = 0x7f00_0000_0000L;
    private static final int SIZE = 16;

    private TestMemory mem;
    private GuestMemory guest;
    private InflightBuffer buffer;
    private UnsafeBuffer bytes;

    @BeforeEach
    void setUp() {
        mem = new TestMemory(1 << 20);
        guest = GuestMemory.of(List.of(mem.region(GPA, UVA, 0, 1 << 20)));
        bytes = mem.buffer();
        final int[] fd = new int[1];
        buffer = InflightBuffer.create(2, SIZE, fd);
        FileDescriptors.closeQuietly(fd[0]);
    }

    @AfterEach
    void tearDown() {
        buffer.close();
        guest.close();
        mem.close();
    }

    private UnsafeBuffer region(final int queue) {
        final InflightBuffer.Region r = buffer.region(queue);
        return new UnsafeBuffer(r.address(), (int) r.length());
    }

    // ---------------------------------------------------------------------------------------------
    // Split

    private static final int DESC = 0x1000;
    private static final int AVAIL = 0x2000;
    private static final int USED = 0x3000;
    private static final int BUFS = 0x10000;

    private SplitVirtqueue splitQueue(final int base) {
        final SplitVirtqueue q = new SplitVirtqueue(0, new QueueCounters());
        q.setFeatures(false, false);
        q.setEnabled(true);
        q.setInflight(buffer.region(0));
        assertEquals(QueueError.NONE, q.start(guest, SIZE, UVA + DESC, UVA + AVAIL, UVA + USED, base));
        return q;
    }

    /** Offer head {@code i} as a one-descriptor chain of 100 + i bytes. */
    private static void offer(final DriverRing d, final int i) {
        d.desc(i, GPA + BUFS + 4096L * i, 100 + i, 0, 0).offer(i);
    }

    private static int splitInflight(final UnsafeBuffer r) {
        int n = 0;
        for (int i = 0; i < SIZE; i++) {
            n += r.getByte(16 + 16 * i) != 0 ? 1 : 0;
        }
        return n;
    }

    @Test
    void splitResubmitsWhatADeadQueueTookInFetchOrder() {
        final DriverRing d = new DriverRing(mem, SIZE, GPA, UVA, DESC, AVAIL, USED);
        final SplitVirtqueue dead = splitQueue(0);
        assertEquals(1, region(0).getShort(8), "region initialized (version 1)");
        for (int i = 0; i < 5; i++) {
            offer(d, i);
        }
        final DescriptorChain c = new DescriptorChain(8);
        for (int i = 0; i < 5; i++) {
            assertTrue(dead.available() > 0 && dead.pop(c));
        }
        // Out of order: 3 and 0 complete, 1, 2 and 4 stay in flight.
        dead.addUsed(3, 0);
        dead.addUsed(0, 0);
        dead.publishUsed();
        assertEquals(2, d.usedIdx());
        assertEquals(3, splitInflight(region(0)));

        offer(d, 5); // the driver goes on while no back-end runs
        final SplitVirtqueue next = splitQueue(d.usedIdx()); // what QEMU sends after a crash
        assertEquals(3, next.pendingResubmits());
        final List<Integer> heads = new ArrayList<>();
        while (next.available() > 0) {
            assertTrue(next.pop(c));
            assertEquals(100 + c.head(), c.readBytes(), "chain " + c.head() + " walked again");
            heads.add(c.head());
            next.addUsed(c, 0);
        }
        next.publishUsed();
        assertEquals(List.of(1, 2, 4, 5), heads, "inflight in fetch order, then the avail ring after them");
        assertEquals(List.of(3, 0, 1, 2, 4, 5), usedIds(d, 0, 6), "each head completed exactly once");
        assertEquals(0, splitInflight(region(0)));
        assertEquals(6, region(0).getShort(14), "region used_idx follows used->idx");
    }

    @Test
    void splitReconnectClearsALastBatchThatReachedTheDriver() {
        final DriverRing d = new DriverRing(mem, SIZE, GPA, UVA, DESC, AVAIL, USED);
        final SplitVirtqueue dead = splitQueue(0);
        for (int i = 0; i < 3; i++) {
            offer(d, i);
        }
        final DescriptorChain c = new DescriptorChain(8);
        for (int i = 0; i < 3; i++) {
            assertTrue(dead.pop(c));
            dead.addUsed(c, 0);
        }
        dead.publishUsed();
        // Died after used->idx was released, before the batch's inflight flags and used_idx were updated.
        final UnsafeBuffer r = region(0);
        for (int i = 0; i < 3; i++) {
            r.putByte(16 + 16 * i, (byte) 1);
        }
        r.putShort(14, (short) 0);
        final SplitVirtqueue next = splitQueue(d.usedIdx());
        assertEquals(0, next.pendingResubmits(), "completed chains must not be resubmitted");
        assertEquals(0, splitInflight(r));
        assertEquals(3, r.getShort(14));
    }

    @Test
    void splitRewoundChainsAreNotInflight() {
        final DriverRing d = new DriverRing(mem, SIZE, GPA, UVA, DESC, AVAIL, USED);
        final SplitVirtqueue q = splitQueue(0);
        for (int i = 0; i < 4; i++) {
            offer(d, i);
        }
        final DescriptorChain c = new DescriptorChain(8);
        assertTrue(q.pop(c));
        q.addUsed(c, 0);
        final long mark = q.mark();
        assertTrue(q.pop(c));
        q.addUsed(c, 0);
        assertTrue(q.pop(c));
        q.rewind(mark); // the frame did not fit: 1 and 2 go back
        assertEquals(1, splitInflight(region(0)), "only head 0 is in flight");
        q.publishUsed();
        assertEquals(0, splitInflight(region(0)));
        final SplitVirtqueue next = splitQueue(d.usedIdx());
        assertEquals(0, next.pendingResubmits());
        assertTrue(next.pop(c));
        assertEquals(1, c.head(), "the rewound chain is taken again from the avail ring");
    }

    private List<Integer> usedIds(final DriverRing d, final int from, final int to) {
        final List<Integer> ids = new ArrayList<>();
        for (int i = from; i < to; i++) {
            ids.add(d.usedId(i));
        }
        return ids;
    }

    // ---------------------------------------------------------------------------------------------
    // Packed

    private static final int RING = 0x4000;
    private static final int DRIVER_EVENT = 0x5000;
    private static final int DEVICE_EVENT = 0x5100;
    private static final int INITIAL_BASE = 0x8000 | (0x8000 << 16);

    /** Driver side of the packed ring, from the spec: chains made available head last; used entries reaped. */
    private final class PackedDriver {
        int nextAvail;
        boolean availWrap = true;
        int nextUsed;
        boolean usedWrap = true;
        final int[] descsOfId = new int[SIZE];

        /** Buffer {@code id} as {@code n} descriptors of 10 + id bytes each. */
        void add(final int id, final int n) {
            final int head = nextAvail;
            int headFlags = 0;
            for (int k = 0; k < n; k++) {
                final int at = RING + nextAvail * PackedRingLayout.DESC_SIZE;
                bytes.putLong(at + PackedRingLayout.DESC_ADDR, GPA + BUFS + 4096L * id + 64L * k);
                bytes.putInt(at + PackedRingLayout.DESC_LEN, 10 + id);
                bytes.putShort(at + PackedRingLayout.DESC_ID, (short) id);
                final int flags = (availWrap ? PackedRingLayout.DESC_F_AVAIL : PackedRingLayout.DESC_F_USED)
                    | (k < n - 1 ? PackedRingLayout.DESC_F_NEXT : 0);
                if (k == 0) {
                    headFlags = flags;
                } else {
                    bytes.putShortVolatile(at + PackedRingLayout.DESC_FLAGS, (short) flags);
                }
                if (++nextAvail == SIZE) {
                    nextAvail = 0;
                    availWrap = !availWrap;
                }
            }
            descsOfId[id] = n;
            bytes.putShortVolatile(RING + head * PackedRingLayout.DESC_SIZE + PackedRingLayout.DESC_FLAGS, (short) headFlags);
        }

        /** Ids of used entries now visible, in order. */
        List<Integer> reap() {
            final List<Integer> ids = new ArrayList<>();
            while (true) {
                final int at = RING + nextUsed * PackedRingLayout.DESC_SIZE;
                final int flags = bytes.getShortVolatile(at + PackedRingLayout.DESC_FLAGS) & 0xFFFF;
                if (((flags & PackedRingLayout.DESC_F_AVAIL) != 0) != usedWrap
                    || ((flags & PackedRingLayout.DESC_F_USED) != 0) != usedWrap) {
                    return ids;
                }
                final int id = bytes.getShort(at + PackedRingLayout.DESC_ID) & 0xFFFF;
                ids.add(id);
                nextUsed += descsOfId[id];
                if (nextUsed >= SIZE) {
                    nextUsed -= SIZE;
                    usedWrap = !usedWrap;
                }
            }
        }
    }

    private PackedVirtqueue packedQueue(final int base) {
        final PackedVirtqueue q = new PackedVirtqueue(1, new QueueCounters());
        q.setFeatures(false, false);
        q.setEnabled(true);
        q.setInflight(buffer.region(1));
        assertEquals(QueueError.NONE, q.start(guest, SIZE, UVA + RING, UVA + DRIVER_EVENT, UVA + DEVICE_EVENT, base));
        return q;
    }

    private static int packedInflight(final UnsafeBuffer r) {
        int n = 0;
        for (int i = 0; i < SIZE; i++) {
            n += r.getByte(32 + 32 * i) != 0 ? 1 : 0;
        }
        return n;
    }

    /** Pop everything available, each chain into its own object (so they can be completed in any order). */
    private static List<DescriptorChain> drain(final Virtqueue q) {
        final List<DescriptorChain> chains = new ArrayList<>();
        while (q.available() > 0) {
            final DescriptorChain c = new DescriptorChain(8);
            assertTrue(q.pop(c), "pop: " + q.error());
            chains.add(c);
        }
        return chains;
    }

    private static List<Integer> ids(final List<DescriptorChain> chains) {
        return chains.stream().map(DescriptorChain::head).toList();
    }

    @Test
    void packedResubmitsWhatADeadQueueTookInFetchOrder() {
        final PackedDriver d = new PackedDriver();
        final PackedVirtqueue dead = packedQueue(INITIAL_BASE);
        assertEquals(1, region(1).getShort(8), "region initialized (version 1)");
        final int[][] chains = {{0, 2}, {1, 1}, {2, 3}, {3, 1}, {4, 2}}; // id, descriptors
        for (final int[] ch : chains) {
            d.add(ch[0], ch[1]);
        }
        final List<DescriptorChain> taken = drain(dead);
        assertEquals(List.of(0, 1, 2, 3, 4), ids(taken));
        // Complete 1 and 3 (out of order: their used entries overwrite ring slots of chains still in flight).
        dead.addUsed(taken.get(1), 0);
        dead.addUsed(taken.get(3), 0);
        dead.publishUsed();
        assertEquals(List.of(1, 3), d.reap());
        assertEquals(3, packedInflight(region(1)));

        d.add(5, 2); // the driver goes on while no back-end runs
        final PackedVirtqueue next = packedQueue(INITIAL_BASE); // positions come from the region
        assertEquals(3, next.pendingResubmits());
        final List<DescriptorChain> again = drain(next);
        assertEquals(List.of(0, 2, 4, 5), ids(again), "inflight in fetch order (from the region), then the ring");
        assertEquals(List.of(2L * 10, 3L * 12, 2L * 14, 2L * 15),
            again.stream().map(DescriptorChain::readBytes).toList(), "chains rebuilt from their copies");
        again.forEach(c -> next.addUsed(c, 0));
        next.publishUsed();
        assertEquals(List.of(0, 2, 4, 5), d.reap(), "each id completed exactly once");
        assertEquals(0, packedInflight(region(1)));
    }

    @Test
    void packedRewoundChainsAreNotInflight() {
        final PackedDriver d = new PackedDriver();
        final PackedVirtqueue q = packedQueue(INITIAL_BASE);
        d.add(0, 1);
        d.add(1, 2);
        d.add(2, 1);
        final DescriptorChain c = new DescriptorChain(8);
        assertTrue(q.pop(c));
        q.addUsed(c, 0);
        final long mark = q.mark();
        assertTrue(q.pop(c));
        q.addUsed(c, 0);
        assertTrue(q.pop(c));
        q.rewind(mark);
        assertEquals(1, packedInflight(region(1)));
        q.publishUsed();
        assertEquals(List.of(0), d.reap());
        assertEquals(0, packedInflight(region(1)));
        final PackedVirtqueue next = packedQueue(INITIAL_BASE);
        assertEquals(0, next.pendingResubmits());
        assertEquals(List.of(1, 2), ids(drain(next)), "rewound chains are taken again from the ring");
    }

}
