package dev.vhostnet.dataplane.agent;

import dev.vhostnet.dataplane.net.PacketForwarder;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.Epoll;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.Virtqueue;

import java.util.concurrent.locks.LockSupport;
import java.util.logging.Logger;

/**
 * One dataplane thread: forwards the queue pairs it owns (p % workers == index) in a duty cycle, spins
 * while there is work, and when idle either keeps spinning (busy) or re-enables kicks and sleeps on its
 * kick eventfds (adaptive). Parks between bursts when the control plane asks for exclusive access.
 */
final class DataplaneWorker {
    private static final Logger LOG = Logger.getLogger(DataplaneWorker.class.getName());
    /** Idle iterations between two checks of the kick eventfds (counting kicks) in busy mode. */
    private static final int KICK_POLL_INTERVAL = 1024;
    /** Idle iterations before adaptive mode goes to sleep (~ a few ms of spinning). */
    private static final int ADAPTIVE_SPINS = 20_000;
    private static final int SLEEP_MILLIS = 1000;
    private static final long WAKE_TOKEN = -1L;

    private final Dataplane owner;
    private final int index;
    private final int stride;
    private final VirtioNetPort[] ports;
    private final VirtioNetPort[] peers;
    private final PollMode pollMode;
    private final int cpu;
    private final PacketForwarder forwarder = new PacketForwarder();
    private final Epoll epoll = new Epoll(64);
    private final EventFd wakeFd = EventFd.create();
    private final Thread thread;
    private volatile boolean running = true;
    private volatile boolean parked;
    private int idleSpins;
    /** Port being forwarded when a fault surfaces (to blame it when no memory is visibly truncated). */
    private VirtioNetPort serving;

    DataplaneWorker(final Dataplane owner, final int index, final int stride, final VirtioNetPort[] ports,
                    final VirtioNetPort[] peers, final PollMode pollMode, final int cpu) {
        this.owner = owner;
        this.index = index;
        this.stride = stride;
        this.ports = ports;
        this.peers = peers;
        this.pollMode = pollMode;
        this.cpu = cpu;
        epoll.add(wakeFd.fd(), WAKE_TOKEN);
        thread = new Thread(this::run, stride == 1 ? "vhost-dataplane" : "vhost-dataplane-" + index);
        thread.setDaemon(true);
    }

    void start() {
        thread.start();
    }

    boolean isCurrentThread() {
        return Thread.currentThread() == thread;
    }

    boolean isAlive() {
        return thread.isAlive();
    }

    boolean isParked() {
        return parked;
    }

    PacketForwarder forwarder() {
        return forwarder;
    }

    void wake() {
        wakeFd.signal();
    }

    void unpark() {
        LockSupport.unpark(thread);
    }

    void watchKick(final int port, final int queue, final EventFd kick) {
        epoll.add(kick.fd(), ((long) port << 16) | queue);
    }

    void unwatchKick(final EventFd kick) {
        epoll.remove(kick.fd());
    }

    long allocatedBytes() {
        final java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        if (mx instanceof com.sun.management.ThreadMXBean && thread.isAlive()) {
            return ((com.sun.management.ThreadMXBean) mx).getThreadAllocatedBytes(thread.getId());
        }
        return thread.isAlive() ? -1 : 0;
    }

    private void run() {
        if (cpu >= 0) {
            try {
                FileDescriptors.pinCurrentThread(cpu);
            } catch (final RuntimeException e) {
                LOG.warning("cannot pin " + thread.getName() + " to CPU " + cpu + ": " + e.getMessage());
            }
        }
        while (running) {
            try {
                if (owner.pauseRequested()) {
                    parkWhilePaused();
                    continue;
                }
                final int work = doWork();
                if (work > 0) {
                    idleSpins = 0;
                } else {
                    idle();
                }
            } catch (final Throwable t) {
                // Nothing may end the loop but close(). Guest memory cannot shrink under us: it is sealed
                // (ShrinkSeal) or refused, unless --unsealed-memory allow trusts its sender. Only then can a
                // truncation fault here, and only best effort: HotSpot turns some SIGBUS in Unsafe accesses into an
                // InternalError, asynchronously (anywhere in this loop, even inside this handler), and aborts the
                // JVM on others. This containment is not the defence; the seal is.
                try {
                    contain(t);
                } catch (final Throwable again) {
                    LOG.severe(thread.getName() + ": fault while containing a fault: " + again);
                }
            }
        }
    }

    private void parkWhilePaused() {
        parked = true;
        try {
            while (owner.pauseRequested() && running) {
                LockSupport.parkNanos(100_000);
            }
        } finally {
            parked = false; // even if a late fault surfaces here: never look parked while running
            idleSpins = 0;
        }
    }

    private int doWork() {
        int work = 0;
        for (int i = 0; i < ports.length; i++) {
            if (!ports[i].leaseValid()) {
                continue; // vhost-pci: the lease on another process's rings ran out; do not touch them
            }
            final VirtioNetPort peer = peers[i] != null && peers[i].leaseValid() ? peers[i] : null;
            serving = ports[i];
            try {
                work += forwarder.forward(ports[i], peer, index, stride);
            } catch (final Throwable t) {
                // A fault (a bug, or allowed unsealed memory truncated under us) must cost that port, not the process.
                contain(t);
            }
        }
        serving = null;
        return work;
    }

    /**
     * Stop the queues (this worker's) of the port a fault belongs to: every port whose guest memory no longer
     * covers its regions (unsealed memory, allowed and then truncated by its front-end), or else the port being
     * served when the fault surfaced.
     */
    private void contain(final Throwable t) {
        boolean found = false;
        for (final VirtioNetPort port : ports) {
            if (!memoryIntact(port)) {
                stopPort(port, t);
                found = true;
            }
        }
        if (!found) {
            if (serving != null) {
                stopPort(serving, t);
            } else {
                LOG.severe("dataplane fault outside any port's processing: " + t);
            }
        }
        serving = null;
        // The fault may have interrupted a surviving queue mid-burst: put this worker's queues back to their
        // last consistent position (broken ones are left alone).
        for (final VirtioNetPort port : ports) {
            for (int q = 0; q < port.queueCount(); q++) {
                if ((q / 2) % stride == index) {
                    port.queue(q).recoverAfterFault();
                }
            }
        }
    }

    private static boolean memoryIntact(final VirtioNetPort port) {
        for (int q = 0; q < port.queueCount(); q++) {
            if (!port.queue(q).memory().isIntact()) {
                return false;
            }
        }
        return true;
    }

    private void stopPort(final VirtioNetPort port, final Throwable t) {
        boolean stopped = false;
        for (int q = 0; q < port.queueCount(); q++) {
            if ((q / 2) % stride != index) {
                continue; // another worker's queue
            }
            final Virtqueue queue = port.queue(q);
            stopped |= queue.error() == QueueError.NONE && queue.isStarted();
            queue.fail(QueueError.MEMORY_FAULT);
        }
        if (stopped) {
            LOG.severe(port.name() + ": dataplane fault, queues stopped: " + t);
        }
    }

    private void idle() {
        idleSpins++;
        if (pollMode == PollMode.ADAPTIVE && idleSpins >= ADAPTIVE_SPINS) {
            sleepUntilKicked();
            idleSpins = 0;
        } else if ((idleSpins & (KICK_POLL_INTERVAL - 1)) == 0) {
            drainKicks(epoll.await(0));
            if (index == 0) {
                owner.reportBrokenQueues();
            }
        } else {
            Thread.onSpinWait();
        }
    }

    private void sleepUntilKicked() {
        boolean pending = false;
        for (final VirtioNetPort port : ports) {
            if (!port.leaseValid()) {
                continue;
            }
            for (int pair = index; pair < port.maxPairs(); pair += stride) {
                pending |= port.tx(pair).enableKicks();
            }
        }
        if (!pending && !owner.pauseRequested()) {
            drainKicks(epoll.await(SLEEP_MILLIS));
        }
        for (final VirtioNetPort port : ports) {
            if (!port.leaseValid()) {
                continue;
            }
            for (int pair = index; pair < port.maxPairs(); pair += stride) {
                port.tx(pair).disableKicks();
            }
        }
        if (index == 0) {
            owner.reportBrokenQueues();
        }
    }

    private void drainKicks(final int ready) {
        for (int i = 0; i < ready; i++) {
            final long token = epoll.token(i);
            if (token == WAKE_TOKEN) {
                wakeFd.drain();
                continue;
            }
            final int p = (int) (token >>> 16);
            final int q = (int) (token & 0xFFFF);
            if (p < ports.length && q < ports[p].queueCount()) {
                final Virtqueue queue = ports[p].queue(q);
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

    void stop() {
        running = false;
        wakeFd.signal();
        LockSupport.unpark(thread);
    }

    void join() {
        try {
            thread.join(5000);
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        epoll.close();
        wakeFd.close();
    }
}
