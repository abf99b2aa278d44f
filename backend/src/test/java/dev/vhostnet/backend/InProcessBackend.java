package dev.vhostnet.backend;

import dev.vhostnet.backend.transport.SocketTimeouts;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.Virtqueue;
import dev.vhostnet.frontend.VirtioNetDriver;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The back-end as Main.run assembles it (ports, dataplane, one server per socket), inside the test JVM so that
 * tests can also read the queues' counters. One or two ports; with two they are each other's peer.
 */
public final class InProcessBackend implements AutoCloseable {
    /** Kept strongly reachable so the level sticks; -Dvhostnet.test.log=INFO shows the back-end's log. */
    private static final Logger PROJECT_LOG = Logger.getLogger("dev.vhostnet");

    static {
        PROJECT_LOG.setLevel(Level.parse(System.getProperty("vhostnet.test.log", "SEVERE")));
    }

    public static final byte[] MAC_A = {0x52, 0x54, 0x00, 0x0a, 0x0a, 0x0a};
    public static final byte[] MAC_B = {0x52, 0x54, 0x00, 0x0b, 0x0b, 0x0b};

    private final VirtioNetPort[] ports;
    private final Path[] sockets;
    private final Dataplane dataplane;
    private final List<VhostUserServer> servers = new ArrayList<>();

    private InProcessBackend(final Path dir, final int portCount, final PollMode mode) throws IOException {
        this(dir, portCount, mode, UnsealedMemory.REFUSE);
    }

    private InProcessBackend(final Path dir, final int portCount, final PollMode mode, final UnsealedMemory unsealed)
        throws IOException {
        ports = new VirtioNetPort[portCount];
        sockets = new Path[portCount];
        final VirtioNetPort[] peers = new VirtioNetPort[portCount];
        for (int i = 0; i < portCount; i++) {
            sockets[i] = dir.resolve("vu" + i + ".sock");
            ports[i] = new VirtioNetPort(sockets[i].toString());
        }
        if (portCount == 2) {
            peers[0] = ports[1];
            peers[1] = ports[0];
        }
        dataplane = new Dataplane(ports, peers, mode, -1, unsealed);
        try {
            for (int i = 0; i < portCount; i++) {
                servers.add(VhostUserServer.listen(sockets[i], ports[i], dataplane,
                    new NetDeviceConfig(i == 0 ? MAC_A : MAC_B), null));
            }
        } catch (final IOException e) {
            close();
            throw e;
        }
        dataplane.start();
        servers.forEach(VhostUserServer::start);
    }

    /** One port, no peer: what it transmits is dropped. */
    public static InProcessBackend single(final Path dir) throws IOException {
        return new InProcessBackend(dir, 1, PollMode.ADAPTIVE);
    }

    /** Two ports back to back (--peer-socket-path). */
    public static InProcessBackend peered(final Path dir) throws IOException {
        return new InProcessBackend(dir, 2, PollMode.ADAPTIVE);
    }

    public static InProcessBackend peered(final Path dir, final PollMode mode) throws IOException {
        return new InProcessBackend(dir, 2, mode);
    }

    /** Two ports back to back, with --unsealed-memory {@code unsealed}. */
    public static InProcessBackend peered(final Path dir, final UnsealedMemory unsealed) throws IOException {
        return new InProcessBackend(dir, 2, PollMode.ADAPTIVE, unsealed);
    }

    public Path socket(final int port) {
        return sockets[port];
    }

    public VirtioNetPort port(final int port) {
        return ports[port];
    }

    public Dataplane dataplane() {
        return dataplane;
    }

    public Virtqueue queue(final int port, final int queue) {
        return ports[port].queue(queue);
    }

    public long counter(final int port, final int queue, final int counter) {
        return ports[port].queue(queue).counters().get(counter);
    }

    /**
     * Wait until a counter reaches {@code expected} and check it does not overshoot. Counters are updated
     * after used->idx is published, so a driver can see a frame a moment before it is counted.
     */
    public void awaitCounter(final int port, final int queue, final int counter, final long expected) {
        dev.vhostnet.frontend.Await.until("port " + port + " queue " + queue + " " + QueueCounters.name(counter)
                + " == " + expected, dev.vhostnet.frontend.Await.DEFAULT,
            () -> counter(port, queue, counter) >= expected, () -> String.valueOf(counter(port, queue, counter)));
        org.junit.jupiter.api.Assertions.assertEquals(expected, counter(port, queue, counter),
            "port " + port + " queue " + queue + " " + QueueCounters.name(counter));
    }

    public long txDrops(final int port) {
        return counter(port, 1, QueueCounters.DROPS);
    }

    /** Time-outs for the connections port {@code port} accepts from now on. */
    public void timeouts(final int port, final SocketTimeouts timeouts) {
        servers.get(port).timeouts(timeouts);
    }

    public VirtioNetDriver start(final int port, final VirtioNetDriver.Options options) throws IOException {
        return VirtioNetDriver.start(sockets[port], options);
    }

    public VirtioNetDriver start(final int port) throws IOException {
        return start(port, VirtioNetDriver.Options.defaults());
    }

    @Override
    public void close() {
        servers.forEach(VhostUserServer::close);
        dataplane.close();
    }
}
