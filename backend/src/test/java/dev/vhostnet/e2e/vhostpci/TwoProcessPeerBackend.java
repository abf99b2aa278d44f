package dev.vhostnet.e2e.vhostpci;

import dev.vhostnet.e2e.BackendProcess;
import dev.vhostnet.e2e.ChildProcess;
import dev.vhostnet.e2e.ConsoleLog;
import dev.vhostnet.e2e.PeerModeBackend;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.regex.Pattern;

/**
 * vhost-pci peer mode across processes as management software runs it: one back-end process per guest.
 * Socket A belongs to the device side ({@code --vhost-pci-listen}), socket B to the client side
 * ({@code --vhost-pci-connect}); the two join over the vhost-pci socket. Either process can be killed with
 * SIGKILL and restarted with the same sockets.
 *
 * <p>Starting a process returns only once the pair is joined again (the client's vhost-pci session with the
 * current device side is open), because until then each back-end drops what its guest sends (no peer), and a
 * front-end that injects a fixed number of frames once (testpmd {@code --tx-first}) would lose them for good.
 * After a device-side restart that can take a while: the client reconnects on its back-off (1 s, doubling, at
 * most 30 s; VHOST-PCI.md §6), so the rejoin comes at its next attempt.
 */
public final class TwoProcessPeerBackend implements PeerModeBackend {
    private static final Duration STARTUP_TIMEOUT = Duration.ofSeconds(60);
    /** Longest back-off of the client (30 s) plus a loaded machine's slack. */
    private static final Duration JOIN_TIMEOUT = Duration.ofSeconds(75);

    private final Path socketDir;
    private final Path logDir;
    private final List<String> extraArgs;
    private final Path socketA;
    private final Path socketB;
    private final Path pciSocket;
    private ChildProcess device;
    private ChildProcess client;
    /** The current device side's vhost-pci UUID (a new one per process, as a restarted back-end gets). */
    private UUID deviceUuid;
    private int starts;

    private TwoProcessPeerBackend(Path socketDir, Path logDir, List<String> extraArgs) {
        this.socketDir = socketDir;
        this.logDir = logDir;
        this.extraArgs = List.copyOf(extraArgs);
        this.socketA = socketDir.resolve("peer-a.sock");
        this.socketB = socketDir.resolve("peer-b.sock");
        this.pciSocket = socketDir.resolve("pci.sock");
    }

    /** Starts both back-ends and returns once both vhost-user sockets exist. */
    public static TwoProcessPeerBackend start(Path socketDir, Path logDir, List<String> extraArgs)
            throws IOException, InterruptedException {
        TwoProcessPeerBackend b = new TwoProcessPeerBackend(socketDir, logDir, extraArgs);
        try {
            b.startDevice();
            b.startClient();
        } catch (IOException | InterruptedException | RuntimeException e) {
            b.close();
            throw e;
        }
        return b;
    }

    /** Starts the device side; if a client runs, returns once it has joined the new device side. */
    public void startDevice() throws IOException, InterruptedException {
        deviceUuid = UUID.randomUUID();
        device = launch("device", socketA, List.of("--vhost-pci-listen", pciSocket.toString(),
                "--vhost-pci-uuid", deviceUuid.toString()));
        if (clientAlive()) {
            awaitJoined();
        }
    }

    /** Starts the client side; if a device side runs, returns once the new client has joined it. */
    public void startClient() throws IOException, InterruptedException {
        client = launch("client", socketB, List.of("--vhost-pci-connect", pciSocket.toString(),
                "--vhost-pci-uuid", UUID.randomUUID().toString()));
        if (deviceAlive()) {
            awaitJoined();
        }
    }

    /**
     * Waits until the current client's session with the current device side is open (its log says so right
     * after the session field is set, so from then on every front-end request it serves sees the session and
     * delegates the rings before it is acknowledged).
     */
    private void awaitJoined() throws InterruptedException {
        Pattern joined = Pattern.compile("vhost-pci: connected to device side " + deviceUuid);
        try {
            client.console().await(joined, null, JOIN_TIMEOUT);
        } catch (AssertionError e) {
            throw new AssertionError("client did not join device side " + deviceUuid + " (device alive "
                    + deviceAlive() + "): " + e.getMessage() + "\nclient:\n" + ConsoleLog.tail(clientLog(), 20)
                    + "\ndevice:\n" + ConsoleLog.tail(logFile(), 20), e);
        }
    }

    /** SIGKILL: no shutdown hook, no hand-back; the survivor sees the vhost-pci socket hang up. */
    public void killDevice() throws InterruptedException {
        kill9(device);
    }

    public void killClient() throws InterruptedException {
        kill9(client);
    }

    public boolean deviceAlive() {
        return device != null && device.isAlive();
    }

    public boolean clientAlive() {
        return client != null && client.isAlive();
    }

    public Path clientLog() {
        return client.console().file();
    }

    private static void kill9(ChildProcess p) throws InterruptedException {
        ProcessHandle.of(p.pid()).ifPresent(ProcessHandle::destroyForcibly);
        p.awaitExit(Duration.ofSeconds(10));
        p.close(); // reaps and logs; already dead
    }

    private ChildProcess launch(String role, Path socket, List<String> roleArgs)
            throws IOException, InterruptedException {
        Files.deleteIfExists(socket); // left behind by a SIGKILLed predecessor
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-cp");
        cmd.add(System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")));
        cmd.add(BackendProcess.MAIN_CLASS);
        cmd.addAll(List.of("--socket-path", socket.toString()));
        cmd.addAll(roleArgs);
        cmd.addAll(extraArgs);
        ChildProcess p = ChildProcess.start("backend-" + role, cmd,
                logDir.resolve("backend-" + role + "-" + (starts++) + ".log"));
        long deadline = System.nanoTime() + STARTUP_TIMEOUT.toNanos();
        while (!Files.exists(socket)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.close();
                throw new IOException(p + " did not create " + socket + ":\n"
                        + ConsoleLog.tail(p.console().file(), 40));
            }
            Thread.sleep(50);
        }
        return p;
    }

    @Override
    public Path socketA() {
        return socketA;
    }

    @Override
    public Path socketB() {
        return socketB;
    }

    /** The device side's log (it does the forwarding); see {@link #clientLog()} for the other. */
    @Override
    public Path logFile() {
        return device.console().file();
    }

    public Path socketDir() {
        return socketDir;
    }

    @Override
    public void close() {
        if (client != null) {
            client.close();
        }
        if (device != null) {
            device.close();
        }
    }
}
