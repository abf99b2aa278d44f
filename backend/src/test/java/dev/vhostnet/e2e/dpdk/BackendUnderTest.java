package dev.vhostnet.e2e.dpdk;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Our back-end ({@value #MAIN_CLASS}) in peer mode, as a separate JVM pinned with taskset to
 * {@link CpuLayout#BACKEND_CORE} so its poller never shares a core with the front-end's. It runs from
 * this JVM's class path, so whatever the test or benchmark was built against is what gets measured.
 *
 * <p>System properties: {@code e2e.backend.jvmArgs} (extra JVM options, space separated) and
 * {@code e2e.backend.args} (extra back-end options, e.g. "--poll adaptive").
 */
public final class BackendUnderTest implements VhostBackEnd {
    public static final String MAIN_CLASS = "dev.vhostnet.backend.Main";
    private static final Duration STOP_GRACE = Duration.ofSeconds(20);

    private final LoggedProcess process;
    private final List<String> output;
    private final SocketFiles sockets;
    private volatile int exitCode = Integer.MIN_VALUE;

    private BackendUnderTest(LoggedProcess process, List<String> output, SocketFiles sockets) {
        this.process = process;
        this.output = output;
        this.sockets = sockets;
    }

    /** Starts the back-end and returns once both socket files exist. */
    public static BackendUnderTest start(SocketFiles sockets, Duration timeout, String... extraArgs)
            throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("taskset", "-c", Integer.toString(CpuLayout.BACKEND_CORE),
                Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.addAll(split(System.getProperty("e2e.backend.jvmArgs", "")));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), MAIN_CLASS,
                "--socket-path", sockets.a().toString(), "--peer-socket-path", sockets.b().toString(),
                "--stats-interval", "1",
                // DPDK's virtio_user memory (memfd_create("nohuge", 0)) cannot be sealed against shrinking.
                "--unsealed-memory", "allow"));
        command.addAll(split(System.getProperty("e2e.backend.args", "")));
        command.addAll(Arrays.asList(extraArgs));
        List<String> output = new ArrayList<>();
        LoggedProcess process = LoggedProcess.start("backend", command, E2eLogs.newLogFile("backend"), line -> {
            synchronized (output) {
                output.add(line);
            }
        });
        BackendUnderTest backend = new BackendUnderTest(process, output, sockets);
        try {
            sockets.awaitBoth(timeout, process::isAlive, backend::describe);
            return backend;
        } catch (RuntimeException | InterruptedException e) {
            backend.close();
            throw e;
        }
    }

    private static List<String> split(String args) {
        return args.isBlank() ? List.of() : Arrays.asList(args.trim().split("\\s+"));
    }

    @Override
    public String name() {
        return "vhost-user-net";
    }

    @Override
    public Path log() {
        return process.log();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    public String describe() {
        return "back-end (pid " + process.pid() + ", log " + process.log() + "), last lines:"
                + System.lineSeparator() + process.tail();
    }

    /** Everything the back-end has printed so far. */
    public List<String> output() {
        synchronized (output) {
            return List.copyOf(output);
        }
    }

    /** SIGTERM, then the counters it prints on the way out. */
    @Override
    public Optional<BackEndCounters> stop() {
        exitCode = process.stop(null, STOP_GRACE);
        return BackendCounterParser.parseFinal(output(), sockets.a(), sockets.b());
    }

    /** Exit code of the last {@link #stop}; 143 (128 + SIGTERM) is normal for a JVM ended by SIGTERM. */
    public int exitCode() {
        return exitCode;
    }

    @Override
    public void close() {
        process.close();
    }
}
