package dev.vhostnet.e2e;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/** Waiting for a server process to create its Unix socket files. */
final class SocketFiles {
    private static final long POLL_MILLIS = 50;

    private SocketFiles() {
    }

    /**
     * Polls until every path exists, failing early if {@code server} exits. A socket file appears
     * at bind(), a moment before listen(); QEMU takes far longer than that gap to start up, so
     * the file is a good enough readiness signal. Probing with a connection is avoided because
     * the back-end would take the probe for a front-end.
     */
    static void awaitAll(List<Path> sockets, ChildProcess server, Duration timeout)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!sockets.stream().allMatch(Files::exists)) {
            if (!server.isAlive()) {
                server.console().drain(Duration.ofSeconds(2));
                throw new IOException(server + " exited with " + server.exitValue() + " before creating "
                        + sockets + ":\n" + ConsoleLog.tail(server.console().file(), 40));
            }
            if (System.nanoTime() > deadline) {
                throw new IOException(server + " did not create " + sockets + " within " + timeout + ":\n"
                        + ConsoleLog.tail(server.console().file(), 40));
            }
            Thread.sleep(POLL_MILLIS);
        }
    }
}
