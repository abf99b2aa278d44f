package dev.vhostnet.e2e.dpdk;

import java.io.IOException;
import java.time.Duration;
import java.util.Optional;

/**
 * One complete loop: a back-end on a fresh pair of sockets, then the virtio_user front-end connected
 * to it. {@link #finish} stops them in the order that keeps the counts meaningful (front-end first,
 * so the back-end sees no more traffic when it reports); {@link #close} kills whatever is left and
 * removes the sockets, and must run even when the test fails.
 */
public final class LoopSession implements AutoCloseable {
    /** Starts a back-end on the given sockets and returns once it is ready for a front-end. */
    @FunctionalInterface
    public interface BackEndStarter {
        VhostBackEnd start(SocketFiles sockets) throws IOException, InterruptedException;
    }

    private final SocketFiles sockets;
    private final VirtioUserLoop loop;
    private VhostBackEnd backEnd;
    private Testpmd frontEnd;

    private LoopSession(SocketFiles sockets, VirtioUserLoop loop) {
        this.sockets = sockets;
        this.loop = loop;
    }

    public static LoopSession start(BackEndStarter starter, VirtioUserLoop loop, Duration timeout)
            throws IOException, InterruptedException {
        LoopSession session = new LoopSession(SocketFiles.create(), loop);
        try {
            session.backEnd = starter.start(session.sockets);
            session.frontEnd = loop.start(session.sockets.a(), session.sockets.b());
            try {
                session.frontEnd.awaitForwarding(timeout);
            } catch (IllegalStateException e) {
                throw session.pointingAtBackEnd(e);
            }
            return session;
        } catch (IOException | InterruptedException | RuntimeException e) {
            session.close();
            throw e;
        }
    }

    public VhostBackEnd backEnd() {
        return backEnd;
    }

    public Testpmd frontEnd() {
        return frontEnd;
    }

    public VirtioUserLoop loop() {
        return loop;
    }

    /** Waits until the front-end has received at least {@code packets} on both ports. */
    public void awaitTraffic(long packets, Duration timeout) throws InterruptedException {
        try {
            frontEnd.awaitReceived(packets, timeout, 0, 1);
        } catch (IllegalStateException e) {
            throw pointingAtBackEnd(e);
        }
    }

    /** A front-end failure is as likely caused by the back-end; name its log too. */
    private IllegalStateException pointingAtBackEnd(IllegalStateException e) {
        return new IllegalStateException(e.getMessage() + System.lineSeparator() + "back-end " + backEnd.name()
                + " log: " + backEnd.log(), e);
    }

    /** Stops the front-end, then the back-end, and collects both sides' final figures. */
    public LoopOutcome finish() {
        int exit = frontEnd.stop();
        Optional<BackEndCounters> counters = backEnd.stop();
        return new LoopOutcome(frontEnd.stats().forwardStats(), exit, counters, frontEnd.stats().negotiatedFeatures(),
                loop.injectedPackets());
    }

    @Override
    public void close() {
        try {
            if (frontEnd != null) {
                frontEnd.close();
            }
        } finally {
            try {
                if (backEnd != null) {
                    backEnd.close();
                }
            } finally {
                sockets.close();
            }
        }
    }
}
