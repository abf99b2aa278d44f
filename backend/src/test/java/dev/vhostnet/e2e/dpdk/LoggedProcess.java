package dev.vhostnet.e2e.dpdk;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * A child process whose merged stdout/stderr is copied, line by line, to a log file and to a listener.
 *
 * <p>Reading through a pipe (rather than tailing the log file) lets the listener see each line the
 * moment it is written, which is what the stats parsers need for timing. Every live child is also
 * known to {@link ShutdownCleanup} so that an interrupted benchmark leaves no busy pollers behind.
 */
public final class LoggedProcess implements AutoCloseable {
    private static final int TAIL_LINES = 40;
    private final String name;
    private final List<String> command;
    private final Path log;
    private final Process process;
    private final Thread pump;
    private final Deque<String> tail = new ArrayDeque<>();

    private LoggedProcess(String name, List<String> command, Path log, Process process, Consumer<String> listener) {
        this.name = name;
        this.command = List.copyOf(command);
        this.log = log;
        this.process = process;
        this.pump = new Thread(() -> pump(listener), "log-" + name);
        this.pump.setDaemon(true);
        this.pump.start();
    }

    public static LoggedProcess start(String name, List<String> command, Path log, Consumer<String> listener)
            throws IOException {
        Files.createDirectories(log.getParent());
        Files.writeString(log, "# " + String.join(" ", command) + System.lineSeparator());
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        ShutdownCleanup.add(process);
        return new LoggedProcess(name, command, log, process, listener);
    }

    private void pump(Consumer<String> listener) {
        try (BufferedReader in = new BufferedReader(
                     new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
             BufferedWriter out = Files.newBufferedWriter(log, StandardCharsets.UTF_8,
                     java.nio.file.StandardOpenOption.APPEND)) {
            String line;
            while ((line = in.readLine()) != null) {
                out.write(line);
                out.newLine();
                out.flush();
                remember(line);
                listener.accept(line);
            }
        } catch (IOException e) {
            remember("[log pump failed: " + e + "]");
        }
    }

    private void remember(String line) {
        synchronized (tail) {
            if (tail.size() == TAIL_LINES) {
                tail.removeFirst();
            }
            tail.addLast(line);
        }
    }

    public String name() {
        return name;
    }

    public List<String> command() {
        return command;
    }

    public Path log() {
        return log;
    }

    public long pid() {
        return process.pid();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** The last lines the process wrote, for failure messages. */
    public String tail() {
        synchronized (tail) {
            return String.join(System.lineSeparator(), new ArrayList<>(tail));
        }
    }

    /** Sends a POSIX signal by name ("INT", "TERM"); Process itself can only send TERM and KILL. */
    public void signal(String signal) {
        if (!process.isAlive()) {
            return;
        }
        try {
            Process kill = new ProcessBuilder("kill", "-s", signal, Long.toString(process.pid()))
                    .redirectErrorStream(true).start();
            kill.getInputStream().readAllBytes();
            kill.waitFor(5, TimeUnit.SECONDS);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Asks the process to exit with {@code signal} (null means SIGTERM via ProcessHandle.destroy), waits up to
     * {@code grace}, then kills it. Returns the exit code. Waits for the log pump so the output is complete.
     */
    public int stop(String signal, Duration grace) {
        try {
            if (process.isAlive()) {
                if (signal == null) {
                    // SIGTERM through the handle: Process.destroy() would also close our end of the
                    // output pipe, and the last lines (a back-end's exit counters) would be lost.
                    process.toHandle().destroy();
                } else {
                    signal(signal);
                }
                if (!process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                    remember("[did not exit within " + grace + " of SIG" + (signal == null ? "TERM" : signal)
                            + "; killed]");
                    process.destroyForcibly();
                    process.waitFor(10, TimeUnit.SECONDS);
                }
            }
            pump.join(5_000);
            int exit = process.isAlive() ? -1 : process.exitValue();
            appendToLog("# stopped with SIG" + (signal == null ? "TERM" : signal) + ", exit code " + exit);
            return exit;
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
            return -1;
        } finally {
            if (!process.isAlive()) {
                ShutdownCleanup.remove(process);
            }
        }
    }

    /** A harness note at the end of the log, once the pump has finished writing. */
    private void appendToLog(String note) {
        try {
            Files.writeString(log, note + System.lineSeparator(), StandardCharsets.UTF_8,
                    java.nio.file.StandardOpenOption.APPEND);
        } catch (IOException e) {
            remember("[could not append to log: " + e + "]");
        }
    }

    /** Kills the process if it is still running; safe to call after {@link #stop}. */
    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroyForcibly();
            try {
                process.waitFor(10, TimeUnit.SECONDS);
                pump.join(2_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        try {
            process.getOutputStream().close();
        } catch (IOException ignored) {
            // the pipe is already gone with the process
        }
        ShutdownCleanup.remove(process);
    }
}
