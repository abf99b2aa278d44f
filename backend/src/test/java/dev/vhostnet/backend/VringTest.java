package dev.vhostnet.backend;

import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.frontend.VirtioNetDriver.Options;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.U64Message;
import dev.vhostnet.spec.VringAddrMessage;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

import static dev.vhostnet.frontend.VirtioNetDriver.RX;
import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Ring setup: NUM, ADDR, BASE, GET_VRING_BASE, KICK/CALL/ERR (with and without fds), ENABLE. */
class VringTest {
    private static final Duration WAIT = Duration.ofSeconds(5);

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
    void queueSizeMustBeAPowerOfTwoUpTo32768() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            for (final long bad : new long[] {0, 3, 100, 65536, 1L << 31}) {
                assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_NUM, VhostUserFrontend.vringState(0, bad)), "size " + bad);
            }
            for (final long good : new long[] {1, 256, 32768}) {
                assertEquals(0, s.fe.ack(FrontendRequest.SET_VRING_NUM, VhostUserFrontend.vringState(1, good)), "size " + good);
            }
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_NUM, VhostUserFrontend.vringState(2, 256)), "ring 2");
        }
    }

    @Test
    void baseAndAddressValidation() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_BASE, VhostUserFrontend.vringState(0, 0x10000)));
            assertEquals(0, s.fe.ack(FrontendRequest.SET_VRING_BASE, VhostUserFrontend.vringState(0, 77)));
            assertEquals(77, s.fe.getVringBase(0), "a ring never started reports the base it was given");
            final byte[] addr = new byte[VringAddrMessage.LENGTH];
            new VringAddrMessage().<VringAddrMessage>wrap(new UnsafeBuffer(addr), 0).index(0).flags(2);
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_ADDR, addr), "unknown address flag");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_ADDR, new byte[24]), "short payload");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_KICK, VhostUserFrontend.u64(0)), "kick without fd or flag");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_CALL, VhostUserFrontend.u64(1L << 9 | U64Message.VRING_NOFD_FLAG)),
                "unknown bits");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_KICK, VhostUserFrontend.u64(U64Message.VRING_NOFD_FLAG)),
                "kick before size and addresses");
        }
    }

    @Test
    void aRefusedKickDoesNotLeakItsEventFd() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0)); EventFd kick = EventFd.create()) {
            final long before = OpenFds.count();
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_KICK, VhostUserFrontend.u64(0), kick.fd()),
                "kick before size and addresses");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_CALL, VhostUserFrontend.u64(5), kick.fd()), "ring 5");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_CALL, VhostUserFrontend.u64(0), kick.fd(), kick.fd()),
                "two fds");
            OpenFds.awaitBackTo(before, "after refused SET_VRING_KICK/CALL");
        }
    }

    @Test
    void sizeAndBaseCannotChangeOnAStartedRing() throws Exception {
        try (VirtioNetDriver a = backend.start(0)) {
            assertNotEquals(0, a.frontend().ack(FrontendRequest.SET_VRING_NUM, VhostUserFrontend.vringState(TX, 128)));
            assertNotEquals(0, a.frontend().ack(FrontendRequest.SET_VRING_BASE, VhostUserFrontend.vringState(TX, 5)));
            assertTrue(backend.queue(0, TX).isRunning(), "the refused requests left the ring alone");
        }
    }

    @Test
    void getVringBaseReportsTheNextAvailableIndexAndTheRingResumesFromIt() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(16, 2048);
            for (int i = 0; i < 7; i++) {
                final byte[] f = Frames.frame(100 + i, i);
                a.send(f);
                assertArrayEquals(f, b.receive(WAIT));
            }
            assertTrue(a.awaitTxDone(WAIT));
            final int txBase = a.frontend().getVringBase(TX);
            final int rxBase = b.frontend().getVringBase(RX);
            assertEquals(7, txBase);
            assertEquals(7, rxBase, "one RX chain per frame");
            assertTrue(!backend.queue(0, TX).isStarted() && !backend.queue(1, RX).isStarted(), "GET_VRING_BASE stops the ring");

            // Resume both rings where they stopped (as after a migration): the 9 RX chains still posted are used.
            a.setUpRing(a.tx(), txBase);
            b.setUpRing(b.rx(), rxBase);
            for (int i = 0; i < 9; i++) {
                final byte[] f = Frames.frame(200 + i, 100 + i);
                a.send(f);
                assertArrayEquals(f, b.receive(WAIT), "after resume, frame " + i);
            }
            assertEquals(16, b.frontend().getVringBase(RX));
        }
    }

    @Test
    void indexesWrapAround16Bits() throws Exception {
        try (VirtioNetDriver a = VirtioNetDriver.connect(backend.socket(0), Options.defaults().queueSize(16));
             VirtioNetDriver b = VirtioNetDriver.connect(backend.socket(1), Options.defaults().queueSize(16))) {
            for (final VirtioNetDriver d : new VirtioNetDriver[] {a, b}) {
                d.rx().resetIndexes(65530);
                d.tx().resetIndexes(65530);
                d.negotiate();
            }
            for (int i = 0; i < 40; i++) {
                if (b.rxPosted() == 0) {
                    b.postRxBuffers(8, 2048);
                }
                final byte[] f = Frames.frame(64 + i, i);
                a.send(f);
                assertArrayEquals(f, b.receive(WAIT), "frame " + i);
            }
            assertTrue(a.awaitTxDone(WAIT));
            assertEquals((65530 + 40) & 0xFFFF, a.frontend().getVringBase(TX));
        }
    }

    @Test
    void aRingOutsideGuestMemoryBreaksOnlyThatRing() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1); EventFd err = EventFd.create()) {
            a.postRxBuffers(8, 2048);
            b.postRxBuffers(8, 2048);
            a.frontend().setVringErr(TX, err.fd());
            a.frontend().getVringBase(TX);
            final long end = a.memory().uva(a.memory().size());
            a.frontend().setVringAddr(TX, end - 64, a.tx().usedUva(), a.tx().availUva()); // table runs off the end
            a.frontend().setVringKick(TX, a.tx().kickFd().fd()); // accepted; the ring cannot start
            assertEquals(QueueError.RING_UNMAPPED, backend.queue(0, TX).error());
            final AtomicLong errs = new AtomicLong();
            Await.until("error eventfd signalled", () -> errs.addAndGet(err.drain()) > 0);

            // Everything else still works: B to A, and A's TX once set up properly.
            final byte[] fromB = Frames.frame(100, 1);
            b.send(fromB);
            assertArrayEquals(fromB, a.receive(WAIT));
            a.frontend().getVringBase(TX);
            a.setUpRing(a.tx());
            final byte[] fromA = Frames.frame(100, 2);
            a.send(fromA);
            assertArrayEquals(fromA, b.receive(WAIT));
        }
    }

    @Test
    void misalignedRingAddressesAreRefused() throws Exception {
        try (VirtioNetDriver a = backend.start(0)) {
            a.frontend().getVringBase(TX);
            a.frontend().setVringAddr(TX, a.tx().descUva() + 8, a.tx().usedUva(), a.tx().availUva());
            a.frontend().setVringKick(TX, a.tx().kickFd().fd());
            assertEquals(QueueError.RING_UNMAPPED, backend.queue(0, TX).error());
        }
    }

    @Test
    void aBrokenRingSignalsTheErrorFdAndCanBeSetUpAgain() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1); EventFd err = EventFd.create()) {
            b.postRxBuffers(8, 2048);
            a.frontend().setVringErr(TX, err.fd());
            // The driver claims 300 new buffers on a ring of 256: impossible, the device must stop the ring.
            a.tx().setAvailIdx(300);
            a.tx().publish();
            Await.until("TX ring broken", () -> backend.queue(0, TX).error() == QueueError.AVAIL_IDX_JUMP);
            final AtomicLong errs = new AtomicLong();
            Await.until("error eventfd signalled", () -> errs.addAndGet(err.drain()) > 0);

            final int base = a.frontend().getVringBase(TX);
            assertEquals(0, base, "nothing was consumed");
            a.tx().resetIndexes(base);
            a.frontend().setVringErr(TX, -1); // "no fd" is accepted for ERR too
            a.setUpRing(a.tx(), base);
            final byte[] f = Frames.frame(128, 3);
            a.send(f);
            assertArrayEquals(f, b.receive(WAIT));
        }
    }

    @Test
    void withoutACallFdTheDriverPollsAndNoCallArrives() throws Exception {
        try (VirtioNetDriver a = backend.start(0)) {
            a.frontend().setVringCall(TX, -1);
            a.tx().drainCalls();
            for (int i = 0; i < 3; i++) {
                a.tx().enableCalls();
                a.send(Frames.frame(100, i));
            }
            assertTrue(a.awaitTxDone(WAIT), "used entries are still published");
            assertEquals(0, a.tx().drainCalls(), "the old call fd is no longer signalled");
            a.frontend().setVringCall(TX, a.tx().callFd().fd());
            a.tx().enableCalls();
            a.send(Frames.frame(100, 9));
            assertTrue(a.tx().awaitCall(WAIT) > 0, "calls again once a call fd is set");
        }
    }

    @Test
    void withoutAKickFdTheBackEndPollsTheRing() throws Exception {
        backend.close();
        backend = InProcessBackend.peered(dir, PollMode.BUSY);
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            a.frontend().getVringBase(TX);
            a.frontend().setVringNum(TX, a.tx().size());
            a.frontend().setVringBase(TX, 0);
            a.frontend().setVringAddr(TX, a.tx().descUva(), a.tx().usedUva(), a.tx().availUva());
            a.frontend().setVringKick(TX, -1);
            assertTrue(backend.queue(0, TX).isRunning());
            for (int i = 0; i < 5; i++) {
                final byte[] f = Frames.frame(90, i);
                a.send(f);
                assertArrayEquals(f, b.receive(WAIT));
            }
        }
    }

    @Test
    void aDisabledRingIsLeftAloneUntilEnabled() throws Exception {
        final Options disabled = Options.defaults().enableRings(false);
        try (VirtioNetDriver a = backend.start(0, disabled); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            a.postRxBuffers(8, 2048);
            final byte[] early = Frames.frame(100, 1);
            a.send(early); // A's TX is not enabled yet
            a.frontend().setVringEnable(RX, true);
            // Barrier: two frames B->A. The dataplane serves A's TX before B's in every round, so once the
            // second arrives, A's TX has been looked at after 'early' was published.
            for (int i = 0; i < 2; i++) {
                final byte[] f = Frames.frame(InProcessBackend.MAC_A, InProcessBackend.MAC_B, 80, 10 + i);
                b.send(f);
                assertArrayEquals(f, a.receive(WAIT));
            }
            assertEquals(0, a.tx().usedIdx(), "a disabled ring must not be consumed");
            assertNull(b.receive(Duration.ZERO));
            a.frontend().setVringEnable(TX, true);
            assertArrayEquals(early, b.receive(WAIT), "enabling the ring delivers what was waiting");
            a.frontend().setVringEnable(TX, false);
            assertTrue(backend.queue(0, TX).isStarted() && !backend.queue(0, TX).isRunning());
        }
    }
}
