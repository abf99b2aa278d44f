package dev.vhostnet.e2e;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * Reference back-end: dpdk-testpmd with two vhost-user ports (servers) and io forwarding, which
 * passes every frame from one port to the other unchanged: exactly peer mode. Used to check the
 * harness independently of our back-end.
 */
public final class DpdkVhostBackendProcess implements PeerModeBackend {
    private static final Duration STARTUP_TIMEOUT = Duration.ofSeconds(60);
    /** Where DPDK keeps per-prefix runtime files when run as root (non-root: $XDG_RUNTIME_DIR/dpdk). */
    private static final Path DPDK_RUNTIME = Path.of("/var/run/dpdk");

    private final Path socketA;
    private final Path socketB;
    private final String filePrefix;
    private final ChildProcess process;

    private DpdkVhostBackendProcess(Path socketA, Path socketB, String filePrefix, ChildProcess process) {
        this.socketA = socketA;
        this.socketB = socketB;
        this.filePrefix = filePrefix;
        this.process = process;
    }

    /** Starts testpmd and returns once both vhost-user sockets exist. */
    public static DpdkVhostBackendProcess start(Path socketDir, Path logDir) throws IOException, InterruptedException {
        Path a = socketDir.resolve("peer-a.sock");
        Path b = socketDir.resolve("peer-b.sock");
        String prefix = E2eSettings.uniqueName("vhnet-e2e");
        List<String> cmd = List.of(
                // testpmd's stdout is a pipe, hence block-buffered: line-buffer it so the log is
                // current while the test runs (stats, link events).
                "stdbuf", "-oL",
                E2eSettings.testpmdBinary(),
                "-l", "0,1", "--main-lcore", "1", // lcore 0 forwards (busy-polls), lcore 1 prints stats
                "--no-pci", "--no-huge", "-m", "1024",
                "--file-prefix=" + prefix, // keeps concurrent DPDK processes on this host apart
                "--vdev", "net_vhost0,iface=" + a + ",queues=1",
                "--vdev", "net_vhost1,iface=" + b + ",queues=1",
                "--",
                "--forward-mode=io",
                // Non-interactive and periodic stats: without it testpmd waits on stdin and quits at EOF.
                "--stats-period=5");
        ChildProcess process = ChildProcess.start("testpmd", cmd, logDir.resolve("backend-testpmd.log"));
        try {
            SocketFiles.awaitAll(List.of(a, b), process, STARTUP_TIMEOUT);
        } catch (IOException | InterruptedException | RuntimeException e) {
            process.close();
            deleteRuntimeDir(prefix);
            throw e;
        }
        return new DpdkVhostBackendProcess(a, b, prefix, process);
    }

    @Override
    public Path socketA() {
        return socketA;
    }

    @Override
    public Path socketB() {
        return socketB;
    }

    @Override
    public Path logFile() {
        return process.console().file();
    }

    @Override
    public void close() {
        process.close(); // SIGTERM: testpmd stops its ports and removes the sockets
        deleteRuntimeDir(filePrefix);
    }

    /** testpmd leaves its runtime dir (~12 MB) behind; remove ours only. */
    private static void deleteRuntimeDir(String prefix) {
        E2eDirs.deleteTree(DPDK_RUNTIME.resolve(prefix));
    }
}
