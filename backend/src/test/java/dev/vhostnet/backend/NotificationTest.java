package dev.vhostnet.backend;

import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.frontend.VirtioNetDriver.Options;
import dev.vhostnet.spec.SplitRingLayout;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;

import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Interrupt (call) and kick suppression, with and without EVENT_IDX. Counting calls relies on eventfd
 * semantics: every signal adds 1 to the counter, so one read after the expected call tells how many calls
 * were made in all, including any that should not have been.
 */
class NotificationTest {
    private static final Duration WAIT = Duration.ofSeconds(5);

    @TempDir
    Path dir;
    private InProcessBackend backend;

    @AfterEach
    void stopBackend() {
        if (backend != null) {
            backend.close();
        }
    }

    /** Send one frame (dropped: no peer) and wait, by polling only, until the device returned it. */
    private static void sendAndPoll(final VirtioNetDriver d, final int seed) {
        final int target = (d.tx().lastUsedIdx() + 1) & 0xFFFF;
        d.send(Frames.frame(64, seed));
        Await.until("TX used idx " + target, () -> d.tx().usedIdx() == target);
        d.reclaimTx();
    }

    @Test
    void eventIdxCallsOnlyWhenUsedIdxCrossesUsedEvent() throws Exception {
        backend = InProcessBackend.single(dir);
        try (VirtioNetDriver a = backend.start(0, Options.defaults().eventIdx(true))) {
            final DriverSplitQueue tx = a.tx();
            // The first publish after set-up always calls (the device has no previous decision to compare to).
            tx.setUsedEvent(0);
            a.send(Frames.frame(64, 0));
            assertTrue(tx.awaitCall(WAIT) > 0);
            assertTrue(a.awaitTxDone(WAIT));

            // used->idx is 1; ask for a call only when it moves past 3, i.e. on the 3rd frame from now.
            tx.setUsedEvent(3);
            sendAndPoll(a, 1);
            sendAndPoll(a, 2);
            sendAndPoll(a, 3);
            assertEquals(1, tx.awaitCall(WAIT), "exactly one call, when used->idx went from 3 to 4");

            // used_event = current index: a call for the very next buffer.
            tx.setUsedEvent(tx.lastUsedIdx());
            sendAndPoll(a, 4);
            assertEquals(1, tx.awaitCall(WAIT));
            backend.awaitCounter(0, TX, QueueCounters.CALLS, 3);
        }
    }

    @Test
    void withoutEventIdxNoInterruptSuppressesCalls() throws Exception {
        backend = InProcessBackend.single(dir);
        try (VirtioNetDriver a = backend.start(0, Options.defaults().eventIdx(false))) {
            final DriverSplitQueue tx = a.tx();
            tx.setNoInterrupt(true);
            sendAndPoll(a, 1);
            sendAndPoll(a, 2);
            sendAndPoll(a, 3);
            tx.setNoInterrupt(false);
            sendAndPoll(a, 4);
            assertEquals(1, tx.awaitCall(WAIT), "only the frame sent with interrupts on was signalled");
            sendAndPoll(a, 5);
            assertEquals(1, tx.awaitCall(WAIT));
        }
    }

    @Test
    void receiveQueueCallsWhenAFrameArrives() throws Exception {
        backend = InProcessBackend.peered(dir);
        for (final boolean eventIdx : new boolean[] {true, false}) {
            final Options o = Options.defaults().eventIdx(eventIdx);
            try (VirtioNetDriver a = backend.start(0, o); VirtioNetDriver b = backend.start(1, o)) {
                b.postRxBuffers(4, 2048);
                b.rx().enableCalls();
                final byte[] f = Frames.frame(300, 1);
                a.send(f);
                assertTrue(b.rx().awaitCall(WAIT) > 0, "eventIdx=" + eventIdx);
                assertArrayEquals(f, b.receive(Duration.ZERO));
            }
        }
    }

    @Test
    void anIdleBackEndAsksForKicksAndIsWokenByThem() throws Exception {
        backend = InProcessBackend.single(dir);
        for (final boolean eventIdx : new boolean[] {true, false}) {
            try (VirtioNetDriver a = backend.start(0, Options.defaults().eventIdx(eventIdx))) {
                final DriverSplitQueue tx = a.tx();
                // Idle (adaptive mode) means: kicks re-enabled before sleeping.
                if (eventIdx) {
                    Await.until("avail_event armed", () -> tx.availEvent() == tx.availIdx());
                } else {
                    Await.until("NO_NOTIFY cleared", () -> (tx.usedFlags() & SplitRingLayout.USED_F_NO_NOTIFY) == 0);
                }
                final long kicksBefore = backend.counter(0, TX, QueueCounters.KICKS);
                a.send(Frames.frame(64, 1));
                assertEquals(1, tx.kicksSent(), "the driver saw that the device wants a kick");
                assertTrue(a.awaitTxDone(WAIT));
                Await.until("kick counted by the back-end", () -> backend.counter(0, TX, QueueCounters.KICKS) > kicksBefore);
            }
        }
    }

    @Test
    void aBusyPollingBackEndSuppressesKicks() throws Exception {
        backend = InProcessBackend.peered(dir, PollMode.BUSY);
        for (final boolean eventIdx : new boolean[] {true, false}) {
            try (VirtioNetDriver a = backend.start(0, Options.defaults().eventIdx(eventIdx));
                 VirtioNetDriver b = backend.start(1)) {
                b.postRxBuffers(64, 2048);
                for (int i = 0; i < 50; i++) {
                    final byte[] f = Frames.frame(64, i);
                    a.send(f);
                    assertArrayEquals(f, b.receive(WAIT));
                }
                // Without EVENT_IDX the device sets NO_NOTIFY at ring start; with it, avail_event stays at 0,
                // so only the first publish (0 -> 1) crosses it.
                assertTrue(a.tx().kicksSent() <= (eventIdx ? 1 : 0), "eventIdx=" + eventIdx + ", kicks sent: " + a.tx().kicksSent());
            }
        }
    }
}
