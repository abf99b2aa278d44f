package dev.vhostnet.e2e;

import java.nio.file.Path;

/**
 * A vhost-user back-end serving two sockets whose guests are joined to each other ("peer
 * mode"): every frame one guest transmits is received by the other. Implemented by our back-end
 * ({@link BackendProcess}) and by a DPDK reference ({@link DpdkVhostBackendProcess}).
 */
public interface PeerModeBackend extends AutoCloseable {
    /** Socket for the first guest; already listening when the back-end has been started. */
    Path socketA();

    /** Socket for the second guest. */
    Path socketB();

    /** The back-end's combined stdout/stderr. */
    Path logFile();

    /** Stops the back-end and waits for it; never throws. */
    @Override
    void close();
}
