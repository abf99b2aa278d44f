package dev.vhostnet.e2e.dpdk;

import java.nio.file.Path;
import java.util.Optional;

/** A vhost-user back-end serving sockets A and B in peer mode (A's TX to B's RX and back). */
public interface VhostBackEnd extends AutoCloseable {
    String name();

    Path log();

    /**
     * Stops the back-end gracefully and returns the counters it reported, if it reported any in a
     * form this harness reads. Call after the front-end has stopped, so the counts are final.
     */
    Optional<BackEndCounters> stop();

    /** Kills the back-end if still running; always safe to call. */
    @Override
    void close();
}
