package dev.vhostnet.backend.seals;

import dev.vhostnet.backend.Frames;
import dev.vhostnet.backend.InProcessBackend;
import dev.vhostnet.backend.OpenFds;
import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.sys.Seals;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.GuestMemoryImage.Backing;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.VirtioDeviceStatus;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;

import static dev.vhostnet.backend.InProcessBackend.MAC_A;
import static dev.vhostnet.backend.InProcessBackend.MAC_B;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * vhost-user: a hostile front-end that shrinks its guest memory after handing it over (the attack that aborted
 * the JVM with a SIGBUS, issue 10) is stopped by the seal the back-end put on the file: ftruncate fails with
 * EPERM and every queue goes on, RX and TX, small and full-size frames. Memory that cannot be sealed is
 * refused (only that request fails) unless the back-end allows it.
 *
 * <p>Runs twice: in the default test JVM, where the dataplane is compiled after the warm-up traffic, and in the
 * {@code interpreted} surefire execution (-Xint), where every access is made by the interpreter.
 */
class SealedMemoryTest {
    static final Duration WAIT = Duration.ofSeconds(20);
    /** Frames each way before the attack: enough for the JIT to compile the dataplane (not under -Xint). */
    static final int WARM_UP = Integer.getInteger("vhostnet.test.warmup", 3000);

    @TempDir
    Path dir;
    private InProcessBackend backend;

    @AfterEach
    void stop() {
        if (backend != null) {
            backend.close();
        }
    }

    /** ftruncate's errno, or 0 if it succeeded. */
    static int shrink(final int fd, final long size) {
        return LibC.INSTANCE.ftruncate(fd, size) == 0 ? 0 : LibC.errno();
    }

    /** {@code n} frames each way, sizes cycling from 60 bytes to a full 1514-byte frame, checked byte for byte. */
    static void exchange(final VirtioNetDriver a, final VirtioNetDriver b, final int n, final long seed) {
        for (int i = 0; i < n; i++) {
            for (final VirtioNetDriver d : new VirtioNetDriver[] {a, b}) {
                if (d.rxPosted() < 16) {
                    d.postRxBuffers(64, 2048);
                }
            }
            final int small = 60 + (i % 7);
            final int length = i % 2 == 0 ? small : 1514 - (i % 5);
            final byte[] ab = Frames.frame(MAC_B, MAC_A, length, seed + i);
            final byte[] ba = Frames.frame(MAC_A, MAC_B, i % 2 == 0 ? 1514 : small, seed + 50_000 + i);
            a.send(ab);
            b.send(ba);
            assertArrayEquals(ab, b.receive(WAIT), "A->B frame " + i + " of " + length + " bytes");
            assertArrayEquals(ba, a.receive(WAIT), "B->A frame " + i);
        }
        assertTrue(a.awaitTxDone(WAIT) && b.awaitTxDone(WAIT), "every TX buffer returned");
    }

    private void assertHealthy(final VirtioNetDriver... drivers) throws IOException {
        for (int port = 0; port < 2; port++) {
            for (int q = 0; q < 2; q++) {
                assertEquals(QueueError.NONE, backend.queue(port, q).error(), "port " + port + " queue " + q);
            }
        }
        for (final VirtioNetDriver d : drivers) {
            assertEquals(0, d.frontend().getStatus() & VirtioDeviceStatus.DEVICE_NEEDS_RESET, "no DEVICE_NEEDS_RESET");
        }
    }

    private void truncationRefusedUnderTraffic(final VirtioNetDriver.Options options) throws IOException {
        backend = InProcessBackend.peered(dir);
        try (VirtioNetDriver a = backend.start(0, options); VirtioNetDriver b = backend.start(1, options)) {
            exchange(a, b, WARM_UP, 1);
            JitState.assertDataplaneMode();
            for (final VirtioNetDriver d : new VirtioNetDriver[] {a, b}) {
                final int fd = d.memory().fd(); // the front-end's own fd to the memory it handed over
                assertTrue(Seals.has(Seals.get(fd), LibC.F_SEAL_SHRINK), "the back-end sealed it");
                assertEquals(LibC.EPERM, shrink(fd, 4096), "shrink to one page");
                assertEquals(LibC.EPERM, shrink(fd, 0), "shrink to nothing");
                assertEquals(d.memory().size(), FileDescriptors.size(fd));
                d.tx().kick(); // and kick, as the attack did
                d.rx().kick();
            }
            exchange(a, b, 500, 7);
            assertHealthy(a, b);
        }
    }

    @Test
    void aFrontEndCannotShrinkItsMemoryUnderLiveRings() throws IOException {
        truncationRefusedUnderTraffic(VirtioNetDriver.Options.defaults());
    }

    @Test
    void regionsAddedOneByOneAreSealedToo() throws IOException {
        truncationRefusedUnderTraffic(VirtioNetDriver.Options.defaults().memSlots(true).memoryWindows(2)
            .mergeable(false).indirect(false));
    }

    @Test
    void memorySealedLikeQemuSealsItIsAcceptedAsItIs() throws IOException {
        backend = InProcessBackend.peered(dir);
        final VirtioNetDriver.Options sealed = VirtioNetDriver.Options.defaults().backing(Backing.SEALED);
        try (VirtioNetDriver a = backend.start(0, sealed); VirtioNetDriver b = backend.start(1, sealed)) {
            assertEquals(MemFd.HANDED_OUT_SEALS, Seals.get(a.memory().fd()), "no seal added or needed");
            exchange(a, b, 200, 3);
            assertEquals(LibC.EPERM, shrink(a.memory().fd(), 0));
            exchange(a, b, 50, 4);
            assertHealthy(a, b);
        }
    }

    @Test
    void unsealableMemoryIsRefusedAndCostsOnlyThatRequest() throws IOException {
        backend = InProcessBackend.peered(dir);
        try (VirtioNetDriver b = backend.start(1)) {
            final long fds = OpenFds.count();
            for (final boolean slots : new boolean[] {false, true}) {
                try (VirtioNetDriver a = VirtioNetDriver.connect(backend.socket(0),
                    VirtioNetDriver.Options.defaults().backing(Backing.UNSEALABLE).memSlots(slots))) {
                    final VhostUserFrontend.Rejected refused = assertThrows(VhostUserFrontend.Rejected.class, a::negotiate);
                    assertTrue(refused.getMessage().startsWith(slots ? "ADD_MEM_REG" : "SET_MEM_TABLE"), refused.getMessage());
                    assertEquals(1, Seals.get(a.memory().fd()), "nothing sealed; the file is as it was");
                }
            }
            OpenFds.awaitBackTo(fds, "after two refused memory tables");
            // The same socket serves a well-behaved front-end next, and the other port never noticed.
            try (VirtioNetDriver a = backend.start(0)) {
                exchange(a, b, 100, 5);
                assertHealthy(a, b);
            }
        }
    }

    @Test
    void allowMapsUnsealableMemoryAsTrusted() throws IOException {
        backend = InProcessBackend.peered(dir, UnsealedMemory.ALLOW);
        final VirtioNetDriver.Options unsealable = VirtioNetDriver.Options.defaults().backing(Backing.UNSEALABLE);
        try (VirtioNetDriver a = backend.start(0, unsealable); VirtioNetDriver b = backend.start(1)) {
            exchange(a, b, 100, 6);
            assertTrue(backend.port(0).queue(0).memory().regions().get(0).isShrinkable(),
                "mapped, known to be shrinkable (a truncation now is what --unsealed-memory allow trusts not to happen)");
            assertHealthy(a, b);
        }
    }

    @Test
    void theDirtyLogCannotShrinkEither() throws IOException {
        backend = InProcessBackend.peered(dir);
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            final VhostUserFrontend fe = b.frontend();
            final long logBytes = (b.memory().gpaBase() + b.memory().size()) / 4096 / 8;
            final byte[] log = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(logBytes).putLong(0).array();
            final int sealable = MemFd.create("log", logBytes);
            final int unsealable = MemFd.create("log", logBytes, LibC.MFD_CLOEXEC);
            try {
                assertEquals(0, fe.call(FrontendRequest.SET_LOG_BASE, log, sealable).u64());
                assertEquals(LibC.EPERM, shrink(sealable, 0), "the dirty log is sealed");
                // An unsealable log: the back-end refuses it and closes the connection (SET_LOG_BASE has a reply
                // of its own, so there is no ack to refuse it with).
                fe.send(FrontendRequest.SET_LOG_BASE, dev.vhostnet.spec.VhostUserHeader.VERSION, log, unsealable);
                assertTrue(fe.awaitClosed(WAIT), "connection closed on an unsealable log");
            } finally {
                FileDescriptors.closeQuietly(sealable);
                FileDescriptors.closeQuietly(unsealable);
            }
            assertEquals(QueueError.NONE, backend.queue(0, 0).error(), "port A untouched");
        }
    }
}
