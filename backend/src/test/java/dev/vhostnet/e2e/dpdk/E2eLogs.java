package dev.vhostnet.e2e.dpdk;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Where child-process logs go: {@code target/e2e-logs/} relative to the working directory (the module
 * directory under Surefire), or the directory named by the {@code e2e.logDir} system property.
 */
public final class E2eLogs {
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static final DateTimeFormatter STAMP = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss");

    private E2eLogs() {
    }

    public static Path dir() {
        return Path.of(System.getProperty("e2e.logDir", "target/e2e-logs")).toAbsolutePath();
    }

    /** A fresh, not yet existing log file whose name sorts by start time and says which process wrote it. */
    public static Path newLogFile(String role) {
        try {
            Path dir = Files.createDirectories(dir());
            String name = LocalDateTime.now().format(STAMP) + "-" + SEQ.incrementAndGet() + "-" + role + ".log";
            return dir.resolve(name);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
