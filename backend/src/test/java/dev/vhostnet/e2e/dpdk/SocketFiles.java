package dev.vhostnet.e2e.dpdk;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import java.util.stream.Stream;

/** A private temporary directory holding the two vhost-user sockets of one loop. */
public final class SocketFiles implements AutoCloseable {
    private final Path dir;
    private final Runnable deletion = this::close;

    private SocketFiles(Path dir) {
        this.dir = dir;
        ShutdownCleanup.add(deletion);
    }

    public static SocketFiles create() throws IOException {
        // Short prefix: a unix socket path must fit in 108 bytes.
        return new SocketFiles(Files.createTempDirectory("vhn-"));
    }

    public Path a() {
        return dir.resolve("a.sock");
    }

    public Path b() {
        return dir.resolve("b.sock");
    }

    /** Waits until both socket files exist, failing early if the server process dies. */
    public void awaitBoth(Duration timeout, BooleanSupplier serverAlive, Supplier<String> context)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!(Files.exists(a()) && Files.exists(b()))) {
            if (!serverAlive.getAsBoolean()) {
                throw new IllegalStateException("back-end exited before creating its sockets"
                        + System.lineSeparator() + context.get());
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("sockets " + a() + ", " + b() + " not created within " + timeout
                        + System.lineSeparator() + context.get());
            }
            Thread.sleep(50);
        }
    }

    @Override
    public void close() {
        ShutdownCleanup.remove(deletion);
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
