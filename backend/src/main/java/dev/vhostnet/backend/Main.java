package dev.vhostnet.backend;

import dev.vhostnet.backend.vhostpci.VhostPciClient;
import dev.vhostnet.backend.vhostpci.VhostPciDevice;
import dev.vhostnet.backend.vhostpci.VhostPciSession;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.spec.vhostpci.VhostPci;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.time.Duration;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * vhost-user-net: a vhost-user virtio-net back-end. Follows QEMU's "backend program conventions":
 * --socket-path or --fd, --print-capabilities, ends on SIGTERM, never daemonizes.
 */
@Command(name = "vhost-user-net", mixinStandardHelpOptions = true, version = "vhost-user-net 0.1.0",
    description = "vhost-user virtio-net back-end; with --peer-socket-path, joins two guests back to back.")
public final class Main implements Callable<Integer> {
    /** Options listed by --print-capabilities (vhost-user.json "features"). */
    static final String[] CAPABILITIES = {"peer-socket-path", "poll", "stats-interval", "cpu-affinity", "mac", "queues", "mtu", "dataplane-threads",
        "vhost-pci-listen", "vhost-pci-connect"};

    static {
        System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tF %1$tT.%1$tL %4$s %5$s%6$s%n");
    }

    @Option(names = "--socket-path", paramLabel = "PATH", description = "vhost-user socket to listen on.")
    Path socketPath;

    @Option(names = "--fd", paramLabel = "FDNUM", description = "Inherited vhost-user socket fd (listening or connected).")
    Integer fd;

    @Option(names = "--peer-socket-path", paramLabel = "PATH",
        description = "Second vhost-user socket: what one guest sends, the other receives (in-process peer mode).")
    Path peerSocketPath;

    @Option(names = "--vhost-pci-listen", paramLabel = "PATH",
        description = "vhost-pci device side: accept one client back-end on PATH and forward between our guest and its"
            + " guest, walking both guests' rings (spec/VHOST-PCI.md).")
    Path vhostPciListen;

    @Option(names = "--vhost-pci-connect", paramLabel = "PATH",
        description = "vhost-pci client side: connect to a device side on PATH (reconnecting) and hand it our guest's"
            + " rings while it is there.")
    Path vhostPciConnect;

    @Option(names = "--vhost-pci-uuid", paramLabel = "UUID",
        description = "Identity on the vhost-pci socket (default: random per process).")
    UUID vhostPciUuid;

    @Option(names = "--vhost-pci-heartbeat-ms", paramLabel = "MS", defaultValue = "1000",
        description = "vhost-pci heartbeat interval; the peer is dead after 5 intervals of silence.")
    int vhostPciHeartbeatMs;

    @Option(names = "--vhost-pci-features", paramLabel = "HEX", hidden = true,
        description = "Device side: virtio features it handles for the client (mask; default: all we offer).")
    String vhostPciFeatures;

    @Option(names = "--print-capabilities", description = "Print capabilities as JSON and exit.")
    boolean printCapabilities;

    @Option(names = "--poll", paramLabel = "busy|adaptive", defaultValue = "adaptive",
        description = "busy: spin always; adaptive: spin while busy, sleep on kicks when idle (default).")
    String poll;

    @Option(names = "--stats-interval", paramLabel = "SECONDS", defaultValue = "0",
        description = "Print queue counters every SECONDS (0: only at exit).")
    int statsInterval;

    @Option(names = "--cpu-affinity", paramLabel = "CPU[,CPU...]", split = ",",
        description = "Pin dataplane thread i to the i-th CPU of the list (cycled).")
    int[] cpuAffinity = {};

    @Option(names = "--dataplane-threads", paramLabel = "N",
        description = "Dataplane threads; queue pair p runs on thread p %% N (default: fits the machine).")
    Integer dataplaneThreads;

    @Option(names = "--queues", paramLabel = "N", defaultValue = "1",
        description = "Queue pairs per device (VIRTIO_NET_F_MQ when > 1).")
    int queues;

    @Option(names = "--mtu", paramLabel = "BYTES", defaultValue = "1500",
        description = "MTU reported in the device config space (VIRTIO_NET_F_MTU).")
    int mtu;

    @Option(names = "--mac", paramLabel = "MAC", description = "MAC reported for the first socket's device (default: derived from the path).")
    String mac;

    @Option(names = "--peer-mac", paramLabel = "MAC", description = "MAC reported for the peer socket's device.")
    String peerMac;

    @Option(names = "--unsealed-memory", paramLabel = "refuse|allow", defaultValue = "refuse",
        description = "Memory fds that cannot be sealed against shrinking (memory-backend-file on hugetlbfs or tmpfs, "
            + "DPDK's memfds): refuse them (default), or allow them, trusting their sender not to truncate them "
            + "(a truncation under our mapping can abort the process).")
    UnsealedMemory unsealedMemory;

    private final PrintStream out;
    private final PrintStream err;

    Main(final PrintStream out, final PrintStream err) {
        this.out = out;
        this.err = err;
    }

    public static void main(final String[] args) {
        final CommandLine cl = new CommandLine(new Main(System.out, System.err));
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        System.exit(cl.execute(args));
    }

    @Override
    public Integer call() throws Exception {
        if (printCapabilities) {
            out.println(capabilitiesJson());
            return 0;
        }
        final String problem = validate();
        if (problem != null) {
            err.println("vhost-user-net: " + problem);
            return 2;
        }
        return run();
    }

    static String capabilitiesJson() {
        final StringBuilder sb = new StringBuilder("{\"type\": \"net\", \"features\": [");
        for (int i = 0; i < CAPABILITIES.length; i++) {
            sb.append(i > 0 ? ", " : "").append('"').append(CAPABILITIES[i]).append('"');
        }
        return sb.append("]}").toString();
    }

    private String validate() {
        if ((socketPath == null) == (fd == null)) {
            return "exactly one of --socket-path and --fd is required";
        }
        if (fd != null && fd < 0) {
            return "--fd must be a file descriptor number";
        }
        if (peerSocketPath != null && peerSocketPath.equals(socketPath)) {
            return "--peer-socket-path must differ from --socket-path";
        }
        if (vhostPciListen != null && vhostPciConnect != null) {
            return "--vhost-pci-listen and --vhost-pci-connect exclude each other";
        }
        if ((vhostPciListen != null || vhostPciConnect != null) && peerSocketPath != null) {
            return "vhost-pci peer mode and --peer-socket-path exclude each other";
        }
        if (vhostPciHeartbeatMs < 10 || vhostPciHeartbeatMs > 60_000) {
            return "--vhost-pci-heartbeat-ms must be 10..60000";
        }
        if (vhostPciFeatures != null) {
            try {
                Long.parseUnsignedLong(vhostPciFeatures.replaceFirst("^0[xX]", ""), 16);
            } catch (final NumberFormatException e) {
                return "--vhost-pci-features must be a hexadecimal mask";
            }
        }
        if (queues < 1 || queues > 128) {
            return "--queues must be 1..128";
        }
        if (mtu < 68 || mtu > 65535) {
            return "--mtu must be 68..65535";
        }
        if (statsInterval < 0) {
            return "--stats-interval must be >= 0";
        }
        try {
            pollMode();
            if (mac != null) {
                NetDeviceConfig.parseMac(mac);
            }
            if (peerMac != null) {
                NetDeviceConfig.parseMac(peerMac);
            }
        } catch (final IllegalArgumentException e) {
            return e.getMessage();
        }
        final int cpus = Runtime.getRuntime().availableProcessors();
        for (final int cpu : cpuAffinity) {
            if (cpu < 0 || cpu >= cpus) {
                return "--cpu-affinity " + cpu + ": this machine has CPUs 0.." + (cpus - 1);
            }
        }
        if (dataplaneThreads != null && (dataplaneThreads < 1 || dataplaneThreads > queues)) {
            return "--dataplane-threads must be 1..--queues (" + queues + ")";
        }
        return null;
    }

    /**
     * Default: one thread per queue pair, but never more than half the CPUs (the guests need the rest), and
     * at least one.
     */
    private int threads() {
        if (dataplaneThreads != null) {
            return dataplaneThreads;
        }
        return Math.max(1, Math.min(queues, Runtime.getRuntime().availableProcessors() / 2));
    }

    private PollMode pollMode() {
        try {
            return PollMode.valueOf(poll.toUpperCase(Locale.ROOT));
        } catch (final IllegalArgumentException e) {
            throw new IllegalArgumentException("--poll must be busy or adaptive, not " + poll);
        }
    }

    private int run() throws Exception {
        final String firstName = socketPath != null ? socketPath.toString() : "fd" + fd;
        final List<VirtioNetPort> ports = new ArrayList<>();
        ports.add(new VirtioNetPort(firstName, queues));
        if (peerSocketPath != null) {
            ports.add(new VirtioNetPort(peerSocketPath.toString(), queues));
        }
        if (vhostPciListen != null) {
            // The client's guest, as a second port of our dataplane: its rings are handed to us over vhost-pci.
            ports.add(new VirtioNetPort("vhost-pci-peer:" + vhostPciListen, queues));
        }
        final VirtioNetPort[] portArray = ports.toArray(new VirtioNetPort[0]);
        final VirtioNetPort[] peers = new VirtioNetPort[portArray.length];
        if (portArray.length == 2) {
            peers[0] = portArray[1];
            peers[1] = portArray[0];
        }
        final Dataplane dataplane = new Dataplane(portArray, peers, pollMode(), cpuAffinity, threads(), unsealedMemory);
        final StatsPrinter stats = new StatsPrinter(portArray, out, dataplane::allocatedBytes);
        final CountDownLatch finished = new CountDownLatch(1);
        final List<VhostUserServer> servers = new ArrayList<>();
        final AtomicBoolean stopped = new AtomicBoolean();
        final List<AutoCloseable> vhostPci = new ArrayList<>();
        final Runnable shutdown = () -> {
            if (stopped.compareAndSet(false, true)) {
                for (final AutoCloseable c : vhostPci) {
                    try {
                        c.close();
                    } catch (final Exception e) {
                        err.println("vhost-user-net: vhost-pci shutdown: " + e);
                    }
                }
                servers.forEach(VhostUserServer::close);
                stats.print("final");
                dataplane.close();
            }
        };
        try {
            final byte[] mac0 = mac != null ? NetDeviceConfig.parseMac(mac) : NetDeviceConfig.macFor(firstName);
            final NetDeviceConfig config0 = new NetDeviceConfig(mac0, queues, mtu);
            if (socketPath != null) {
                servers.add(VhostUserServer.listen(socketPath, portArray[0], dataplane, config0, finished::countDown));
            } else {
                servers.add(VhostUserServer.inherit(fd, portArray[0], dataplane, config0, finished::countDown));
            }
            if (peerSocketPath != null) {
                final byte[] mac1 = peerMac != null ? NetDeviceConfig.parseMac(peerMac)
                    : NetDeviceConfig.macFor(peerSocketPath.toString());
                servers.add(VhostUserServer.listen(peerSocketPath, portArray[1], dataplane,
                    new NetDeviceConfig(mac1, queues, mtu), finished::countDown));
            }
            final UUID uuid = vhostPciUuid != null ? vhostPciUuid : UUID.randomUUID();
            if (vhostPciListen != null) {
                long handled = config0.offeredFeatures();
                if (vhostPciFeatures != null) {
                    handled &= Long.parseUnsignedLong(vhostPciFeatures.replaceFirst("^0[xX]", ""), 16);
                }
                final VhostPciDevice device = new VhostPciDevice(vhostPciListen, portArray[0], portArray[1], dataplane,
                    sessionConfig(VhostPci.ROLE_DEVICE, uuid), handled);
                vhostPci.add(device);
                servers.get(0).delegation(device.localDelegation());
            } else if (vhostPciConnect != null) {
                final VhostPciClient client = new VhostPciClient(vhostPciConnect,
                    sessionConfig(VhostPci.ROLE_CLIENT, uuid), config0.offeredFeatures(), Duration.ofSeconds(1));
                vhostPci.add(client);
                servers.get(0).delegation(client);
            }
        } catch (final Exception e) {
            err.println("vhost-user-net: cannot start: " + e.getMessage());
            for (final AutoCloseable c : vhostPci) {
                c.close();
            }
            servers.forEach(VhostUserServer::close);
            dataplane.close();
            return 1;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(shutdown, "vhost-shutdown"));
        dataplane.start();
        servers.forEach(VhostUserServer::start);
        for (final AutoCloseable c : vhostPci) {
            if (c instanceof VhostPciDevice d) {
                d.start();
                out.println("vhost-user-net: vhost-pci device side on " + vhostPciListen + ", UUID " + d.uuid());
            } else if (c instanceof VhostPciClient cl) {
                cl.start();
                out.println("vhost-user-net: vhost-pci client side of " + vhostPciConnect + ", UUID " + cl.uuid());
            }
        }
        printBanner(servers);
        if (statsInterval > 0) {
            final Thread printer = new Thread(() -> {
                try {
                    while (true) {
                        Thread.sleep(statsInterval * 1000L);
                        stats.print("periodic");
                    }
                } catch (final InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "vhost-stats");
            printer.setDaemon(true);
            printer.start();
        }
        finished.await();
        shutdown.run();
        return 0;
    }

    private VhostPciSession.Config sessionConfig(final int role, final UUID uuid) {
        return VhostPciSession.Config.defaults(role, uuid).withHeartbeat(vhostPciHeartbeatMs, 5 * vhostPciHeartbeatMs);
    }

    private void printBanner(final List<VhostUserServer> servers) {
        final StringBuilder sb = new StringBuilder();
        for (final VhostUserServer s : servers) {
            sb.append("vhost-user-net: listening on ").append(s.socketPath() != null ? s.socketPath() : s.port().name())
                .append('\n');
        }
        if (peerSocketPath != null) {
            sb.append("vhost-user-net: peer mode: frames sent by one guest are received by the other\n");
        }
        sb.append("Attach a QEMU guest to each socket with, for example:\n");
        int n = 0;
        for (final VhostUserServer s : servers) {
            final String path = s.socketPath() != null ? s.socketPath().toString() : "<connected fd>";
            sb.append(String.format("  qemu-system-x86_64 -m 1G -object memory-backend-memfd,id=mem,size=1G,share=on"
                + " -numa node,memdev=mem -chardev socket,id=vu%d,path=%s -netdev vhost-user,id=net%d,chardev=vu%d"
                + " -device virtio-net-pci,netdev=net%d,mac=52:54:00:12:34:%02x ...%n", n, path, n, n, n, 0x56 + n));
            n++;
        }
        out.print(sb);
        out.flush();
    }
}
