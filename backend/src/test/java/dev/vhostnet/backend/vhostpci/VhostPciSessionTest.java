package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.vhostpci.VhostPciSession.Ack;
import dev.vhostnet.backend.vhostpci.VhostPciSession.Config;
import dev.vhostnet.backend.vhostpci.VhostPciSession.QueuePosition;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.spec.vhostpci.AckMessage;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.HeartbeatMessage;
import dev.vhostnet.spec.vhostpci.MacAddress;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The session layer over a real AF_UNIX socket: HELLO, ACK matching by seq, heartbeats, peer loss, refusals. */
class VhostPciSessionTest {
    static final Duration WAIT = Duration.ofSeconds(5);
    static final UUID DEVICE_UUID = UUID.fromString("d0000000-0000-4000-8000-00000000000d");
    static final UUID CLIENT_UUID = UUID.fromString("c0000000-0000-4000-8000-00000000000c");

    private final List<AutoCloseable> toClose = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
    }

    /** A copy of a received request, taken on the reader thread. */
    record Received(long seq, int type, int op, int fds, long firstGpa) {
    }

    /** Records requests (taking and closing their fds) and the close reason. */
    static final class Recorder implements VhostPciSession.Handler {
        final BlockingQueue<Received> requests = new LinkedBlockingQueue<>();
        final CountDownLatch closed = new CountDownLatch(1);
        final AtomicReference<String> reason = new AtomicReference<>();
        final AtomicLong closedAt = new AtomicLong();
        volatile long admitReason = VhostPci.R_NONE;

        @Override
        public void onRequest(final VhostPciSession session, final VhostPciFrame request) {
            for (int i = 0; i < request.fdCount(); i++) {
                final int fd = request.takeFd(i);
                assertTrue(FileDescriptors.isOpen(fd), "received fd " + fd + " is open");
                FileDescriptors.closeQuietly(fd);
            }
            long gpa = -1;
            if (request.type() == VhostPci.MEMORY_INFO) {
                gpa = new MemoryInfoMessage().<MemoryInfoMessage>wrap(request.buffer(), VhostPciFrame.payloadOffset())
                    .region(0).guestPhysAddr();
            }
            final int op = request.buffer().getShort(VhostPciFrame.payloadOffset(), java.nio.ByteOrder.LITTLE_ENDIAN);
            requests.add(new Received(request.seq(), request.type(), op, request.fdCount(), gpa));
        }

        @Override
        public long admit(final VhostPciSession session, final UUID peer) {
            return admitReason;
        }

        @Override
        public void onClosed(final VhostPciSession session, final String why) {
            closedAt.set(System.nanoTime());
            reason.set(why);
            closed.countDown();
        }

        Received next() throws InterruptedException {
            final Received r = requests.poll(5, TimeUnit.SECONDS);
            assertNotNull(r, "no request arrived");
            return r;
        }

        boolean awaitClosed(final long ms) throws InterruptedException {
            return closed.await(ms, TimeUnit.MILLISECONDS);
        }
    }

    private SocketPair pair() throws Exception {
        final SocketPair p = SocketPair.open();
        toClose.add(p);
        return p;
    }

    private VhostPciSession session(final SocketPair p, final Config config, final Recorder r) throws Exception {
        final VhostPciSession s = VhostPciSession.start(
            config.role() == VhostPci.ROLE_DEVICE ? p.device : p.client, config, r);
        toClose.add(s);
        return s;
    }

    private static Config device() {
        return Config.defaults(VhostPci.ROLE_DEVICE, DEVICE_UUID);
    }

    private static Config client() {
        return Config.defaults(VhostPci.ROLE_CLIENT, CLIENT_UUID);
    }

    private int memfd(final long size) {
        final int fd = MemFd.create("vhost-pci-test", size);
        toClose.add(() -> FileDescriptors.closeQuietly(fd));
        return fd;
    }

    private static VhostPciSession.PayloadWriter memoryAdd(final long... gpas) {
        return (b, at) -> {
            final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, at);
            m.op(VhostPci.OP_ADD).nregions(gpas.length);
            for (int i = 0; i < gpas.length; i++) {
                m.region(i).guestPhysAddr(gpas[i]).memorySize(4096).userAddr(0x7F00_0000_0000L + gpas[i]).mmapOffset(0);
            }
        };
    }

    @Test
    void helloAgreesOnVersionAndCapabilities() throws Exception {
        final SocketPair p = pair();
        final VhostPciSession d = session(p, device(), new Recorder());
        final VhostPciSession c = session(p, client().withCapabilities(VhostPci.CAP_DIRTY_LOG | VhostPci.CAP_PEER_CONNECTION),
            new Recorder());
        assertEquals(1, d.awaitOpen(WAIT));
        assertEquals(1, c.awaitOpen(WAIT));
        assertTrue(d.isOpen() && c.isOpen());
        assertEquals(CLIENT_UUID, d.peer().uuid());
        assertEquals(DEVICE_UUID, c.peer().uuid());
        assertEquals(VhostPci.ROLE_CLIENT, d.peer().role());
        assertEquals(VhostPci.CAP_DIRTY_LOG | VhostPci.CAP_PEER_CONNECTION, d.capabilities());
        assertEquals(VhostPci.CAP_DIRTY_LOG | VhostPci.CAP_PEER_CONNECTION, c.capabilities());
        assertEquals(0, c.pendingRequests(), "the HELLO is no longer pending");
    }

    @Test
    void twoInFlightMemoryInfoAddsAckedOutOfOrderAreMatchedBySeq() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        final VhostPciSession d = session(p, device(), dr);
        final VhostPciSession c = session(p, client(), new Recorder());
        c.awaitOpen(WAIT);
        d.awaitOpen(WAIT);

        final CompletableFuture<Ack> first = c.request(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(1),
            memoryAdd(0), memfd(4096));
        final CompletableFuture<Ack> second = c.request(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(2),
            memoryAdd(0x10_0000, 0x20_0000), memfd(4096), memfd(4096));
        assertEquals(2, c.pendingRequests());

        final Received r1 = dr.next();
        final Received r2 = dr.next();
        assertEquals(0, r1.firstGpa());
        assertEquals(1, r1.fds());
        assertEquals(0x10_0000, r2.firstGpa());
        assertEquals(2, r2.fds());
        assertTrue(r2.seq() > r1.seq());

        // answer the second request first: DONE; then the first: ADD_FAIL
        d.ack(r2.seq(), VhostPci.MEMORY_INFO, VhostPci.ADD_DONE, 0, 0);
        final Ack a2 = second.get(5, TimeUnit.SECONDS);
        assertEquals(r2.seq(), a2.ackedSeq());
        assertEquals(VhostPci.ADD_DONE, a2.status());
        assertFalse(first.isDone(), "the ACK of request " + r2.seq() + " must not complete request " + r1.seq());

        d.ack(r1.seq(), VhostPci.MEMORY_INFO, VhostPci.ADD_FAIL, VhostPci.R_MAP_FAILED, 0);
        final Ack a1 = first.get(5, TimeUnit.SECONDS);
        assertEquals(r1.seq(), a1.ackedSeq());
        assertEquals(VhostPci.ADD_FAIL, a1.status());
        assertEquals(VhostPci.R_MAP_FAILED, a1.reason());
        assertFalse(a1.success());
        assertEquals(0, c.pendingRequests());
        assertTrue(c.isOpen() && d.isOpen(), "a FAIL keeps the connection");
    }

    @Test
    void deviceInfoDelDoneCarriesTheFinalIndexes() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        final VhostPciSession d = session(p, device(), dr);
        final VhostPciSession c = session(p, client(), new Recorder());
        c.awaitOpen(WAIT);
        final CompletableFuture<Ack> del = c.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0),
            (b, at) -> new DeviceInfoMessage().<DeviceInfoMessage>wrap(b, at).op(VhostPci.OP_DEL)
                .deviceType(VhostPci.DEVICE_NET).nvqs(0).deviceId(MacAddress.parse("52:54:00:12:34:56")).features(0));
        final Received r = dr.next();
        assertEquals(VhostPci.DEVICE_INFO, r.type());
        assertEquals(VhostPci.OP_DEL, r.op());
        d.ack(r.seq(), VhostPci.DEVICE_INFO, VhostPci.DEL_DONE, 0, 0,
            new QueuePosition(0, 9041, 9041, 0), new QueuePosition(1, 700, 700, 0));
        final Ack a = del.get(5, TimeUnit.SECONDS);
        assertEquals(VhostPci.DEL_DONE, a.status());
        assertEquals(List.of(new QueuePosition(0, 9041, 9041, 0), new QueuePosition(1, 700, 700, 0)), a.states());
    }

    @Test
    void idleSessionsStayAliveOnHeartbeatsAndHoldALease() throws Exception {
        final SocketPair p = pair();
        final long timeout = TimeUnit.MILLISECONDS.toNanos(1000);
        final VhostPciSession d = session(p, device().withHeartbeat(50, 1000), new Recorder());
        final VhostPciSession c = session(p, client().withHeartbeat(50, 1000), new Recorder());
        c.awaitOpen(WAIT);
        d.awaitOpen(WAIT);
        // Idle but for heartbeats, until each side has heard from the other more than two time-outs after the
        // start: without the heartbeats either would have been declared dead by then.
        final long start = System.nanoTime();
        Await.until("two time-outs of idle sessions kept alive by heartbeats", Duration.ofSeconds(30),
            () -> !c.isOpen() || !d.isOpen()
                || d.lastReceivedNanos() - start > 2 * timeout && c.lastReceivedNanos() - start > 2 * timeout,
            () -> "closed: " + c.closeReason() + " / " + d.closeReason());
        assertTrue(c.isOpen() && d.isOpen(), "closed: " + c.closeReason() + " / " + d.closeReason());
        assertTrue(d.leaseDeadlineNanos() - start > 2 * timeout, "the device side's lease was renewed by PONGs");
        assertTrue(c.leaseDeadlineNanos() - start > 2 * timeout, "the client side's lease was renewed by PONGs");
    }

    @Test
    void aPeerThatStopsAnsweringIsDeclaredDeadWithinTheTimeout() throws Exception {
        final SocketPair p = pair();
        final Recorder cr = new Recorder();
        final VhostPciSession c = session(p, client().withHeartbeat(50, 300), cr);
        final RawPeer silent = new RawPeer(p.device);
        toClose.add(silent);
        silent.handshake(VhostPci.ROLE_DEVICE);
        c.awaitOpen(WAIT);
        final long lastHeard = c.lastReceivedNanos();
        // the raw device side now reads nothing and answers nothing
        assertTrue(cr.awaitClosed(WAIT.toMillis()), "not declared dead");
        assertTrue(cr.reason.get().startsWith("heartbeat timeout"), cr.reason.get());
        assertTrue(cr.reason.get().contains("(timeout 300 ms)"), cr.reason.get());
        // Never before the time-out (how much later depends on the scheduler of a loaded machine: not asserted).
        final long afterNanos = cr.closedAt.get() - lastHeard;
        assertTrue(afterNanos > TimeUnit.MILLISECONDS.toNanos(300),
            "declared dead " + TimeUnit.NANOSECONDS.toMillis(afterNanos) + " ms after the last message");
        assertTrue(c.isClosed());
        assertThrows(Exception.class, () -> c.request(VhostPci.PEER_CONNECTION, 8, (b, at) -> { }).get());
    }

    @Test
    void aHangUpIsNoticedAtOnceAndFailsPendingRequests() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        final Recorder cr = new Recorder();
        final VhostPciSession d = session(p, device(), dr);
        final VhostPciSession c = session(p, client(), cr);
        c.awaitOpen(WAIT);
        d.awaitOpen(WAIT);
        final CompletableFuture<Ack> unanswered = c.request(VhostPci.PEER_CONNECTION, 8,
            (b, at) -> b.putShort(at, (short) VhostPci.CONNECTION_ON));
        dr.next();
        d.close(); // like a killed process: the kernel closes the socket
        assertTrue(cr.awaitClosed(1000));
        assertEquals("peer hung up", cr.reason.get());
        final Exception e = assertThrows(Exception.class, () -> unanswered.get(1, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof VhostPciException, e.toString());
    }

    @Test
    void aVersionMismatchIsRefusedWithBothRangesAndTheConnectionClosed() throws Exception {
        final SocketPair p = pair();
        final Recorder cr = new Recorder();
        final VhostPciSession c = session(p, client(), cr); // speaks 1..1
        final RawPeer newer = new RawPeer(p.device);
        toClose.add(newer);
        newer.expect(VhostPci.HELLO);
        final long theirHello = newer.frame.seq();
        final long ourHello = newer.hello(VhostPci.ROLE_DEVICE, 2, 3);
        newer.ack(theirHello, VhostPci.HELLO, VhostPci.DONE, 0, 2);

        newer.expect(VhostPci.ACK);
        final AckMessage refusal = newer.ackPayload();
        assertEquals(ourHello, refusal.ackedSeq());
        assertEquals(VhostPci.HELLO, refusal.ackedType());
        assertEquals(VhostPci.FAIL, refusal.status());
        assertEquals(VhostPci.R_VERSION_UNSUPPORTED, refusal.reason());
        assertEquals(1 | 1L << 16, refusal.value(), "the refusing side's range 1..1");
        assertEquals(1, newer.frame.header().version(), "a HELLO ACK is always version 1");
        assertTrue(newer.closedByPeer(), "the refusing side ends the connection");
        newer.close(); // as a real peer does on end of stream: the refusing side then closes at once

        final VhostPciException e = assertThrows(VhostPciException.class, () -> c.awaitOpen(WAIT));
        assertEquals(VhostPci.R_VERSION_UNSUPPORTED, e.reason());
        assertTrue(cr.awaitClosed(500));
        assertFalse(c.isOpen());
    }

    @Test
    void twoSessionsWithoutACommonVersionBothFail() throws Exception {
        final SocketPair p = pair();
        final VhostPciSession d = session(p, device().withVersions(2, 3), new Recorder());
        final VhostPciSession c = session(p, client(), new Recorder());
        assertEquals(VhostPci.R_VERSION_UNSUPPORTED, assertThrows(VhostPciException.class, () -> c.awaitOpen(WAIT)).reason());
        assertEquals(VhostPci.R_VERSION_UNSUPPORTED, assertThrows(VhostPciException.class, () -> d.awaitOpen(WAIT)).reason());
    }

    @Test
    void theDeviceSideRefusesASecondClientAsBusy() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        dr.admitReason = VhostPci.R_BUSY;
        session(p, device(), dr);
        final VhostPciSession c = session(p, client(), new Recorder());
        final VhostPciException e = assertThrows(VhostPciException.class, () -> c.awaitOpen(WAIT));
        assertEquals(VhostPci.R_BUSY, e.reason(), e.getMessage());
    }

    @Test
    void sameRoleOnBothEndsIsARoleConflict() throws Exception {
        final SocketPair p = pair();
        final VhostPciSession c = session(p, client(), new Recorder());
        final RawPeer alsoClient = new RawPeer(p.device);
        toClose.add(alsoClient);
        alsoClient.expect(VhostPci.HELLO);
        alsoClient.hello(VhostPci.ROLE_CLIENT, 1, 1);
        alsoClient.expect(VhostPci.ACK);
        assertEquals(VhostPci.R_ROLE_CONFLICT, alsoClient.ackPayload().reason());
        assertEquals(VhostPci.R_ROLE_CONFLICT, assertThrows(VhostPciException.class, () -> c.awaitOpen(WAIT)).reason());
    }

    @Test
    void aWrongFdCountOrLengthIsAnsweredWithAFailAndTheConnectionStays() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        final VhostPciSession d = session(p, device(), dr);
        final RawPeer c = new RawPeer(p.client);
        toClose.add(c);
        c.handshake(VhostPci.ROLE_CLIENT);
        d.awaitOpen(WAIT);

        // two regions announced, one fd sent
        final long seq = c.send(VhostPci.MEMORY_INFO, 1, MemoryInfoMessage.lengthFor(2),
            (b, at) -> memoryAdd(0, 0x10_0000).write(b, at), memfd(4096));
        AckMessage ack = nextAckSkippingPings(c);
        assertEquals(seq, ack.ackedSeq());
        assertEquals(VhostPci.ADD_FAIL, ack.status());
        assertEquals(VhostPci.R_BAD_FDS, ack.reason());

        // msg_len one byte longer than two regions need
        final long seq2 = c.send(VhostPci.MEMORY_INFO, 1, MemoryInfoMessage.lengthFor(2) + 1,
            (b, at) -> memoryAdd(0, 0x10_0000).write(b, at), memfd(4096), memfd(4096));
        ack = nextAckSkippingPings(c);
        assertEquals(seq2, ack.ackedSeq());
        assertEquals(VhostPci.ADD_FAIL, ack.status());
        assertEquals(VhostPci.R_BAD_MESSAGE, ack.reason());

        assertTrue(dr.requests.isEmpty(), "malformed requests never reach the handler");
        assertTrue(d.isOpen());
        c.send(VhostPci.HEARTBEAT, 1, HeartbeatMessage.LENGTH,
            (b, at) -> new HeartbeatMessage().<HeartbeatMessage>wrap(b, at).op(VhostPci.PING).pingSeq(0).timestampNs(42));
        final long pingSeq = c.nextSeq - 1;
        while (true) {
            c.expect(VhostPci.HEARTBEAT);
            final HeartbeatMessage hb = new HeartbeatMessage().wrap(c.frame.buffer(), VhostPciFrame.payloadOffset());
            if (hb.op() == VhostPci.PONG) {
                assertEquals(pingSeq, hb.pingSeq());
                assertEquals(42, hb.timestampNs());
                break;
            }
        }
    }

    private static AckMessage nextAckSkippingPings(final RawPeer c) throws Exception {
        while (true) {
            if (!c.channel.receive(c.frame)) {
                throw new AssertionError("connection closed");
            }
            if (c.frame.type() == VhostPci.ACK) {
                return c.ackPayload();
            }
        }
    }

    @Test
    void aSequenceGapClosesTheConnection() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        session(p, device(), dr);
        final RawPeer c = new RawPeer(p.client);
        toClose.add(c);
        c.handshake(VhostPci.ROLE_CLIENT);
        c.sendWithSeq(c.nextSeq + 1, VhostPci.PEER_CONNECTION, 1, 8, (b, at) -> { });
        assertTrue(dr.awaitClosed(2000));
        assertTrue(dr.reason.get().contains("msg_seq"), dr.reason.get());
        assertTrue(c.closedByPeer());
    }

    @Test
    void anAckForARequestNeverSentClosesTheConnection() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        session(p, device(), dr);
        final RawPeer c = new RawPeer(p.client);
        toClose.add(c);
        c.handshake(VhostPci.ROLE_CLIENT);
        c.ack(77, VhostPci.MEMORY_INFO, VhostPci.ADD_DONE, 0, 0);
        assertTrue(dr.awaitClosed(2000));
        assertTrue(dr.reason.get().contains("not pending"), dr.reason.get());
    }

    @Test
    void aMessageWithAnotherVersionAfterHelloClosesTheConnection() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        session(p, device(), dr);
        final RawPeer c = new RawPeer(p.client);
        toClose.add(c);
        c.handshake(VhostPci.ROLE_CLIENT);
        c.send(VhostPci.PEER_CONNECTION, 2, 8, (b, at) -> { });
        assertTrue(dr.awaitClosed(2000));
        assertTrue(dr.reason.get().contains("msg_version 2"), dr.reason.get());
    }

    @Test
    void aRequestBeforeHelloClosesTheConnection() throws Exception {
        final SocketPair p = pair();
        final Recorder dr = new Recorder();
        session(p, device(), dr);
        final RawPeer c = new RawPeer(p.client);
        toClose.add(c);
        c.send(VhostPci.PEER_CONNECTION, 1, 8, (b, at) -> { });
        assertTrue(dr.awaitClosed(2000));
        assertTrue(dr.reason.get().contains("before HELLO"), dr.reason.get());
    }
}
