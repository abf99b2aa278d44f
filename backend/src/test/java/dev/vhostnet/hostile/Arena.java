package dev.vhostnet.hostile;

import dev.vhostnet.backend.Frames;
import dev.vhostnet.backend.InProcessBackend;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.VirtioNetDriver;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One back-end (two peered ports, in this JVM) that hostile front-ends attack on port 0 while a well-behaved
 * front-end stays connected on port 1 for the whole time. {@link #assertHealthy} proves after each attack that
 * the back-end still does its job: port 1's original session forwards, and port 0 forwards again for a new,
 * well-behaved front-end; and that nothing the attack made the back-end hold is left open or mapped.
 */
final class Arena implements AutoCloseable {
    static final Duration WAIT = Duration.ofSeconds(5);
    static final int PORT_A = 0;
    static final int PORT_B = 1;

    private final InProcessBackend backend;
    private final VirtioNetDriver b;
    private final Logger dataplaneLog = Logger.getLogger(Dataplane.class.getName());
    private final Level previousLevel;
    private final UnsealedMemory unsealed;
    private final List<String> brokenQueueLines = new CopyOnWriteArrayList<>();
    private final Handler capture = new Handler() {
        @Override
        public void publish(final LogRecord record) {
            if (record.getMessage() != null && record.getMessage().contains("broken")) {
                brokenQueueLines.add(record.getMessage());
            }
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
        }
    };
    private int seed;
    private Resources baseline;
    private boolean bReleased;

    Arena(final Path dir) throws IOException {
        this(dir, UnsealedMemory.REFUSE);
    }

    /** With --unsealed-memory {@code unsealed} (ALLOW when DPDK's unsealable memory must be served afterwards). */
    Arena(final Path dir, final UnsealedMemory unsealed) throws IOException {
        this.unsealed = unsealed;
        previousLevel = dataplaneLog.getLevel();
        dataplaneLog.setLevel(Level.WARNING); // queue breakages are WARNING lines: count them
        dataplaneLog.addHandler(capture);
        backend = InProcessBackend.peered(dir, unsealed);
        b = backend.start(PORT_B);
        b.postRxBuffers(128, 2048);
        assertHealthy("warm-up"); // class loading, lazily opened files: before the baseline
        baseline = Resources.now();
    }

    UnsealedMemory unsealedMemory() {
        return unsealed;
    }

    InProcessBackend backend() {
        return backend;
    }

    Path socket(final int port) {
        return backend.socket(port);
    }

    /** The well-behaved front-end that stays connected on port 1 throughout. */
    VirtioNetDriver b() {
        return b;
    }

    /** A well-behaved front-end on port 0 (the port under attack), once the previous connection is gone. */
    VirtioNetDriver startA() throws IOException {
        return startA(VirtioNetDriver.Options.defaults());
    }

    VirtioNetDriver startA(final VirtioNetDriver.Options options) throws IOException {
        awaitPortStopped(PORT_A);
        return backend.start(PORT_A, options);
    }

    void awaitPortStopped(final int port) {
        Await.until("port " + port + " stopped (its front-end gone)",
            () -> !backend.queue(port, 0).isStarted() && !backend.queue(port, 1).isStarted());
    }

    /**
     * Disconnect port B's long-lived front-end and wait until both ports are idle, so that another front-end
     * (a DPDK virtio_user pair) can take both sockets of this same back-end. {@link #assertHealthy} needs B
     * and must not be called afterwards.
     */
    void releaseB() throws IOException {
        if (!bReleased) {
            bReleased = true;
            b.close();
        }
        awaitPortStopped(PORT_A);
        awaitPortStopped(PORT_B);
    }

    /** No more sockets, eventfds, memfds, mappings or threads than after the warm-up (B's session included). */
    void assertNoLeaks(final String after) {
        baseline.awaitNoMoreThan(after);
    }

    /** Broken-queue lines the dataplane logged so far. */
    List<String> brokenQueueLines() {
        return List.copyOf(brokenQueueLines);
    }

    /** Wait for queue {@code queue} of port A to break with {@code expected}, and for its one log line. */
    void awaitBroken(final int queue, final QueueError expected, final int linesBefore) {
        Await.until("port A queue " + queue + " broken with " + expected, WAIT,
            () -> backend.queue(PORT_A, queue).error() != QueueError.NONE,
            () -> backend.queue(PORT_A, queue).toString());
        if (expected != null) {
            assertEquals(expected, backend.queue(PORT_A, queue).error());
        }
        Await.until("one log line for the broken queue", WAIT,
            () -> brokenQueueLines.size() > linesBefore, () -> brokenQueueLines.toString());
    }

    /** Frames both ways between {@code a} and B. */
    void exchange(final VirtioNetDriver a) {
        seed++;
        drainB();
        final byte[] ab = Frames.frame(InProcessBackend.MAC_B, InProcessBackend.MAC_A, 100 + seed % 1000, seed);
        final byte[] ba = Frames.frame(InProcessBackend.MAC_A, InProcessBackend.MAC_B, 200 + seed % 1000, -seed);
        a.send(ab);
        assertArrayEquals(ab, b.receive(WAIT), "A->B frame " + seed);
        b.send(ba);
        assertArrayEquals(ba, a.receive(WAIT), "B->A frame " + seed);
    }

    /** Throw away whatever port A's earlier (hostile) front-ends got through to B, and repost B's buffers. */
    void drainB() {
        while (b.receive(Duration.ZERO) != null) {
            // frames from an attack
        }
        b.reclaimTx();
        if (b.rxPosted() < 64) {
            b.postRxBuffers(64, 2048);
        }
    }

    /**
     * After an attack on port A (its connection closed by now or about to be): B's original session still
     * forwards, a new well-behaved front-end on port A exchanges frames with it, and once that one is gone the
     * back-end holds no more sockets, eventfds, memfds, mappings or threads than before the attack.
     */
    void assertHealthy(final String after) throws IOException {
        try (VirtioNetDriver a = startA()) {
            a.postRxBuffers(16, 2048);
            exchange(a);
            exchange(a);
        } catch (final AssertionError | RuntimeException e) {
            throw new AssertionError("after " + after + ": " + e.getMessage(), e);
        }
        awaitPortStopped(PORT_A);
        assertTrue(backend.queue(PORT_B, 1).isRunning(), "port B's session survived " + after);
        if (baseline != null) {
            baseline.awaitNoMoreThan(after);
        }
    }

    @Override
    public void close() throws IOException {
        try {
            if (!bReleased) {
                b.close();
            }
        } finally {
            backend.close();
            dataplaneLog.removeHandler(capture);
            dataplaneLog.setLevel(previousLevel);
        }
    }
}
