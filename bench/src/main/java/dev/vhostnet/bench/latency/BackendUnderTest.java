package dev.vhostnet.bench.latency;

import dev.vhostnet.e2e.ChildProcess;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * A peer-mode back-end in a child process serving sockets A and B: ours ({@code dev.vhostnet.backend.Main}
 * in its own JVM, started from this JVM's class path) or the reference (dpdk-testpmd with two net_vhost
 * ports in io forward mode). Both create the sockets; the benchmark connects as the front-end.
 */
public final class BackendUnderTest implements AutoCloseable {
    /** Where DPDK keeps per-prefix runtime files when run as root. */
    private static final Path DPDK_RUNTIME = Path.of("/var/run/dpdk");
    private static int sequence;

    private final String kind;
    private final Path socketA;
    private final Path socketB;
    private final ChildProcess process;
    private final String filePrefix;
    private final Path logFile;
    private final List<String> command;

    private BackendUnderTest(final String kind, final Path a, final Path b, final ChildProcess process, final String filePrefix,
                             final Path logFile, final List<String> command) {
        this.kind = kind;
        this.socketA = a;
        this.socketB = b;
        this.process = process;
        this.filePrefix = filePrefix;
        this.logFile = logFile;
        this.command = command;
    }

    /** Our back-end: {@code java JVM_ARGS -cp CP dev.vhostnet.backend.Main --socket-path A --peer-socket-path B ARGS}. */
    public static BackendUnderTest ours(final Path dir, final Path logDir, final List<String> jvmArgs, final List<String> args)
            throws IOException, InterruptedException {
        final Path a = dir.resolve("a.sock");
        final Path b = dir.resolve("b.sock");
        final List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add("dev.vhostnet.backend.Main");
        cmd.addAll(List.of("--socket-path", a.toString(), "--peer-socket-path", b.toString()));
        cmd.addAll(args);
        return start("ours", a, b, cmd, null, logDir);
    }

    /**
     * The reference: {@code dpdk-testpmd -l 0,1 --main-lcore 1} (forwarding lcore 0) with two vhost-user
     * server ports and io forwarding. {@code --stats-period} keeps it non-interactive.
     */
    public static BackendUnderTest dpdk(final Path dir, final Path logDir, final String testpmd)
            throws IOException, InterruptedException {
        final Path a = dir.resolve("a.sock");
        final Path b = dir.resolve("b.sock");
        final String prefix = "vhnet-lat-" + ProcessHandle.current().pid() + "-" + (++sequence);
        final List<String> cmd = List.of("stdbuf", "-oL", testpmd,
            "-l", "0,1", "--main-lcore", "1", "--no-pci", "--no-huge", "-m", "1024", "--file-prefix=" + prefix,
            "--vdev", "net_vhost0,iface=" + a + ",queues=1",
            "--vdev", "net_vhost1,iface=" + b + ",queues=1",
            "--", "--forward-mode=io", "--stats-period=60", "--total-num-mbufs=16384");
        return start("dpdk", a, b, cmd, prefix, logDir);
    }

    private static BackendUnderTest start(final String kind, final Path a, final Path b, final List<String> cmd,
                                          final String prefix, final Path logDir) throws IOException, InterruptedException {
        Files.createDirectories(logDir);
        Files.deleteIfExists(a);
        Files.deleteIfExists(b);
        final Path log = logDir.resolve(kind + "-" + System.currentTimeMillis() + ".log");
        final ChildProcess p = ChildProcess.start(kind, cmd, log);
        final BackendUnderTest backend = new BackendUnderTest(kind, a, b, p, prefix, log, cmd);
        try {
            final long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!(Files.exists(a) && Files.exists(b))) {
                if (!p.isAlive()) {
                    throw new IOException(kind + " back-end exited before creating its sockets; log: " + log);
                }
                if (System.nanoTime() > deadline) {
                    throw new IOException(kind + " back-end did not create its sockets within 60 s; log: " + log);
                }
                Thread.sleep(20);
            }
            Thread.sleep(100); // the file appears at bind(), listen() follows
        } catch (final IOException | InterruptedException | RuntimeException e) {
            backend.close();
            throw e;
        }
        return backend;
    }

    public String kind() {
        return kind;
    }

    public Path socketA() {
        return socketA;
    }

    public Path socketB() {
        return socketB;
    }

    public long pid() {
        return process.pid();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    public Path logFile() {
        return logFile;
    }

    public List<String> command() {
        return command;
    }

    @Override
    public void close() {
        process.close();
        if (filePrefix != null) {
            deleteTree(DPDK_RUNTIME.resolve(filePrefix));
        }
    }

    private static void deleteTree(final Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> s = Files.walk(root)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (final IOException ignored) {
                    // best effort
                }
            });
        } catch (final IOException ignored) {
            // best effort
        }
    }
}
