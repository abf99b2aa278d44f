package dev.vhostnet.e2e;

import java.io.File;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * A child process of the harness with its merged output in a {@link ConsoleLog}. Every instance
 * is also registered with a JVM shutdown hook, so a test JVM that is killed (e.g. by a surefire
 * timeout) does not leave QEMU or testpmd running.
 */
public final class ChildProcess implements AutoCloseable {
    private static final Set<ChildProcess> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> LIVE.forEach(c -> c.kill(Duration.ofSeconds(2))),
                "e2e-child-reaper"));
    }

    private final String name;
    private final Process process;
    private final ConsoleLog console;

    private ChildProcess(String name, Process process, ConsoleLog console) {
        this.name = name;
        this.process = process;
        this.console = console;
    }

    /** Starts {@code command} with stdin from /dev/null (EOF) and stdout+stderr into {@code logFile}. */
    public static ChildProcess start(String name, List<String> command, Path logFile) throws IOException {
        ProcessBuilder builder = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        Process process = builder.start();
        ChildProcess child = new ChildProcess(name, process, new ConsoleLog(name, process.getInputStream(), logFile));
        LIVE.add(child);
        return child;
    }

    public String name() {
        return name;
    }

    public ConsoleLog console() {
        return console;
    }

    public long pid() {
        return process.pid();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** Waits up to {@code timeout} for the process to exit by itself; true if it did. */
    public boolean awaitExit(Duration timeout) throws InterruptedException {
        return process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    public int exitValue() {
        return process.exitValue();
    }

    /**
     * SIGTERM first (lets testpmd and the back-end clean up their sockets), SIGKILL after
     * {@code grace}; descendants are killed too in case a wrapper forked.
     */
    public void kill(Duration grace) {
        if (!LIVE.remove(this)) {
            return; // already killed
        }
        List<ProcessHandle> descendants = process.descendants().toList();
        long start = System.nanoTime();
        String how = "exited by itself";
        try {
            if (process.isAlive()) {
                // Through the handle: Process.destroy() also closes our end of the output pipe,
                // so the child's last words (and cleanup writes) would die of SIGPIPE.
                process.toHandle().destroy();
                how = "stopped by SIGTERM";
                if (!process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                    process.destroyForcibly();
                    how = "ignored SIGTERM for " + grace + ", killed";
                    process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS);
                }
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        descendants.stream().filter(ProcessHandle::isAlive).forEach(ProcessHandle::destroyForcibly);
        console.drain(Duration.ofSeconds(2));
        // One line per child on the test's stdout: shows slow or unclean shutdowns at a glance.
        System.out.printf("e2e: %s %s (exit %s, %d ms)%n", this, how,
                process.isAlive() ? "?" : String.valueOf(process.exitValue()),
                (System.nanoTime() - start) / 1_000_000);
    }

    /**
     * SIGKILL at once: no shutdown hook, no cleanup, as if the process had crashed. Waits (bounded)
     * for the exit; true if the process is gone.
     */
    public boolean killNow(Duration timeout) throws InterruptedException {
        if (!LIVE.remove(this)) {
            return !process.isAlive();
        }
        process.destroyForcibly();
        boolean gone = process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
        console.drain(Duration.ofSeconds(2));
        System.out.printf("e2e: %s killed by SIGKILL (exited: %s)%n", this, gone);
        return gone;
    }

    @Override
    public void close() {
        kill(Duration.ofSeconds(10));
    }

    @Override
    public String toString() {
        return name + "(pid " + process.pid() + ")";
    }
}
