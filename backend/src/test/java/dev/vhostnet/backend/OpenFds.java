package dev.vhostnet.backend;

import dev.vhostnet.frontend.Await;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;

/** Open file descriptors of this process (front-end and back-end alike, as both run in the test JVM). */
public final class OpenFds {
    private OpenFds() {
    }

    public static long count() {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Wait until the count is back to {@code baseline}: the back-end closes a connection's fds on its own
     * thread, shortly after the front-end sees the effect. A leak shows as a timeout with the excess.
     */
    public static void awaitBackTo(final long baseline, final String what) {
        Await.until(what + ": open fds back to " + baseline, Duration.ofSeconds(5), () -> count() <= baseline,
            () -> count() + " open (" + (count() - baseline) + " more)");
    }
}
