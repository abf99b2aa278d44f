package dev.vhostnet.hostile;

import dev.vhostnet.frontend.Await;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;

/**
 * What a connection can make the process hold, counted by kind: sockets, eventfds, memfds (open fds, from
 * /proc/self/fd), memfd mappings (/proc/self/maps) and live threads. Jar files the JVM opens lazily while it
 * loads classes are not counted, so a comparison with an earlier snapshot shows leaks only.
 */
public record Resources(long sockets, long eventfds, long memfds, long mappings, long threads) {

    public static Resources now() {
        return of(Path.of("/proc/self"), Thread.activeCount());
    }

    /**
     * Another process's (a back-end in a child JVM): threads are its OS threads but the JIT compiler's, which
     * the JVM starts and stops as its compile queue grows and shrinks.
     */
    public static Resources of(final long pid) {
        final Path proc = Path.of("/proc/" + pid);
        long threads = 0;
        try (Stream<Path> tasks = Files.list(proc.resolve("task"))) {
            for (final Path task : (Iterable<Path>) tasks::iterator) {
                final String name = comm(task);
                if (!name.startsWith("C1 CompilerThre") && !name.startsWith("C2 CompilerThre")) {
                    threads++;
                }
            }
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
        return of(proc, threads);
    }

    private static String comm(final Path task) {
        try {
            return Files.readString(task.resolve("comm")).trim();
        } catch (final IOException e) {
            return ""; // the thread ended meanwhile
        }
    }

    /** All open fds of process {@code pid}, whatever they are. */
    public static long openFds(final long pid) {
        return count(Path.of("/proc/" + pid + "/fd"));
    }

    private static long count(final Path dir) {
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.count();
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Resources of(final Path proc, final long threads) {
        long sockets = 0;
        long eventfds = 0;
        long memfds = 0;
        try (Stream<Path> fds = Files.list(proc.resolve("fd"))) {
            for (final Path fd : (Iterable<Path>) fds::iterator) {
                final String target = target(fd);
                if (target.startsWith("socket:")) {
                    sockets++;
                } else if (target.contains("eventfd")) {
                    eventfds++;
                } else if (target.startsWith("/memfd:")) {
                    memfds++;
                }
            }
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
        final long mappings;
        try (Stream<String> lines = Files.lines(proc.resolve("maps"))) {
            mappings = lines.filter(l -> l.contains("/memfd:")).count();
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
        return new Resources(sockets, eventfds, memfds, mappings, threads);
    }

    private static String target(final Path fd) {
        try {
            return Files.readSymbolicLink(fd).toString();
        } catch (final IOException e) {
            return ""; // the directory stream's own fd, closed meanwhile
        }
    }

    public boolean noMoreThan(final Resources limit) {
        return sockets <= limit.sockets && eventfds <= limit.eventfds && memfds <= limit.memfds
            && mappings <= limit.mappings && threads <= limit.threads;
    }

    /** Wait (the back-end releases a connection on its own thread) until no resource exceeds this snapshot. */
    public void awaitNoMoreThan(final String after) {
        Await.until("resources back to " + this + " after " + after, Duration.ofSeconds(5),
            () -> now().noMoreThan(this), () -> now().toString());
    }
}
