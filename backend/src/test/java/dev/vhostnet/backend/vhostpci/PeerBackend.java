package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.NetDeviceConfig;
import dev.vhostnet.backend.VhostUserServer;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.spec.vhostpci.VhostPci;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One back-end process of vhost-pci peer mode as Main.run assembles it (port(s), dataplane, vhost-user server,
 * device or client side), inside the test JVM so that tests can read counters and state. Two of them (one
 * device side, one client side) in one JVM are two independent back-ends joined only by the vhost-pci socket.
 */
final class PeerBackend implements AutoCloseable {
    private static final Logger PROJECT_LOG = Logger.getLogger("dev.vhostnet");

    static {
        PROJECT_LOG.setLevel(Level.parse(System.getProperty("vhostnet.test.log", "SEVERE")));
    }

    static final byte[] MAC_D = {0x52, 0x54, 0x00, 0x0d, 0x0d, 0x0d};
    static final byte[] MAC_C = {0x52, 0x54, 0x00, 0x0c, 0x0c, 0x0c};

    final Path socket;
    final VirtioNetPort local;
    final VirtioNetPort remote;
    final Dataplane dataplane;
    final VhostUserServer server;
    final VhostPciDevice device;
    final VhostPciClient client;

    private PeerBackend(final Path socket, final VirtioNetPort local, final VirtioNetPort remote,
                        final Dataplane dataplane, final VhostUserServer server, final VhostPciDevice device,
                        final VhostPciClient client) {
        this.socket = socket;
        this.local = local;
        this.remote = remote;
        this.dataplane = dataplane;
        this.server = server;
        this.device = device;
        this.client = client;
    }

    /** --socket-path dir/NAME.sock --vhost-pci-listen PCI */
    static PeerBackend device(final Path dir, final Path pci, final long handled) throws IOException {
        return device(dir, pci, handled, VhostPciSession.Config.defaults(VhostPci.ROLE_DEVICE, UUID.randomUUID()));
    }

    /** The same with the device side's session parameters chosen (e.g. a short heartbeat timeout). */
    static PeerBackend device(final Path dir, final Path pci, final long handled, final VhostPciSession.Config session)
        throws IOException {
        final Path socket = dir.resolve("dev.sock");
        final VirtioNetPort local = new VirtioNetPort(socket.toString());
        final VirtioNetPort remote = new VirtioNetPort("vhost-pci-peer");
        final Dataplane dataplane = new Dataplane(new VirtioNetPort[] {local, remote},
            new VirtioNetPort[] {remote, local}, PollMode.ADAPTIVE, -1);
        final NetDeviceConfig config = new NetDeviceConfig(MAC_D);
        final VhostUserServer server = VhostUserServer.listen(socket, local, dataplane, config, null);
        final VhostPciDevice device = new VhostPciDevice(pci, local, remote, dataplane, session,
            config.offeredFeatures() & handled);
        server.delegation(device.localDelegation());
        dataplane.start();
        server.start();
        device.start();
        return new PeerBackend(socket, local, remote, dataplane, server, device, null);
    }

    static PeerBackend device(final Path dir, final Path pci) throws IOException {
        return device(dir, pci, -1L);
    }

    /** --socket-path dir/cli.sock --vhost-pci-connect PCI */
    static PeerBackend client(final Path dir, final Path pci, final UUID uuid) throws IOException {
        final Path socket = dir.resolve("cli.sock");
        final VirtioNetPort local = new VirtioNetPort(socket.toString());
        final Dataplane dataplane = new Dataplane(new VirtioNetPort[] {local}, new VirtioNetPort[] {null},
            PollMode.ADAPTIVE, -1);
        final NetDeviceConfig config = new NetDeviceConfig(MAC_C);
        final VhostUserServer server = VhostUserServer.listen(socket, local, dataplane, config, null);
        final VhostPciClient client = new VhostPciClient(pci, VhostPciSession.Config.defaults(VhostPci.ROLE_CLIENT, uuid),
            config.offeredFeatures(), Duration.ofMillis(100));
        server.delegation(client);
        dataplane.start();
        server.start();
        client.start();
        return new PeerBackend(socket, local, null, dataplane, server, null, client);
    }

    static PeerBackend client(final Path dir, final Path pci) throws IOException {
        return client(dir, pci, UUID.randomUUID());
    }

    void awaitDelegated(final boolean delegated) {
        Await.until("client delegated == " + delegated, Duration.ofSeconds(10), () -> client.isDelegated() == delegated,
            () -> "delegated=" + client.isDelegated() + " connected=" + client.isConnected());
    }

    long counter(final VirtioNetPort port, final int queue, final int counter) {
        return port.queue(queue).counters().get(counter);
    }

    private boolean closed;

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (device != null) {
            device.close();
        }
        if (client != null) {
            client.close();
        }
        server.close();
        dataplane.close();
    }
}
