package dev.vhostnet.e2e;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Copies a child process's output to a log file, line by line, and lets a test wait for a line
 * matching a pattern. All lines are kept, so a wait also sees lines printed before it started.
 */
public final class ConsoleLog {
    private final Path file;
    private final List<String> lines = new ArrayList<>();
    /** System.nanoTime() at which each line of {@link #lines} was read, for timings. */
    private final List<Long> arrivals = new ArrayList<>();
    private boolean ended;
    private final Thread pump;

    /** Starts a daemon thread that drains {@code output} (which must be the merged stdout/stderr). */
    public ConsoleLog(String name, InputStream output, Path file) throws IOException {
        this.file = file;
        Writer writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8);
        pump = new Thread(() -> pump(output, writer), "console-" + name);
        pump.setDaemon(true);
        pump.start();
    }

    private void pump(InputStream output, Writer writer) {
        try (writer; BufferedReader in = new BufferedReader(new InputStreamReader(output, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                // Serial consoles end lines with CRLF; terminals emit escape codes. Neither helps matching.
                String clean = line.replace("\r", "");
                writer.write(clean);
                writer.write('\n');
                writer.flush(); // the file is the post-mortem record: keep it current
                synchronized (this) {
                    lines.add(clean);
                    arrivals.add(System.nanoTime());
                    notifyAll();
                }
            }
        } catch (IOException e) {
            // The stream closes when the process dies; what was read is already logged.
        } finally {
            synchronized (this) {
                ended = true;
                notifyAll();
            }
        }
    }

    public Path file() {
        return file;
    }

    /**
     * A line that matched, with the System.nanoTime() at which it was read and its index (the
     * value of {@link #lineCount()} just before it arrived).
     */
    public record Hit(Matcher matcher, long nanoTime, int line) {
    }

    /**
     * Waits until a line matches {@code wanted} and returns the match. Gives up early, with a
     * {@link ConsoleWaitException}, when a line matches {@code fatal} (may be null) or the output
     * ends, and after {@code timeout}.
     */
    public Hit await(Pattern wanted, Pattern fatal, Duration timeout) throws InterruptedException {
        return await(wanted, fatal, timeout, 0);
    }

    /**
     * Like {@link #await(Pattern, Pattern, Duration)}, but only lines from index {@code fromLine} on
     * count (see {@link #lineCount()}): for "a new marker since X".
     */
    public Hit await(Pattern wanted, Pattern fatal, Duration timeout, int fromLine) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int scanned = fromLine;
        synchronized (this) {
            while (true) {
                for (; scanned < lines.size(); scanned++) {
                    String line = lines.get(scanned);
                    Matcher m = wanted.matcher(line);
                    if (m.find()) {
                        return new Hit(m, arrivals.get(scanned), scanned);
                    }
                    if (fatal != null && fatal.matcher(line).find()) {
                        throw new ConsoleWaitException("waiting for /" + wanted + "/ in " + file
                                + " but saw fatal line: " + line);
                    }
                }
                if (ended) {
                    throw new ConsoleWaitException("output of " + file + " ended before /" + wanted + "/ appeared");
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new ConsoleWaitException("no /" + wanted + "/ in " + file + " within " + timeout);
                }
                wait(Math.max(1, left / 1_000_000));
            }
        }
    }

    /** Lines read so far; a later {@code await(..., fromLine)} with this value sees only newer lines. */
    public synchronized int lineCount() {
        return lines.size();
    }

    /** The first line matching {@code pattern} seen so far, without waiting. */
    public synchronized Optional<String> firstMatch(Pattern pattern) {
        return lines.stream().filter(l -> pattern.matcher(l).find()).findFirst();
    }

    /** Waits (bounded) for the pump to finish, so the log file is complete after the process died. */
    public void drain(Duration timeout) {
        try {
            pump.join(timeout.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The last {@code n} lines of a log file, for failure messages; never throws. */
    public static String tail(Path file, int n) {
        try {
            List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - n), all.size()));
        } catch (IOException | UncheckedIOException e) {
            return "(cannot read " + file + ": " + e + ")";
        }
    }

    /** A wait that could not be satisfied; an AssertionError so tests report it as a failure. */
    public static final class ConsoleWaitException extends AssertionError {
        public ConsoleWaitException(String message) {
            super(message);
        }
    }
}
