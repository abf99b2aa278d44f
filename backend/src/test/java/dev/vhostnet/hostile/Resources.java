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
record Resources(long sockets, long eventfds, long memfds, long mappings, long threads) {

    static Resources now() {
        long sockets = 0;
        long eventfds = 0;
        long memfds = 0;
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
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
        try (Stream<String> lines = Files.lines(Path.of("/proc/self/maps"))) {
            mappings = lines.filter(l -> l.contains("/memfd:")).count();
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
        return new Resources(sockets, eventfds, memfds, mappings, Thread.activeCount());
    }

    private static String target(final Path fd) {
        try {
            return Files.readSymbolicLink(fd).toString();
        } catch (final IOException e) {
            return ""; // the directory stream's own fd, closed meanwhile
        }
    }

    boolean noMoreThan(final Resources limit) {
        return sockets <= limit.sockets && eventfds <= limit.eventfds && memfds <= limit.memfds
            && mappings <= limit.mappings && threads <= limit.threads;
    }

    /** Wait (the back-end releases a connection on its own thread) until no resource exceeds this snapshot. */
    void awaitNoMoreThan(final String after) {
        Await.until("resources back to " + this + " after " + after, Duration.ofSeconds(5),
            () -> now().noMoreThan(this), () -> now().toString());
    }
}
