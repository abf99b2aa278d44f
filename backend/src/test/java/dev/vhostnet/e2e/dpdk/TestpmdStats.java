package dev.vhostnet.e2e.dpdk;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import java.util.function.Supplier;

/**
 * What one testpmd has reported so far. Written by the log pump thread, read by the test; all access is
 * under this object's monitor, which is also what waiters block on.
 */
public final class TestpmdStats {
    private final List<PortSnapshot> snapshots = new ArrayList<>();
    private final Map<Integer, ForwardStats> forward = new TreeMap<>();
    private final List<Long> negotiatedFeatures = new ArrayList<>();
    private final List<String> fatal = new ArrayList<>();
    private boolean forwarding;

    synchronized void onForwardingStarted() {
        forwarding = true;
        notifyAll();
    }

    synchronized void onFatal(String line) {
        fatal.add(line);
        notifyAll();
    }

    /** Lines saying a port failed to start; testpmd carries on regardless, but no traffic will flow. */
    public synchronized List<String> fatalErrors() {
        return List.copyOf(fatal);
    }

    synchronized void onSnapshot(PortSnapshot snapshot) {
        snapshots.add(snapshot);
        notifyAll();
    }

    synchronized void onForwardStats(ForwardStats stats) {
        forward.put(stats.port(), stats);
        notifyAll();
    }

    synchronized void onNegotiatedFeatures(long features) {
        negotiatedFeatures.add(features);
        notifyAll();
    }

    /** True once testpmd has said it started packet forwarding (its ports are up). */
    public synchronized boolean forwardingStarted() {
        return forwarding;
    }

    public synchronized List<PortSnapshot> snapshots() {
        return List.copyOf(snapshots);
    }

    public synchronized List<PortSnapshot> snapshots(int port) {
        return snapshots.stream().filter(s -> s.port() == port).toList();
    }

    public synchronized Optional<PortSnapshot> latest(int port) {
        for (int i = snapshots.size() - 1; i >= 0; i--) {
            if (snapshots.get(i).port() == port) {
                return Optional.of(snapshots.get(i));
            }
        }
        return Optional.empty();
    }

    /** The per-port totals printed at exit; empty until testpmd has stopped forwarding. */
    public synchronized Map<Integer, ForwardStats> forwardStats() {
        return Map.copyOf(forward);
    }

    /**
     * Virtio feature bits the virtio PMD settled on, one entry per virtio port in probe order (port 0
     * first). Only filled when testpmd runs with {@code --log-level=pmd.net.virtio.init:debug}.
     */
    public synchronized List<Long> negotiatedFeatures() {
        return List.copyOf(negotiatedFeatures);
    }

    /**
     * Packets per second received on {@code port} between the first snapshot read at or after
     * {@code fromNanos} and the last snapshot read at or before {@code toNanos}, from the cumulative
     * counter and the harness's read times. NaN if fewer than two snapshots fall in the window.
     */
    public synchronized double rxRate(int port, long fromNanos, long toNanos) {
        PortSnapshot first = null;
        PortSnapshot last = null;
        for (PortSnapshot s : snapshots) {
            if (s.port() != port || s.nanoTime() < fromNanos || s.nanoTime() > toNanos) {
                continue;
            }
            if (first == null) {
                first = s;
            }
            last = s;
        }
        if (first == null || last == first || last.nanoTime() == first.nanoTime()) {
            return Double.NaN;
        }
        return (last.rxPackets() - first.rxPackets()) * 1e9 / (last.nanoTime() - first.nanoTime());
    }

    /**
     * Blocks until {@code condition} holds, the process dies or reports a port failure, or {@code timeout} passes. Returns normally
     * only if the condition held; otherwise throws with {@code context} (e.g. the log tail) in the message.
     */
    public void await(String what, Predicate<TestpmdStats> condition, Duration timeout, BooleanSupplier alive,
                      Supplier<String> context) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (this) {
            while (!condition.test(this)) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new IllegalStateException("timed out after " + timeout + " waiting for " + what
                            + System.lineSeparator() + context.get());
                }
                if (!fatal.isEmpty()) {
                    throw new IllegalStateException("failed while waiting for " + what + ": " + fatal
                            + System.lineSeparator() + context.get());
                }
                if (!alive.getAsBoolean()) {
                    throw new IllegalStateException("process exited while waiting for " + what
                            + System.lineSeparator() + context.get());
                }
                // Bounded wait so a process that dies silently is noticed within 200 ms.
                wait(Math.max(1, Math.min(left / 1_000_000, 200)));
            }
        }
    }
}
