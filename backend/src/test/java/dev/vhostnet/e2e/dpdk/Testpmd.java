package dev.vhostnet.e2e.dpdk;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * One dpdk-testpmd process. Builds the command line shared by both roles (no PCI, no hugepages, a
 * unique --file-prefix so concurrent instances do not collide), logs its output under
 * {@link E2eLogs#dir()}, parses its statistics, and stops it the way testpmd expects: SIGINT, after
 * which it prints final forward statistics and closes its ports.
 */
public final class Testpmd implements AutoCloseable {
    /** testpmd binary, overridable for other installations. */
    public static final String BINARY = System.getProperty("dpdk.testpmd", "dpdk-testpmd");
    /** Packets per burst; pinned because the number of packets --tx-first injects depends on it. */
    public static final int BURST = 32;
    public static final int TOTAL_MBUFS = 16384;
    public static final Duration STOP_GRACE = Duration.ofSeconds(30);

    private static final AtomicInteger SEQ = new AtomicInteger();

    private final String role;
    private final String filePrefix;
    private final LoggedProcess process;
    private final TestpmdStats stats;
    private final Runnable runtimeDirDeletion = this::deleteRuntimeDir;

    private Testpmd(String role, String filePrefix, LoggedProcess process, TestpmdStats stats) {
        this.role = role;
        this.filePrefix = filePrefix;
        this.process = process;
        this.stats = stats;
        ShutdownCleanup.add(runtimeDirDeletion);
    }

    /**
     * Starts testpmd. {@code ealArgs} are the role's cores and vdevs; {@code appArgs} come after "--".
     * Both roles print statistics every second: with --stats-period testpmd neither reads stdin nor
     * waits for a key press, so it runs until signalled.
     */
    static Testpmd start(String role, List<String> ealArgs, List<String> appArgs) throws IOException {
        String prefix = "vhn-" + role + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet();
        List<String> command = new ArrayList<>();
        // testpmd writes through stdio; on a pipe that is block-buffered and statistics would arrive
        // late and in lumps. stdbuf makes it line-buffered.
        command.addAll(List.of("stdbuf", "-oL", "-eL", BINARY));
        command.addAll(ealArgs);
        command.addAll(List.of("--no-pci", "--no-huge", "-m", "1024", "--file-prefix=" + prefix));
        command.add("--");
        command.addAll(appArgs);
        command.addAll(List.of("--forward-mode=io", "--stats-period=1", "--burst=" + BURST,
                "--total-num-mbufs=" + TOTAL_MBUFS));
        TestpmdStats stats = new TestpmdStats();
        LoggedProcess process = LoggedProcess.start(role, command, E2eLogs.newLogFile(role),
                new TestpmdOutputParser(stats));
        return new Testpmd(role, prefix, process, stats);
    }

    public String role() {
        return role;
    }

    public TestpmdStats stats() {
        return stats;
    }

    public Path log() {
        return process.log();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** Log tail plus where the full log is, for failure messages. */
    public String describe() {
        return role + " (pid " + process.pid() + ", log " + process.log() + "), last lines:"
                + System.lineSeparator() + process.tail();
    }

    /** Waits until testpmd has brought its ports up and started forwarding. */
    public void awaitForwarding(Duration timeout) throws InterruptedException {
        stats.await(role + " to start forwarding", TestpmdStats::forwardingStarted, timeout, process::isAlive,
                this::describe);
    }

    /** Waits until the periodic statistics show at least {@code packets} received on every listed port. */
    public void awaitReceived(long packets, Duration timeout, int... ports) throws InterruptedException {
        stats.await(role + " to receive " + packets + " packets on ports " + java.util.Arrays.toString(ports),
                s -> {
                    for (int port : ports) {
                        if (s.latest(port).map(PortSnapshot::rxPackets).orElse(0L) < packets) {
                            return false;
                        }
                    }
                    return true;
                }, timeout, process::isAlive, this::describe);
    }

    /** Waits until a statistics block for {@code port} is read at or after {@code nanoTime}. */
    public void awaitSnapshotAfter(int port, long nanoTime, Duration timeout) throws InterruptedException {
        stats.await(role + " statistics", s -> s.latest(port).map(p -> p.nanoTime() >= nanoTime).orElse(false),
                timeout, process::isAlive, this::describe);
    }

    /** SIGINT, wait for the final statistics and exit, kill if it hangs. Returns the exit code. */
    public int stop() {
        try {
            return process.stop("INT", STOP_GRACE);
        } finally {
            deleteRuntimeDir();
        }
    }

    @Override
    public void close() {
        process.close();
        deleteRuntimeDir();
    }

    /**
     * With --no-huge nothing lands in /dev/shm or hugetlbfs, but EAL still leaves its runtime directory
     * (config file, multi-process socket) behind; one per unique prefix would pile up.
     */
    private void deleteRuntimeDir() {
        if (process.isAlive()) {
            return;
        }
        Path dir = runtimeBase().resolve("dpdk").resolve(filePrefix);
        ShutdownCleanup.remove(runtimeDirDeletion);
        if (!Files.isDirectory(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("could not remove " + dir, e);
        }
    }

    /** EAL's rule: /var/run for root, else $XDG_RUNTIME_DIR, else /tmp. */
    private static Path runtimeBase() {
        if ("root".equals(System.getProperty("user.name"))) {
            return Path.of("/var/run");
        }
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        return Path.of(xdg != null ? xdg : "/tmp");
    }
}
