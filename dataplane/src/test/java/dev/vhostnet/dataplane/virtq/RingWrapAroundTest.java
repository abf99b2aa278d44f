package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.testing.DriverPackedRing;
import dev.vhostnet.dataplane.testing.DriverSplitRing;
import dev.vhostnet.dataplane.testing.TestGuest;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayDeque;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Drives chains through a device-side queue for several laps at every power-of-two queue size from 2 to
 * 32768, so that both the ring positions and (split) the 16-bit indexes or (packed) the wrap counters wrap
 * several times. Chains of one and two descriptors alternate, so a two-descriptor chain regularly straddles
 * the end of the ring. Every few hundred chains the queue is stopped and restarted from the base it reported,
 * as GET_VRING_BASE / SET_VRING_BASE do.
 */
class RingWrapAroundTest {
    static IntStream sizes() {
        return IntStream.rangeClosed(1, 15).map(i -> 1 << i);
    }

    @ParameterizedTest(name = "split, queue size {0}")
    @MethodSource("sizes")
    void splitRingWrapsAtEverySize(final int size) {
        try (TestGuest guest = new TestGuest(16L << 20)) {
            final DriverSplitRing driver = new DriverSplitRing(guest, size);
            final SplitVirtqueue queue = new SplitVirtqueue(0, new QueueCounters());
            queue.setFeatures(false, false);
            queue.setEnabled(true);
            start(queue, guest, size, driver.descOffset, driver.availOffset, driver.usedOffset, 0);
            // Past 65536 chains the 16-bit avail/used indexes wrap too.
            run(guest, size, Math.max(3 * size, 70_000), new SplitDriver(driver), queue,
                (base) -> start(queue, guest, size, driver.descOffset, driver.availOffset, driver.usedOffset, base));
        }
    }

    @ParameterizedTest(name = "packed, queue size {0}")
    @MethodSource("sizes")
    void packedRingWrapsAtEverySize(final int size) {
        try (TestGuest guest = new TestGuest(16L << 20)) {
            final DriverPackedRing driver = new DriverPackedRing(guest, size);
            final PackedVirtqueue queue = new PackedVirtqueue(0, new QueueCounters());
            queue.setFeatures(false, false);
            queue.setEnabled(true);
            // Initial position: index 0, wrap counters set (bit 15 of each half).
            final int initialBase = 0x8000 | (0x8000 << 16);
            start(queue, guest, size, driver.ringOffset, driver.driverEventOffset, driver.deviceEventOffset, initialBase);
            run(guest, size, Math.max(5 * size, 2_000), new PackedDriver(driver), queue,
                (base) -> start(queue, guest, size, driver.ringOffset, driver.driverEventOffset, driver.deviceEventOffset, base));
        }
    }

    private static void start(final Virtqueue q, final TestGuest g, final int size, final long a, final long b,
                              final long c, final int base) {
        assertEquals(QueueError.NONE, q.start(g.memory, size, g.uva(a), g.uva(b), g.uva(c), base));
    }

    interface Driver {
        int free();

        /** Add a chain; returns the id the device must report. */
        int add(int n, long[] gpas, int[] lens, boolean[] writable, int id);

        int[] pollUsed();
    }

    private static void run(final TestGuest guest, final int size, final int total, final Driver driver,
                            final Virtqueue queue, final java.util.function.IntConsumer restart) {
        final DescriptorChain chain = new DescriptorChain(8);
        // One 64-byte buffer per descriptor slot; the buffer's first byte tags which chain uses it.
        final long buffers = guest.alloc(64L * 2 * size, 64);
        final ArrayDeque<int[]> expected = new ArrayDeque<>(); // {id, descriptors, writableBytes, tag}
        int added = 0;
        int completed = 0;
        int nextId = 0;
        int sinceRestart = 0;
        int idleRounds = 0;
        while (completed < total) {
            final int before = completed;
            // Driver: fill what the ring has room for (up to a small batch).
            for (int batch = 0; batch < 5 && added < total; batch++) {
                final int n = 1 + (added % 2);
                if (n > driver.free() || n > size) {
                    break;
                }
                final long[] gpas = new long[n];
                final int[] lens = new int[n];
                final boolean[] writable = new boolean[n];
                final int tag = added & 0x7F;
                final long slot = buffers + 64L * 2 * (nextId % size);
                for (int i = 0; i < n; i++) {
                    gpas[i] = guest.gpa(slot + 64L * i);
                    lens[i] = 16 + i * 8;
                    writable[i] = i == 1; // readable, then writable: the order the spec requires
                    guest.bytes.putByte((int) (slot + 64L * i), (byte) tag);
                }
                final int id = driver.add(n, gpas, lens, writable, nextId % size);
                nextId++;
                expected.add(new int[] {id, n, n == 2 ? 24 : 0, tag});
                added++;
            }
            // Device: consume everything available, complete it in order.
            final java.util.Iterator<int[]> pending = expected.iterator();
            while (queue.available() > 0) {
                assertTrue(queue.pop(chain), () -> "pop failed: " + queue.error());
                assertTrue(pending.hasNext(), "device saw a chain the driver did not add");
                final int[] want = pending.next();
                assertEquals(want[0], chain.head(), "buffer id");
                assertEquals(1, chain.readCount());
                assertEquals(16, chain.readBytes());
                assertEquals(want[2], chain.writeBytes());
                assertEquals((byte) want[3], org.agrona.UnsafeAccess.UNSAFE.getByte(chain.readAddr(0)), "buffer contents");
                queue.addUsed(chain, (int) chain.writeBytes());
            }
            queue.publishUsed();
            // Driver: reap, in order.
            int[] used;
            while ((used = driver.pollUsed()) != null) {
                final int[] want = expected.poll();
                assertNotNull(want, "used entry nobody made available");
                assertEquals(want[0], used[0], "used id");
                assertEquals(want[2], used[1], "used length");
                completed++;
                sinceRestart++;
            }
            idleRounds = completed == before ? idleRounds + 1 : 0;
            assertTrue(idleRounds < 3, () -> "no progress: the driver never got its buffers back");
            if (sinceRestart > 300 && expected.isEmpty()) {
                restart.accept(queue.stop());
                sinceRestart = 0;
            }
        }
        assertNull(driver.pollUsed());
        assertEquals(QueueError.NONE, queue.error());
    }

    private static final class SplitDriver implements Driver {
        private final DriverSplitRing ring;

        SplitDriver(final DriverSplitRing ring) {
            this.ring = ring;
        }

        @Override
        public int free() {
            return ring.free();
        }

        @Override
        public int add(final int n, final long[] gpas, final int[] lens, final boolean[] writable, final int id) {
            return ring.add(gpas, lens, writable);
        }

        @Override
        public int[] pollUsed() {
            return ring.pollUsed();
        }
    }

    private static final class PackedDriver implements Driver {
        private final DriverPackedRing ring;

        PackedDriver(final DriverPackedRing ring) {
            this.ring = ring;
        }

        @Override
        public int free() {
            return ring.free();
        }

        @Override
        public int add(final int n, final long[] gpas, final int[] lens, final boolean[] writable, final int id) {
            ring.add(id, gpas, lens, writable);
            return id;
        }

        @Override
        public int[] pollUsed() {
            return ring.pollUsed();
        }
    }
}
