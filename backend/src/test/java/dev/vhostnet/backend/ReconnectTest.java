package dev.vhostnet.backend;

import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.frontend.VirtioNetDriver.Options;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;

import static dev.vhostnet.frontend.VirtioNetDriver.RX;
import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Front-ends going away and coming back: traffic resumes and nothing is left behind. */
class ReconnectTest {
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

    private static void exchange(final VirtioNetDriver a, final VirtioNetDriver b, final int seed) {
        final byte[] ab = Frames.frame(200 + seed, seed);
        final byte[] ba = Frames.frame(InProcessBackend.MAC_A, InProcessBackend.MAC_B, 300 + seed, -seed);
        a.send(ab);
        b.send(ba);
        assertArrayEquals(ab, b.receive(WAIT), "A->B " + seed);
        assertArrayEquals(ba, a.receive(WAIT), "B->A " + seed);
    }

    @Test
    void trafficResumesWhenOneSideReconnects() throws Exception {
        try (VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(64, 2048);
            try (VirtioNetDriver a = backend.start(0)) {
                a.postRxBuffers(8, 2048);
                exchange(a, b, 1);
            }
            dev.vhostnet.frontend.Await.until("A's rings stopped after the disconnect",
                () -> !backend.queue(0, TX).isStarted() && !backend.queue(0, RX).isStarted());
            // While A is gone, B's frames are dropped, not queued for it.
            b.send(Frames.frame(100, 99));
            assertTrue(b.awaitTxDone(WAIT));
            backend.awaitCounter(1, TX, dev.vhostnet.dataplane.virtq.QueueCounters.DROPS, 1);

            // A new front-end with different features and memory on the same socket.
            try (VirtioNetDriver a = backend.start(0, Options.defaults().mergeable(false).eventIdx(false))) {
                a.postRxBuffers(8, 2048);
                exchange(a, b, 2);
                exchange(a, b, 3);
            }
        }
    }

    @Test
    void bothSidesReconnectingStartFromScratch() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(16, 2048);
            a.postRxBuffers(4, 2048);
            exchange(a, b, 1);
            assertTrue(a.awaitTxDone(WAIT));
        }
        // Both gone: the ports stop; a second pair starts from scratch.
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(4, 2048);
            a.postRxBuffers(4, 2048);
            exchange(a, b, 2);
        }
    }

    @Test
    void noFileDescriptorsLeakAcrossReconnects() throws Exception {
        cycle(0); // warm-up: class loading, native library, lazily opened JDK files
        final long baseline = OpenFds.count();
        for (int i = 1; i <= 5; i++) {
            cycle(i);
        }
        OpenFds.awaitBackTo(baseline, "after 5 connect/traffic/disconnect cycles");
    }

    /** Both front-ends connect, negotiate (memory, 4 eventfds each), exchange a frame, disconnect. */
    private void cycle(final int seed) throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            a.postRxBuffers(4, 2048);
            b.postRxBuffers(4, 2048);
            exchange(a, b, seed);
        }
        dev.vhostnet.frontend.Await.until("both ports stopped",
            () -> !backend.queue(0, TX).isStarted() && !backend.queue(1, TX).isStarted());
    }

    @Test
    void theServerOutlivesAnAbruptDisconnectDuringTraffic() throws Exception {
        try (VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(128, 2048);
            final VirtioNetDriver a = backend.start(0);
            for (int i = 0; i < 100; i++) {
                a.send(Frames.frame(500, i));
            }
            a.close(); // no GET_VRING_BASE, rings mid-flight
            dev.vhostnet.frontend.Await.until("A's port stopped", () -> !backend.queue(0, TX).isStarted());
            assertFalse(backend.queue(0, TX).isRunning());
            try (VirtioNetDriver again = backend.start(0)) {
                again.postRxBuffers(8, 2048);
                while (b.receive(Duration.ZERO) != null) {
                    // drain what A got through before it vanished
                }
                exchange(again, b, 7);
            }
        }
    }
}
