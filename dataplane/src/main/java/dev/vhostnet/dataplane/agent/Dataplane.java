package dev.vhostnet.dataplane.agent;

import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.virtq.QueueCounters;

import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * The dataplane: one or more worker threads that own the ports' virtqueues and forward frames between
 * peers in a duty cycle. Worker i owns queue pair p of every port when p % workers == i, so pair i of one
 * port and pair i of its peer are always on the same thread and no queue is ever touched by two threads.
 *
 * <p>The control plane never touches a queue while a worker may: {@link #call} parks every worker between two
 * bursts, runs the command with exclusive access, then lets them go. Commands are rare (ring setup, memory
 * table changes), so a brief stop of the world costs nothing on the data path, where each duty cycle only
 * reads one volatile flag. That single rule removes every race between protocol handling and packet
 * processing (memory tables swapped under a walk, rings stopped mid-burst).
 */
public final class Dataplane implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Dataplane.class.getName());

    private final VirtioNetPort[] ports;
    private final VirtioNetPort[] peers;
    private final DataplaneWorker[] workers;
    private final Object commandLock = new Object();
    /** Per queue: breakages already logged (QueueCounters#breaks). */
    private final long[] reportedBreaks;
    private final int slotsPerPort;
    private final UnsealedMemory unsealedMemory;
    private volatile boolean pauseRequested;
    private volatile boolean started;

    /** One worker, pinned to {@code cpu} (or not pinned: -1). */
    public Dataplane(final VirtioNetPort[] ports, final VirtioNetPort[] peers, final PollMode pollMode, final int cpu) {
        this(ports, peers, pollMode, new int[] {cpu}, 1);
    }

    /** One worker, pinned to {@code cpu} (or not pinned: -1), with the given policy for unsealable memory. */
    public Dataplane(final VirtioNetPort[] ports, final VirtioNetPort[] peers, final PollMode pollMode, final int cpu,
                     final UnsealedMemory unsealedMemory) {
        this(ports, peers, pollMode, new int[] {cpu}, 1, unsealedMemory);
    }

    /** As below, refusing memory that cannot be sealed against shrinking. */
    public Dataplane(final VirtioNetPort[] ports, final VirtioNetPort[] peers, final PollMode pollMode, final int[] cpus,
                     final int threads) {
        this(ports, peers, pollMode, cpus, threads, UnsealedMemory.REFUSE);
    }

    /**
     * @param ports   every port this dataplane serves
     * @param peers   peers[i] receives what ports[i] transmits (null: drop)
     * @param cpus    CPUs to pin the workers to (worker i on cpus[i % length]); -1 entries: not pinned
     * @param threads number of worker threads
     * @param unsealedMemory what the control plane does with guest memory (and logs, inflight buffers) whose
     *                       file cannot be sealed against shrinking: the workers would fault on it
     */
    public Dataplane(final VirtioNetPort[] ports, final VirtioNetPort[] peers, final PollMode pollMode, final int[] cpus,
                     final int threads, final UnsealedMemory unsealedMemory) {
        if (threads < 1) {
            throw new IllegalArgumentException("at least one dataplane thread");
        }
        this.ports = ports.clone();
        this.peers = peers.clone();
        int slots = 0;
        for (final VirtioNetPort p : ports) {
            slots = Math.max(slots, p.queueCount());
        }
        this.slotsPerPort = slots;
        this.unsealedMemory = unsealedMemory;
        this.reportedBreaks = new long[ports.length * slots];
        workers = new DataplaneWorker[threads];
        for (int i = 0; i < threads; i++) {
            final int cpu = cpus.length == 0 ? -1 : cpus[i % cpus.length];
            workers[i] = new DataplaneWorker(this, i, threads, this.ports, this.peers, pollMode, cpu);
        }
    }

    public void start() {
        started = true;
        for (final DataplaneWorker w : workers) {
            w.start();
        }
    }

    /** Policy for memory fds that cannot be sealed against shrinking, for whoever maps memory for these workers. */
    public UnsealedMemory unsealedMemory() {
        return unsealedMemory;
    }

    public int threads() {
        return workers.length;
    }

    public boolean isDataplaneThread() {
        for (final DataplaneWorker w : workers) {
            if (w.isCurrentThread()) {
                return true;
            }
        }
        return false;
    }

    boolean pauseRequested() {
        return pauseRequested;
    }

    /**
     * Run {@code action} with exclusive access to every queue (all workers parked between bursts) and return
     * its result. Blocks the caller (a control thread) for the duration.
     */
    public <T> T call(final Supplier<T> action) {
        if (!started || isDataplaneThread()) {
            return action.get();
        }
        synchronized (commandLock) {
            pauseRequested = true;
            try {
                for (final DataplaneWorker w : workers) {
                    w.wake();
                }
                final long deadline = System.nanoTime() + 10_000_000_000L;
                for (final DataplaneWorker w : workers) {
                    while (!w.isParked() && w.isAlive()) {
                        if (System.nanoTime() > deadline) {
                            throw new IllegalStateException("dataplane did not pause within 10 s");
                        }
                        Thread.onSpinWait();
                    }
                }
                return action.get();
            } finally {
                pauseRequested = false;
                for (final DataplaneWorker w : workers) {
                    w.unpark();
                }
            }
        }
    }

    public void run(final Runnable action) {
        call(() -> {
            action.run();
            return null;
        });
    }

    /** The worker that owns queue {@code queue} (pair queue / 2). */
    private DataplaneWorker ownerOf(final int queue) {
        return workers[(queue / 2) % workers.length];
    }

    /** Register a queue's kick eventfd with its owner (sleeping and kick counting). Inside {@link #call}. */
    public void watchKick(final int port, final int queue, final EventFd kick) {
        ownerOf(queue).watchKick(port, queue, kick);
    }

    public void unwatchKick(final EventFd kick) {
        for (final DataplaneWorker w : workers) {
            w.unwatchKick(kick);
        }
    }

    public int portIndex(final VirtioNetPort port) {
        for (int i = 0; i < ports.length; i++) {
            if (ports[i] == port) {
                return i;
            }
        }
        throw new IllegalArgumentException("unknown port " + port.name());
    }

    /**
     * Send a frame the back-end built as if {@code port}'s guest had transmitted it. Inside {@link #call}. A frame
     * the peer cannot take is counted as a drop of the port's TX queue.
     */
    public boolean injectFrom(final VirtioNetPort port, final byte[] frame) {
        final boolean delivered = workers[0].forwarder().inject(frame, peers[portIndex(port)]);
        if (!delivered) {
            // Like any frame of this port's the peer cannot take (README: dropped and counted, never waited for).
            port.tx().counters().add(QueueCounters.DROPS, 1);
        }
        return delivered;
    }

    /**
     * Bytes the dataplane threads have allocated on the Java heap since they started (HotSpot's per-thread
     * allocation counters), or -1 where unsupported. Flat while forwarding: the hot path allocates nothing.
     */
    public long allocatedBytes() {
        long sum = 0;
        for (final DataplaneWorker w : workers) {
            final long a = w.allocatedBytes();
            if (a < 0) {
                return -1;
            }
            sum += a;
        }
        return sum;
    }

    /** Log each queue breakage once, off the hot path (worker 0, while idle). */
    void reportBrokenQueues() {
        for (int p = 0; p < ports.length; p++) {
            for (int q = 0; q < ports[p].queueCount(); q++) {
                // Compared by count, not by the current error: a queue reset and broken again with the same
                // error between two looks must be logged again.
                final QueueCounters counters = ports[p].queue(q).counters();
                final long breaks = counters.breaks();
                final int slot = p * slotsPerPort + q;
                if (breaks != reportedBreaks[slot]) {
                    reportedBreaks[slot] = breaks;
                    LOG.warning(ports[p].name() + " queue " + q + " broken: " + counters.lastBreak().description()
                        + "; it stays stopped until the front-end sets it up again");
                }
            }
        }
    }

    @Override
    public void close() {
        for (final DataplaneWorker w : workers) {
            w.stop();
        }
        for (final DataplaneWorker w : workers) {
            w.join();
        }
    }

}
