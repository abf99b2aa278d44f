package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.vhostpci.VhostPciSession.Ack;
import dev.vhostnet.backend.vhostpci.VhostPciSession.QueuePosition;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.hostile.Resources;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.FeatureBitsMessage;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A device-side back-end ({@code --socket-path A --vhost-pci-listen P}, in this JVM) with its own well-behaved
 * front-end connected for the whole time, which hostile vhost-pci clients attack. {@link #assertHealthy} proves
 * after each attack that the back-end still does its job and holds nothing of the attacker: the hostile session
 * is gone (client's queues stopped), our own front-end's frames still complete, a well-behaved client (the real
 * session layer with a guest's rings) is admitted and exchanges frames with our front-end both ways, and fds,
 * memfd mappings and threads are back to the baseline taken after a warm-up.
 */
final class PciArena implements AutoCloseable {
    static final Duration WAIT = HostileClient.WAIT;
    /** The device side's heartbeat: short, so that "silence past the timeout" costs seconds, not minutes. */
    static final int HEARTBEAT_MS = 500;
    static final int TIMEOUT_MS = 3000;
    static final int RX = VirtioNetDriver.RX;
    static final int TX = VirtioNetDriver.TX;

    final Path pci;
    final PeerBackend dev;
    /** The device side's own front-end (its guest). */
    final VirtioNetDriver d;
    private Resources baseline;
    private int seed;

    PciArena(final Path dir) throws IOException {
        pci = dir.resolve("pci.sock");
        dev = PeerBackend.device(dir, pci, -1L, VhostPciSession.Config.defaults(VhostPci.ROLE_DEVICE, UUID.randomUUID())
            .withHeartbeat(HEARTBEAT_MS, TIMEOUT_MS));
        d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults());
        d.postRxBuffers(64, 2048);
        assertHealthy("warm-up"); // class loading, lazily opened files: before the baseline
        baseline = Resources.now();
    }

    UUID deviceUuid() {
        return dev.device.uuid();
    }

    /** The client's queue {@code q} on the device side's dataplane. */
    dev.vhostnet.dataplane.virtq.Virtqueue remoteQueue(final int q) {
        return dev.remote.queue(q);
    }

    /** The device side has forgotten every client: none admitted, the client's queues stopped, no region. */
    void awaitNoClient(final String after) {
        awaitNoClientWithin(after, WAIT);
    }

    void awaitNoClientWithin(final String after, final Duration timeout) {
        Await.until("device side rid of the client after " + after, timeout,
            () -> dev.device.clientUuid() == null && !dev.device.deviceRunning() && dev.device.clientRegions() == 0
                && !remoteQueue(RX).isStarted() && !remoteQueue(TX).isStarted(),
            () -> "client=" + dev.device.clientUuid() + " running=" + dev.device.deviceRunning() + " regions="
                + dev.device.clientRegions());
    }

    /** Wait for the client's queue {@code q} to break (any error when {@code expected} is null). */
    void awaitBroken(final HostileClient c, final int q, final QueueError expected) throws IOException {
        final long end = System.nanoTime() + WAIT.toNanos();
        while (remoteQueue(q).error() == QueueError.NONE) {
            assertTrue(System.nanoTime() < end, "client queue " + q + " broken with " + expected + " ("
                + remoteQueue(q) + ")");
            assertTrue(c.pump(Duration.ofMillis(10)), "connection still open while waiting for the queue to break");
        }
        if (expected != null) {
            assertEquals(expected, remoteQueue(q).error(), "client queue " + q);
        }
    }

    /**
     * After an attack (the hostile connections closed, or about to be closed by the device side): everything of
     * the attacker released, our own front-end and a new well-behaved client forward, nothing leaked.
     */
    void assertHealthy(final String after) throws IOException {
        try {
            awaitNoClient(after);
            assertTrue(dev.local.queue(RX).isRunning() && dev.local.queue(TX).isRunning(),
                "our own front-end's queues still run");
            ownFrontEndForwardsAlone();
            awaitSocketsReleased(after);
            goodClientForwards();
            awaitNoClient("the well-behaved client");
        } catch (final AssertionError | RuntimeException e) {
            throw new AssertionError("after " + after + ": " + e.getMessage(), e);
        }
        if (baseline != null) {
            baseline.awaitNoMoreThan(after);
        }
    }

    /**
     * The attacker's sockets are closed on the device side too. Until the other branch's VhostPciChannel change
     * (dup received fds, release junixsocket's originals) is merged, junixsocket closes every fd a connection
     * received a second time when that socket closes; were the well-behaved client's memfd to get such a number
     * first, that second close would hit it. Waiting here keeps the health check about the attack just made.
     */
    private void awaitSocketsReleased(final String after) {
        if (baseline != null) {
            Await.until("sockets back to " + baseline.sockets() + " after " + after, WAIT,
                () -> Resources.now().sockets() <= baseline.sockets(), () -> Resources.now().toString());
        }
    }

    /** With no client device, frames our front-end sends to the absent peer are dropped and its TX completes. */
    void ownFrontEndForwardsAlone() {
        final byte[] f = VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 200, ++seed);
        d.send(f);
        assertTrue(d.awaitTxDone(WAIT), "our own front-end's frames complete with no client");
    }

    /**
     * A well-behaved client, speaking through the real session layer: HELLO, memory, features, its device with
     * both rings; a frame each way between its guest and our front-end; DEVICE_INFO DEL with the exact final
     * positions; memory DEL; goodbye.
     */
    void goodClientForwards() throws IOException {
        try (ClientGuest g = new ClientGuest()) {
            final VhostPciSession s = VhostPciSession.start(
                AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(pci.toFile())),
                VhostPciSession.Config.defaults(VhostPci.ROLE_CLIENT, UUID.randomUUID()).withHeartbeat(HEARTBEAT_MS, TIMEOUT_MS),
                new VhostPciSession.Handler() {
                    @Override
                    public void onRequest(final VhostPciSession session, final VhostPciFrame request) {
                        try {
                            session.ack(request.seq(), request.type(), request.type() == VhostPci.DEVICE_INFO
                                ? VhostPci.DEL_DONE : VhostPci.DONE, VhostPci.R_NONE, 0);
                        } catch (final IOException e) {
                            // closed
                        }
                    }
                });
            try {
                assertEquals(1, s.awaitOpen(WAIT), "well-behaved client admitted");
                final GuestMemoryRegionAck region = new GuestMemoryRegionAck(g);
                assertEquals(VhostPci.ADD_DONE, get(region.add(s)).status(), "memory of a well-behaved client");
                final Ack f = get(s.request(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, (b, o) ->
                    new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, o).features(ClientGuest.FEATURES)
                        .flags(VhostPci.FEATURES_NEGOTIATED)));
                assertEquals(ClientGuest.FEATURES, f.value(), "features accepted");
                final List<ClientGuest.Ring> rings = g.rings();
                final Ack add = get(s.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, 2),
                    (b, o) -> {
                        final DeviceInfoMessage m = new DeviceInfoMessage().wrap(b, o);
                        m.op(VhostPci.OP_ADD).deviceType(VhostPci.DEVICE_NET).nvqs(2).features(ClientGuest.FEATURES)
                            .deviceId(HostileClient.MAC);
                        for (int i = 0; i < 2; i++) {
                            rings.get(i).writeTo(m.virtq(i));
                        }
                    }, g.ringFds()));
                assertEquals(VhostPci.ADD_DONE, add.status(), "device of a well-behaved client: " + add);
                exchange(g);
                final Ack del = get(s.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0),
                    (b, o) -> new DeviceInfoMessage().<DeviceInfoMessage>wrap(b, o).op(VhostPci.OP_DEL)
                        .deviceType(VhostPci.DEVICE_NET).deviceId(HostileClient.MAC)));
                assertEquals(List.of(new QueuePosition(RX, 1, 1, 0), new QueuePosition(TX, 1, 1, 0)), del.states(),
                    "final positions");
                assertEquals(VhostPci.DEL_DONE, get(region.del(s)).status(), "memory handed back");
            } catch (final Exception e) {
                throw new AssertionError("well-behaved client: " + e, e);
            } finally {
                s.close();
            }
        }
    }

    /** One frame from our front-end into the client guest's RX ring, one from its TX ring to our front-end. */
    void exchange(final ClientGuest g) {
        seed++;
        final long rxBuf = g.postReceive();
        final int rxUsed = g.rx.usedIdx();
        final byte[] toClient = VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 100 + seed % 900, seed);
        d.send(toClient);
        Await.until("frame in the client guest's RX ring", WAIT, () -> g.rx.usedIdx() == ((rxUsed + 1) & 0xFFFF),
            () -> "used " + g.rx.usedIdx() + ", " + remoteQueue(RX));
        assertArrayEquals(toClient, g.received(rxBuf, toClient.length), "frame to the client " + seed);
        drainOwn();
        final byte[] fromClient = VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 300 + seed % 900, -seed);
        g.transmit(fromClient);
        assertArrayEquals(fromClient, d.receive(WAIT), "frame from the client " + seed);
    }

    /** Throw away what earlier (hostile) clients' guests got through to our front-end; repost its buffers. */
    void drainOwn() {
        while (d.receive(Duration.ZERO) != null) {
            // frames of an attack
        }
        d.reclaimTx();
        if (d.rxPosted() < 32) {
            d.postRxBuffers(32, 2048);
        }
    }

    /** MEMORY_INFO ADD / DEL of a guest's whole memory through the real session layer. */
    private record GuestMemoryRegionAck(ClientGuest g) {
        CompletableFuture<Ack> add(final VhostPciSession s) {
            return memory(s, VhostPci.OP_ADD, g.memory.fd());
        }

        CompletableFuture<Ack> del(final VhostPciSession s) {
            return memory(s, VhostPci.OP_DEL);
        }

        private CompletableFuture<Ack> memory(final VhostPciSession s, final int op, final int... fds) {
            final var r = g.region();
            return s.request(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(1), (b, o) -> {
                final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, o);
                m.op(op).nregions(1);
                m.region(0).guestPhysAddr(r.guestPhysAddr()).memorySize(r.size()).userAddr(r.userAddr())
                    .mmapOffset(r.mmapOffset());
            }, fds);
        }
    }

    private static Ack get(final CompletableFuture<Ack> f) throws Exception {
        return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
        try {
            d.close();
        } catch (final IOException e) {
            // closing anyway
        } finally {
            dev.close();
        }
    }
}
