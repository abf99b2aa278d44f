package dev.vhostnet.e2e;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Comparator;
import java.util.stream.Stream;

/** Per-run directories for logs and sockets, and their removal. */
public final class E2eDirs {
    /** sun_path holds 108 bytes including the NUL; stay well below it. */
    private static final int MAX_SOCKET_PATH = 100;

    private E2eDirs() {
    }

    /** A fresh directory for one test run's console and back-end logs: target/e2e-logs/NAME-TIME. */
    public static Path newLogDir(String name) throws IOException {
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        String unique = name + "-" + stamp + "-" + E2eSettings.RUN_COUNTER.incrementAndGet();
        Path dir = E2eSettings.targetDir().resolve("e2e-logs").resolve(unique);
        return Files.createDirectories(dir);
    }

    /**
     * A fresh directory for vhost-user sockets. Prefers target/ (private to this worktree) but
     * falls back to the system temp dir when that path would make socket paths too long.
     */
    public static Path newSocketDir(String name) throws IOException {
        Path parent = Files.createDirectories(E2eSettings.targetDir().resolve("e2e-sock"));
        Path dir = Files.createTempDirectory(parent, name + "-");
        if (dir.resolve("peer-b.sock").toString().length() > MAX_SOCKET_PATH) {
            Files.delete(dir);
            dir = Files.createTempDirectory("vhnet-" + name + "-");
        }
        return dir;
    }

    /** Removes {@code dir} and everything below it; best effort, never throws. */
    public static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            // Leftovers live in per-run directories with unique names; they harm no later run.
        }
    }
}
