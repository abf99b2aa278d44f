package dev.vhostnet.backend;

import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.GuestMemoryImage.MemoryRegion;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.frontend.VirtioNetDriver.Options;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.MemoryTableMessage;
import dev.vhostnet.spec.VhostUserHeader;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** SET_MEM_TABLE, GET_MAX_MEM_SLOTS, ADD_MEM_REG and REM_MEM_REG, good and bad. */
class MemoryTableTest {
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;
    private InProcessBackend backend;

    @BeforeEach
    void startBackend() throws Exception {
        backend = InProcessBackend.peered(dir);
    }

    @AfterEach
    void stopBackend() {
        backend.close();
    }

    @Test
    void buffersStraddlingTwoAdjacentRegionsAreGatheredAndScattered() throws Exception {
        final Options twoRegions = Options.defaults().memoryWindows(2).mergeable(false);
        try (VirtioNetDriver a = backend.start(0, twoRegions); VirtioNetDriver b = backend.start(1, twoRegions)) {
            final long boundary = a.memory().size() / 2;
            final byte[] frame = Frames.frame(1000, 42);
            // TX: header + frame in one descriptor that starts 100 bytes before the region boundary.
            final long tx = a.memory().reserve(boundary - 100, VirtioNetDriver.HEADER_LENGTH + frame.length);
            a.memory().buffer().putBytes((int) tx + VirtioNetDriver.HEADER_LENGTH, frame);
            // RX: one writable descriptor across B's boundary as well.
            final int rxLen = 2048;
            final long rx = b.memory().reserve(boundary - 7, rxLen);
            b.rx().add(List.of(DriverSplitQueue.Segment.writable(b.memory().gpa(rx), rxLen)), false);
            b.rx().publish();
            a.tx().add(List.of(DriverSplitQueue.Segment.readable(a.memory().gpa(tx), VirtioNetDriver.HEADER_LENGTH + frame.length)), false);
            a.tx().publish();

            final DriverSplitQueue.Used used = VirtioNetDriver.awaitUsed(b.rx(), WAIT);
            assertNotNull(used, "frame delivered");
            assertEquals(VirtioNetDriver.HEADER_LENGTH + frame.length, used.len());
            final byte[] got = new byte[frame.length];
            b.memory().buffer().getBytes((int) rx + VirtioNetDriver.HEADER_LENGTH, got);
            assertArrayEquals(frame, got);
        }
    }

    @Test
    void badTablesAreRejectedAndTheCurrentTableStaysInForce() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1);
             GuestMemoryImage other = GuestMemoryImage.create(1, 0x4000_0000L, 0x5000_0000L)) {
            b.postRxBuffers(16, 2048);
            final VhostUserFrontend fe = a.frontend();
            final MemoryRegion good = a.memory().region();
            final long before = OpenFds.count();

            assertRejected(fe, table(List.of()), "0 regions");
            final List<MemoryRegion> nine = new ArrayList<>();
            for (int i = 0; i < 9; i++) {
                nine.add(other.window(i * 64 * 1024L, 64 * 1024L));
            }
            assertRejected(fe, table(nine), "9 regions", fds(nine));
            assertRejected(fe, table(List.of(good, other.region())), "2 regions, 1 fd", good.fd());
            assertRejected(fe, table(List.of(good)), "1 region, 2 fds", good.fd(), other.fd());
            assertRejected(fe, table(List.of(good)), "1 region, no fd");
            assertRejected(fe, table(List.of(good.withSize(good.size() + 4096))), "beyond the end of the fd", good.fd());
            assertRejected(fe, table(List.of(other.window(MIB - 4096, 4096).withSize(8192))), "offset+size beyond fd", other.fd());
            assertRejected(fe, table(List.of(good, other.region().movedTo(good.guestPhysAddr() + 4096, 0x5000_0000L))),
                "overlapping guest ranges", good.fd(), other.fd());
            assertRejected(fe, table(List.of(other.region().movedTo(-4096L, 0x5000_0000L))), "gpa wraps 2^64", other.fd());
            assertRejected(fe, table(List.of(other.region().movedTo(0x4000_0000L, -4096L))), "uva wraps 2^64", other.fd());
            assertRejected(fe, table(List.of(other.region().withSize(0))), "empty region", other.fd());
            // A bad first region must not leak the fds of the regions after it.
            assertRejected(fe, table(List.of(good.withSize(good.size() * 2), other.window(0, 4096), other.window(4096, 4096))),
                "bad region first", good.fd(), other.fd(), other.fd());
            final byte[] shortPayload = Arrays.copyOf(table(List.of(good, other.region())), MemoryTableMessage.lengthFor(1));
            assertRejected(fe, shortPayload, "payload shorter than nregions says", good.fd(), other.fd());

            OpenFds.awaitBackTo(before, "after rejected tables");
            final byte[] f = Frames.frame(200, 1);
            a.send(f);
            assertArrayEquals(f, b.receive(WAIT), "the previous table still serves the rings");
        }
    }

    private static void assertRejected(final VhostUserFrontend fe, final byte[] payload, final String what, final int... fds)
        throws Exception {
        assertNotEquals(0, fe.ack(FrontendRequest.SET_MEM_TABLE, payload, fds), what);
    }

    private static byte[] table(final List<MemoryRegion> regions) {
        if (regions.size() > MemoryTableMessage.MAX_REGIONS) {
            // The flyweight writes what it is given; the back-end must refuse the count.
            final byte[] payload = new byte[MemoryTableMessage.lengthFor(regions.size())];
            final byte[] first = VhostUserFrontend.memTable(regions.subList(0, MemoryTableMessage.MAX_REGIONS));
            System.arraycopy(first, 0, payload, 0, first.length);
            payload[0] = (byte) regions.size();
            return payload;
        }
        return VhostUserFrontend.memTable(regions);
    }

    private static int[] fds(final List<MemoryRegion> regions) {
        return regions.stream().mapToInt(MemoryRegion::fd).toArray();
    }

    @Test
    void replacingTheTableWhileRunningRemapsTheRings() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            // Same memory, now described as two regions: the rings must follow without a restart.
            a.frontend().setMemTable(List.of(a.memory().window(0, 4 * MIB), a.memory().window(4 * MIB, 4 * MIB)));
            final byte[] f = Frames.frame(300, 9);
            a.send(f);
            assertArrayEquals(f, b.receive(WAIT));
        }
    }

    @Test
    void maxMemSlotsNeedsConfigureMemSlots() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            assertEquals(NetDeviceConfig.MAX_MEM_SLOTS, s.fe.getMaxMemSlots());
        }
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            s.fe.send(FrontendRequest.GET_MAX_MEM_SLOTS, VhostUserHeader.VERSION, new byte[0]);
            assertTrue(s.fe.awaitClosed(WAIT));
        }
    }

    @Test
    void memoryAddedRegionByRegionCarriesTraffic() throws Exception {
        final Options slots = Options.defaults().memSlots(true).memoryWindows(4);
        try (VirtioNetDriver a = backend.start(0, slots); VirtioNetDriver b = backend.start(1, slots)) {
            b.postRxBuffers(8, 2048);
            final byte[] f = Frames.frame(700, 5);
            a.send(f, 3, true);
            assertArrayEquals(f, b.receive(WAIT));
        }
    }

    @Test
    void addAndRemoveRegionsUpToTheSlotLimit() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            final long before = OpenFds.count();
            final List<MemoryRegion> regions = new ArrayList<>();
            for (int i = 0; i < NetDeviceConfig.MAX_MEM_SLOTS + 1; i++) {
                regions.add(s.memory.window(i * 8192L, 4096));
            }
            for (int i = 0; i < NetDeviceConfig.MAX_MEM_SLOTS; i++) {
                s.fe.addMemReg(regions.get(i));
            }
            final MemoryRegion extra = regions.get(NetDeviceConfig.MAX_MEM_SLOTS);
            assertNotEquals(0, s.fe.ack(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(extra), extra.fd()),
                "slot " + (NetDeviceConfig.MAX_MEM_SLOTS + 1));
            final MemoryRegion unknown = s.memory.window(4096, 4096);
            assertNotEquals(0, s.fe.ack(FrontendRequest.REM_MEM_REG, VhostUserFrontend.singleRegion(unknown)), "unknown region");
            for (int i = 0; i < NetDeviceConfig.MAX_MEM_SLOTS; i++) {
                s.fe.remMemReg(regions.get(i));
            }
            assertNotEquals(0, s.fe.ack(FrontendRequest.REM_MEM_REG, VhostUserFrontend.singleRegion(regions.get(0))),
                "already removed");
            OpenFds.awaitBackTo(before, "every region removed");
            s.fe.addMemReg(regions.get(0));
        }
    }

    /** QEMU 7.2 with queues=N: every queue pair's vhost_dev adds and removes each region over the same socket. */
    @Test
    void aRegionAddedOncePerQueuePairIsCountedAndRemovedOncePerQueuePair() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            final long before = OpenFds.count();
            final MemoryRegion region = s.memory.window(0, MIB);
            s.fe.addMemReg(region);
            s.fe.addMemReg(region); // pair 1's copy: accepted, its fd closed
            s.fe.addMemReg(region); // pair 2's copy
            final MemoryRegion overlapping = s.memory.window(MIB / 2, MIB);
            assertNotEquals(0, s.fe.ack(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(overlapping), overlapping.fd()),
                "a different region overlapping it is still refused");
            s.fe.remMemReg(region);
            s.fe.remMemReg(region);
            s.fe.remMemReg(region);
            assertNotEquals(0, s.fe.ack(FrontendRequest.REM_MEM_REG, VhostUserFrontend.singleRegion(region)),
                "removed as often as it was added");
            OpenFds.awaitBackTo(before, "every copy removed");
            s.fe.addMemReg(region);
        }
    }

    @Test
    void badAddMemRegRequestsAreRejected() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            final MemoryRegion first = s.memory.window(0, MIB);
            s.fe.addMemReg(first);
            final long before = OpenFds.count();
            final MemoryRegion overlapping = s.memory.window(MIB / 2, MIB);
            assertNotEquals(0, s.fe.ack(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(overlapping), overlapping.fd()));
            final MemoryRegion next = s.memory.window(MIB, MIB);
            assertNotEquals(0, s.fe.ack(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(next)), "no fd");
            assertNotEquals(0, s.fe.ack(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(next.withSize(8 * MIB)),
                next.fd()), "beyond the fd");
            assertNotEquals(0, s.fe.ack(FrontendRequest.ADD_MEM_REG, new byte[8], next.fd()), "short payload");
            OpenFds.awaitBackTo(before, "after rejected ADD_MEM_REG");
            s.fe.addMemReg(next);
        }
    }

    @Test
    void removingTheRegionUnderARingBreaksOnlyThatPort() throws Exception {
        final Options slots = Options.defaults().memSlots(true).memoryWindows(2);
        try (VirtioNetDriver a = backend.start(0, slots); VirtioNetDriver b = backend.start(1)) {
            a.postRxBuffers(8, 2048);
            // The rings were allocated first, so they live in the first window.
            a.frontend().remMemReg(a.memoryTable().get(0));
            Await.until("A's TX ring broken", () -> backend.queue(0, TX).error() == QueueError.RING_UNMAPPED);
            // B keeps working: its frames to A are dropped (A cannot receive), not a crash.
            b.send(Frames.frame(100, 1));
            assertTrue(b.awaitTxDone(WAIT));
            backend.awaitCounter(1, TX, dev.vhostnet.dataplane.virtq.QueueCounters.DROPS, 1);
        }
    }
}
