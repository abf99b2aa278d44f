package dev.vhostnet.e2e;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Our back-end under test, {@code dev.vhostnet.backend.Main}, in its own JVM (so a crash or a
 * System.exit cannot take the test JVM down) serving two sockets in peer mode.
 */
public final class BackendProcess implements PeerModeBackend {
    public static final String MAIN_CLASS = "dev.vhostnet.backend.Main";
    private static final Duration STARTUP_TIMEOUT = Duration.ofSeconds(30);

    private final Path socketA;
    private final Path socketB;
    private final ChildProcess process;

    private BackendProcess(Path socketA, Path socketB, ChildProcess process) {
        this.socketA = socketA;
        this.socketB = socketB;
        this.process = process;
    }

    /**
     * Starts the back-end with {@code --socket-path A --peer-socket-path B} plus {@code extraArgs},
     * and returns once both sockets exist.
     */
    public static BackendProcess start(Path socketDir, Path logDir, List<String> jvmArgs, List<String> extraArgs)
            throws IOException, InterruptedException {
        Path a = socketDir.resolve("peer-a.sock");
        Path b = socketDir.resolve("peer-b.sock");
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(testClassPath());
        cmd.add(MAIN_CLASS);
        cmd.addAll(List.of("--socket-path", a.toString(), "--peer-socket-path", b.toString()));
        cmd.addAll(extraArgs);

        ChildProcess process = ChildProcess.start("backend", cmd, logDir.resolve("backend.log"));
        try {
            SocketFiles.awaitAll(List.of(a, b), process, STARTUP_TIMEOUT);
        } catch (IOException | InterruptedException | RuntimeException e) {
            process.close();
            throw e;
        }
        return new BackendProcess(a, b, process);
    }

    /**
     * The class path the tests run with. Surefire may hide it behind a manifest-only jar in
     * java.class.path; it publishes the real one as surefire.test.class.path.
     */
    static String testClassPath() {
        return System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
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

    /**
     * Stops the back-end (SIGTERM) and returns the per-queue counters it printed on the way out.
     * The process is closed afterwards either way; calling {@link #close()} again is harmless.
     */
    public BackendStats stopAndReadStats() throws IOException {
        process.close();
        return BackendStats.parse(logFile());
    }

    @Override
    public void close() {
        process.close(); // SIGTERM: the back-end's shutdown hook gets to remove its sockets
    }
}
