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

/**
 * vhost-pci peer mode across processes as management software runs it: one back-end process per guest.
 * Socket A belongs to the device side ({@code --vhost-pci-listen}), socket B to the client side
 * ({@code --vhost-pci-connect}); the two join over the vhost-pci socket. Either process can be killed with
 * SIGKILL and restarted with the same sockets.
 */
public final class TwoProcessPeerBackend implements PeerModeBackend {
    private static final Duration STARTUP_TIMEOUT = Duration.ofSeconds(60);

    private final Path socketDir;
    private final Path logDir;
    private final List<String> extraArgs;
    private final Path socketA;
    private final Path socketB;
    private final Path pciSocket;
    private ChildProcess device;
    private ChildProcess client;
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

    public void startDevice() throws IOException, InterruptedException {
        device = launch("device", socketA, List.of("--vhost-pci-listen", pciSocket.toString()));
    }

    public void startClient() throws IOException, InterruptedException {
        client = launch("client", socketB, List.of("--vhost-pci-connect", pciSocket.toString()));
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
