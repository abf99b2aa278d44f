package dev.vhostnet.dataplane.agent;

import dev.vhostnet.dataplane.net.PacketForwarder;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.Epoll;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.SplitVirtqueue;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * The dataplane: one thread that owns every port's virtqueues and forwards frames between peers in a duty
 * cycle. The control plane never touches a queue directly; it submits a command with {@link #call} and waits
 * until the dataplane thread has run it between two bursts. That single rule removes every race between
 * protocol handling and packet processing (memory tables swapped under a walk, rings stopped mid-burst).
 */
public final class Dataplane implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Dataplane.class.getName());
    /** Idle iterations between two checks of the kick eventfds (counting kicks) in busy mode. */
    private static final int KICK_POLL_INTERVAL = 1024;
    /** Idle iterations before adaptive mode goes to sleep (~ a few ms of spinning). */
    private static final int ADAPTIVE_SPINS = 20_000;
    private static final int SLEEP_MILLIS = 1000;
    private static final long WAKE_TOKEN = -1L;

    private final VirtioNetPort[] ports;
    private final VirtioNetPort[] peers;
    private final PollMode pollMode;
    private final int cpu;
    private final PacketForwarder forwarder = new PacketForwarder();
    private final ManyToOneConcurrentArrayQueue<Command<?>> commands = new ManyToOneConcurrentArrayQueue<>(256);
    private final Epoll epoll = new Epoll(64);
    private final EventFd wake = EventFd.create();
    private final Thread thread;
    private final QueueError[] reportedErrors;
    private volatile boolean running = true;
    private int idleSpins;

    /**
     * @param ports  every port this dataplane serves
     * @param peers  peers[i] receives what ports[i] transmits (null: drop)
     * @param cpu    CPU to pin the thread to, or -1
     */
    public Dataplane(final VirtioNetPort[] ports, final VirtioNetPort[] peers, final PollMode pollMode, final int cpu) {
        this.ports = ports.clone();
        this.peers = peers.clone();
        this.pollMode = pollMode;
        this.cpu = cpu;
        this.reportedErrors = new QueueError[ports.length * VirtioNetPort.QUEUES];
        java.util.Arrays.fill(reportedErrors, QueueError.NONE);
        epoll.add(wake.fd(), WAKE_TOKEN);
        thread = new Thread(this::run, "vhost-dataplane");
        thread.setDaemon(true);
    }

    public void start() {
        thread.start();
    }

    public boolean isDataplaneThread() {
        return Thread.currentThread() == thread;
    }

    /**
     * Run {@code action} on the dataplane thread between bursts and return its result. Blocks the caller
     * (a control thread) until done.
     */
    public <T> T call(final Supplier<T> action) {
        if (isDataplaneThread() || !thread.isAlive()) {
            return action.get();
        }
        final Command<T> command = new Command<>(action);
        while (!commands.offer(command)) {
            Thread.onSpinWait();
        }
        wake.signal();
        try {
            return command.result.get(10, TimeUnit.SECONDS);
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted waiting for the dataplane", e);
        } catch (final ExecutionException e) {
            if (e.getCause() instanceof RuntimeException) {
                throw (RuntimeException) e.getCause();
            }
            throw new IllegalStateException(e.getCause());
        } catch (final TimeoutException e) {
            throw new IllegalStateException("dataplane did not answer within 10 s", e);
        }
    }

    public void run(final Runnable action) {
        call(() -> {
            action.run();
            return null;
        });
    }

    /** Register a queue's kick eventfd for sleeping and kick counting (dataplane thread, from a command). */
    public void watchKick(final int port, final int queue, final EventFd kick) {
        epoll.add(kick.fd(), ((long) port << 16) | queue);
    }

    public void unwatchKick(final EventFd kick) {
        epoll.remove(kick.fd());
    }

    public int portIndex(final VirtioNetPort port) {
        for (int i = 0; i < ports.length; i++) {
            if (ports[i] == port) {
                return i;
            }
        }
        throw new IllegalArgumentException("unknown port " + port.name());
    }

    private void run() {
        if (cpu >= 0) {
            try {
                FileDescriptors.pinCurrentThread(cpu);
            } catch (final RuntimeException e) {
                LOG.warning("cannot pin the dataplane to CPU " + cpu + ": " + e.getMessage());
            }
        }
        while (running) {
            final int work = doWork();
            if (work > 0) {
                idleSpins = 0;
            } else {
                idle();
            }
        }
        runCommands(); // answer anything submitted while stopping
    }

    private int doWork() {
        int work = runCommands();
        for (int i = 0; i < ports.length; i++) {
            try {
                work += forwarder.forward(ports[i], peers[i]);
            } catch (final Throwable t) {
                // A fault in guest memory (e.g. a region truncated under us) must cost that port, not the process.
                contain(ports[i], t);
            }
        }
        return work;
    }

    private void contain(final VirtioNetPort port, final Throwable t) {
        for (int q = 0; q < port.queueCount(); q++) {
            port.queue(q).fail(QueueError.MEMORY_FAULT);
        }
        LOG.severe(port.name() + ": dataplane fault, queues stopped: " + t);
    }

    private int runCommands() {
        int n = 0;
        Command<?> c;
        while ((c = commands.poll()) != null) {
            c.execute();
            n++;
        }
        return n;
    }

    private void idle() {
        idleSpins++;
        if (pollMode == PollMode.ADAPTIVE && idleSpins >= ADAPTIVE_SPINS) {
            sleepUntilKicked();
            idleSpins = 0;
        } else if ((idleSpins & (KICK_POLL_INTERVAL - 1)) == 0) {
            drainKicks(epoll.await(0));
            reportBrokenQueues();
        } else {
            Thread.onSpinWait();
        }
    }

    private void sleepUntilKicked() {
        boolean pending = false;
        for (final VirtioNetPort port : ports) {
            pending |= port.tx().enableKicks();
        }
        if (!pending && commands.isEmpty()) {
            drainKicks(epoll.await(SLEEP_MILLIS));
        }
        for (final VirtioNetPort port : ports) {
            port.tx().disableKicks();
        }
        reportBrokenQueues();
    }

    private void drainKicks(final int ready) {
        for (int i = 0; i < ready; i++) {
            final long token = epoll.token(i);
            if (token == WAKE_TOKEN) {
                wake.drain();
                continue;
            }
            final int p = (int) (token >>> 16);
            final int q = (int) (token & 0xFFFF);
            if (p < ports.length && q < ports[p].queueCount()) {
                final SplitVirtqueue queue = ports[p].queue(q);
                final EventFd kick = queue.kick();
                if (kick != null) {
                    final long kicks = kick.drain();
                    if (kicks > 0) {
                        queue.counters().add(QueueCounters.KICKS, kicks);
                    }
                }
                queue.disableKicks();
            }
        }
    }

    /** Log each queue breakage once, off the hot path. */
    private void reportBrokenQueues() {
        for (int p = 0; p < ports.length; p++) {
            for (int q = 0; q < ports[p].queueCount(); q++) {
                final QueueError e = ports[p].queue(q).error();
                final int slot = p * VirtioNetPort.QUEUES + q;
                if (e != reportedErrors[slot]) {
                    reportedErrors[slot] = e;
                    if (e != QueueError.NONE) {
                        LOG.warning(ports[p].name() + " queue " + q + " broken: " + e.description()
                            + "; it stays stopped until the front-end sets it up again");
                    }
                }
            }
        }
    }

    /** Send a frame the back-end built as if {@code port}'s guest had transmitted it (dataplane thread). */
    public boolean injectFrom(final VirtioNetPort port, final byte[] frame) {
        return forwarder.inject(frame, peers[portIndex(port)]);
    }

    public VirtioNetPort[] ports() {
        return ports.clone();
    }

    @Override
    public void close() {
        running = false;
        wake.signal();
        try {
            thread.join(5000);
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        epoll.close();
        wake.close();
    }

    private static final class Command<T> {
        private final Supplier<T> action;
        private final CompletableFuture<T> result = new CompletableFuture<>();

        Command(final Supplier<T> action) {
            this.action = action;
        }

        void execute() {
            try {
                result.complete(action.get());
            } catch (final Throwable t) {
                result.completeExceptionally(t);
            }
        }
    }
}
