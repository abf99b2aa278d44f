package dev.vhostnet.backend;

import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.BackendRequest;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.IotlbMessage;
import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.VhostUserHeader;
import dev.vhostnet.spec.VirtioFeature;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.newsclub.net.unix.AFUNIXSocketChannel;
import org.newsclub.net.unix.AFUNIXSocketPair;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VIRTIO_F_ACCESS_PLATFORM: the test plays QEMU with a vIOMMU for port A. Ring and buffer addresses are
 * IOVAs; the back-end asks for translations over the back-end channel, the test answers (late, page by
 * page), invalidates under traffic, and maps with too few permissions. Port B is a plain front-end.
 */
class IotlbTest {
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final long IOVA_BASE = 0xA000_0000L;
    private static final int HEADER = 12;

    @TempDir
    Path dir;
    private InProcessBackend backend;
    private GuestMemoryImage memory;
    private VhostUserFrontend fe;
    private DriverSplitQueue rx;
    private DriverSplitQueue tx;
    private AFUNIXSocketChannel channel;
    private AFUNIXSocketChannel passedEnd;
    private Thread reader;
    private final BlockingQueue<long[]> requests = new LinkedBlockingQueue<>();

    @BeforeEach
    void setUp() throws Exception {
        backend = InProcessBackend.peered(dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        if (reader != null) {
            reader.interrupt();
        }
        if (channel != null) {
            channel.close();
            passedEnd.close();
        }
        if (fe != null) {
            fe.close();
        }
        if (rx != null) {
            rx.close();
            tx.close();
        }
        if (memory != null) {
            memory.close();
        }
        backend.close();
    }

    private long iova(final long uva) {
        return IOVA_BASE + (uva - memory.uvaBase());
    }

    private long iovaOfOffset(final long offset) {
        return IOVA_BASE + offset;
    }

    /** QEMU's start-up with iommu_platform=on, then rings given as IOVAs. */
    private void startIommuFrontend() throws Exception {
        memory = GuestMemoryImage.create(16);
        fe = VhostUserFrontend.connect(backend.socket(0));
        fe.setOwner();
        assertTrue(VirtioFeature.has(fe.getFeatures(), VirtioFeature.ACCESS_PLATFORM), "ACCESS_PLATFORM offered");
        fe.setProtocolFeatures(ProtocolFeature.bit(ProtocolFeature.REPLY_ACK) | ProtocolFeature.bit(ProtocolFeature.BACKEND_REQ));
        final AFUNIXSocketPair<AFUNIXSocketChannel> pair = AFUNIXSocketPair.open();
        channel = pair.getSocket2();
        final int backendEnd = FileDescriptorCast.using(pair.getSocket1().getFileDescriptor()).as(Integer.class);
        fe.tell(FrontendRequest.SET_BACKEND_REQ_FD, new byte[0], backendEnd);
        // Keep our copy of the back-end's end open until tear-down: closing it through junixsocket shuts the
        // socket down, which would cut the back-end's copy too.
        passedEnd = pair.getSocket1();
        reader = new Thread(this::readBackendChannel, "test-backend-channel");
        reader.setDaemon(true);
        reader.start();
        fe.setFeatures(VirtioFeature.bit(VirtioFeature.VERSION_1) | VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)
            | VirtioFeature.bit(VirtioFeature.ACCESS_PLATFORM));
        fe.setMemTable(List.of(memory.region()));
        rx = new DriverSplitQueue(memory, 0, 64);
        tx = new DriverSplitQueue(memory, 1, 64);
        for (final DriverSplitQueue q : List.of(rx, tx)) {
            fe.setVringNum(q.index(), q.size());
            fe.setVringBase(q.index(), 0);
            fe.setVringAddr(q.index(), iova(q.descUva()), iova(q.usedUva()), iova(q.availUva()));
            fe.setVringKick(q.index(), q.kickFd().fd());
            fe.setVringCall(q.index(), q.callFd().fd());
            fe.setVringEnable(q.index(), true);
        }
    }

    private void readBackendChannel() {
        final ByteBuffer b = ByteBuffer.allocate(VhostUserHeader.LENGTH + IotlbMessage.LENGTH).order(ByteOrder.LITTLE_ENDIAN);
        try {
            while (!Thread.currentThread().isInterrupted()) {
                b.clear();
                while (b.hasRemaining()) {
                    if (channel.read(b) < 0) {
                        return;
                    }
                }
                assertEquals(BackendRequest.IOTLB_MSG, b.getInt(0));
                requests.add(new long[] {b.get(12 + 25), b.getLong(12), b.get(12 + 24)}); // type, iova, perm
            }
        } catch (final IOException e) {
            // closed at tear-down
        }
    }

    private void update(final long iova, final long size, final long uva, final int perm) throws IOException {
        fe.tell(FrontendRequest.IOTLB_MSG, iotlb(IotlbMessage.TYPE_UPDATE, iova, size, uva, perm));
    }

    private void invalidate(final long iova, final long size) throws IOException {
        fe.tell(FrontendRequest.IOTLB_MSG, iotlb(IotlbMessage.TYPE_INVALIDATE, iova, size, 0, 0));
    }

    private static byte[] iotlb(final int type, final long iova, final long size, final long uaddr, final int perm) {
        return ByteBuffer.allocate(IotlbMessage.LENGTH).order(ByteOrder.LITTLE_ENDIAN)
            .putLong(iova).putLong(size).putLong(uaddr).put((byte) perm).put((byte) type).array();
    }

    /** Put a frame in guest memory at {@code offset} (virtio-net header first) and make it available on TX. */
    private void transmit(final long offset, final byte[] frame) {
        memory.buffer().setMemory((int) offset, HEADER, (byte) 0);
        memory.buffer().putBytes((int) offset + HEADER, frame);
        tx.add(List.of(DriverSplitQueue.Segment.readable(iovaOfOffset(offset), HEADER + frame.length)), false);
        tx.publish();
        tx.kick();
    }

    @Test
    void missesAreAnsweredLatePageByPageAndTrafficFlows() throws Exception {
        startIommuFrontend();
        try (VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            final long buffer = memory.allocate(4096, 4096);
            final byte[] frame = Frames.frame(700, 42);
            transmit(buffer, frame);
            // Answer every miss, one 4 KiB page at a time, only after it was asked for (as QEMU does).
            int answered = 0;
            byte[] got = null;
            final long deadline = System.nanoTime() + WAIT.toNanos() * 2;
            while (got == null && System.nanoTime() < deadline) {
                final long[] r = requests.poll(50, TimeUnit.MILLISECONDS);
                if (r != null) {
                    assertEquals(IotlbMessage.TYPE_MISS, r[0], "only misses expected");
                    final long page = r[1] & ~4095L;
                    assertTrue(page >= IOVA_BASE && page < IOVA_BASE + memory.size(), "miss inside the guest's IOVA space");
                    update(page, 4096, memory.uvaBase() + (page - IOVA_BASE), IotlbMessage.PERM_RW);
                    answered++;
                }
                got = b.receive(Duration.ofMillis(10));
            }
            assertNotNull(got, "frame delivered once its translations arrived (" + answered + " misses answered)");
            assertArrayEquals(frame, got);
            // Requests are per page and de-duplicated: at least the rings' page and the buffer's page missed.
            assertTrue(answered >= 2, "the rings and the buffer missed: " + answered);
        }
    }

    @Test
    void afterAnInvalidateIsAcknowledgedTheOldMappingIsNeverUsed() throws Exception {
        startIommuFrontend();
        update(IOVA_BASE, memory.size(), memory.uvaBase(), IotlbMessage.PERM_RW);
        try (VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            final long pageP = memory.allocate(4096, 4096);
            final long pageQ = memory.allocate(4096, 4096);
            final byte[] first = Frames.frame(300, 1);
            transmit(pageP, first);
            assertArrayEquals(first, b.receive(WAIT), "mapped: delivered");

            // Invalidate P's IOVA; once acknowledged, a chain at that IOVA must miss, not read page P.
            invalidate(iovaOfOffset(pageP), 4096);
            requests.clear();
            final byte[] stale = Frames.frame(300, 2);
            transmit(pageP, stale);
            final long[] miss = requests.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            assertNotNull(miss, "the back-end asked for the invalidated page");
            assertEquals(iovaOfOffset(pageP), miss[1] & ~4095L);
            assertNull(b.receive(Duration.ofMillis(200)), "nothing delivered while the translation is missing");

            // Map that IOVA to page Q instead: the back-end must read Q's contents.
            final byte[] fresh = Frames.frame(300, 3);
            memory.buffer().setMemory((int) pageQ, HEADER, (byte) 0);
            memory.buffer().putBytes((int) pageQ + HEADER, fresh);
            update(iovaOfOffset(pageP), 4096, memory.uvaBase() + pageQ, IotlbMessage.PERM_RW);
            assertArrayEquals(fresh, b.receive(WAIT), "the new mapping is used, never the old one");
        }
    }

    @Test
    void aMappingWithoutReadPermissionIsReportedAndBreaksOnlyThatQueue() throws Exception {
        startIommuFrontend();
        final long buffer = memory.allocate(4096, 4096);
        // Everything readable and writable except the TX buffer page, which the device may only write.
        update(IOVA_BASE, buffer, memory.uvaBase(), IotlbMessage.PERM_RW);
        update(iovaOfOffset(buffer), 4096, memory.uvaBase() + buffer, IotlbMessage.PERM_WO);
        update(iovaOfOffset(buffer + 4096), memory.size() - buffer - 4096, memory.uvaBase() + buffer + 4096, IotlbMessage.PERM_RW);
        try (VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            transmit(buffer, Frames.frame(200, 9));
            // The rings missed at start-up, before the updates above; skip those misses.
            long[] fail;
            do {
                fail = requests.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
                assertNotNull(fail, "access failure reported on the back-end channel");
            } while (fail[0] == IotlbMessage.TYPE_MISS && fail[1] < iovaOfOffset(buffer));
            assertEquals(IotlbMessage.TYPE_ACCESS_FAIL, fail[0]);
            assertEquals(iovaOfOffset(buffer), fail[1]);
            Await.until("TX queue broken", WAIT, () -> backend.queue(0, 1).error() == QueueError.IOTLB_DENIED,
                () -> String.valueOf(backend.queue(0, 1).error()));
            assertNull(b.receive(Duration.ofMillis(100)));
            // The other port is unaffected: B still transmits (to A's RX, which is fine).
            assertEquals(QueueError.NONE, backend.queue(1, 1).error());
        }
    }

    @Test
    void aTranslationThatNeverComesDoesNotHoldThePeerForever() throws Exception {
        startIommuFrontend();
        final long rxBuffer = memory.allocate(4096, 4096);
        // The rings are mapped; A's receive buffer is not, and nobody will ever map it (a hostile or broken guest).
        update(IOVA_BASE, rxBuffer, memory.uvaBase(), IotlbMessage.PERM_RW);
        rx.add(List.of(DriverSplitQueue.Segment.writable(iovaOfOffset(rxBuffer), 2048)), false);
        rx.publish();
        rx.kick();
        try (VirtioNetDriver b = backend.start(1)) {
            for (int i = 0; i < 8; i++) {
                b.send(Frames.frame(InProcessBackend.MAC_A, InProcessBackend.MAC_B, 400, i));
            }
            // Held back briefly while A's translation is asked for, then dropped: B's buffers come back.
            assertTrue(b.awaitTxDone(WAIT), "B's transmissions complete although A never answers");
            Await.until("B's frames counted as drops", WAIT, () -> backend.txDrops(1) == 8,
                () -> String.valueOf(backend.txDrops(1)));
            assertEquals(QueueError.NONE, backend.queue(0, 0).error(), "A's queue is waiting, not broken");
        }
    }

    /**
     * QEMU crops a full device-IOTLB flush (the guest's lazy-mode flush) to each notifier section: the section
     * above the MSI window gets a size of 2^64 - 0xfef00000, negative as a Java long; one covering the whole
     * space would get 2^64, sent as 0. Both mean "to the end": afterwards nothing of the old mappings may be
     * used, and the back-end asks again.
     */
    @ParameterizedTest(name = "size 0x{0}")
    @ValueSource(strings = {"0", "ffffffff60000000"}) // 0 and 2^64 - IOVA_BASE
    void anInvalidationRunningToTheEndOfTheIovaSpaceIsApplied(final String hexSize) throws Exception {
        final long size = Long.parseUnsignedLong(hexSize, 16);
        startIommuFrontend();
        update(IOVA_BASE, memory.size(), memory.uvaBase(), IotlbMessage.PERM_RW);
        try (VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            final long page = memory.allocate(4096, 4096);
            final byte[] first = Frames.frame(300, 1);
            transmit(page, first);
            assertArrayEquals(first, b.receive(WAIT), "mapped: delivered");

            invalidate(IOVA_BASE, size);
            requests.clear();
            final byte[] second = Frames.frame(300, 2);
            transmit(page, second);
            final long[] miss = requests.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            assertNotNull(miss, "the back-end asked again: the invalidation was applied, not ignored");
            assertEquals(IotlbMessage.TYPE_MISS, miss[0]);
            assertNull(b.receive(Duration.ofMillis(200)), "nothing read through the invalidated mappings");

            update(IOVA_BASE, memory.size(), memory.uvaBase(), IotlbMessage.PERM_RW);
            assertArrayEquals(second, b.receive(WAIT), "delivered once mapped again");
        }
    }

    /** GET_VRING_BASE drops the whole IOTLB (as DPDK does): a restarted ring asks for its translations again. */
    @Test
    void getVringBaseDropsTheIotlb() throws Exception {
        startIommuFrontend();
        update(IOVA_BASE, memory.size(), memory.uvaBase(), IotlbMessage.PERM_RW);
        try (VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            final long page = memory.allocate(4096, 4096);
            final byte[] first = Frames.frame(300, 1);
            transmit(page, first);
            assertArrayEquals(first, b.receive(WAIT));
            requests.clear(); // the rings' misses at start-up, before the update
            transmit(page, first);
            assertArrayEquals(first, b.receive(WAIT));
            assertNull(requests.poll(100, TimeUnit.MILLISECONDS), "everything is mapped: no miss");

            final int base = fe.getVringBase(tx.index());
            fe.setVringBase(tx.index(), base);
            fe.setVringKick(tx.index(), tx.kickFd().fd());
            final long[] miss = requests.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            assertNotNull(miss, "the restarted ring's translations were dropped with the IOTLB");
            assertEquals(IotlbMessage.TYPE_MISS, miss[0]);
        }
    }
}
