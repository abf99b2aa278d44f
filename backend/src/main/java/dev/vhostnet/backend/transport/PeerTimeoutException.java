package dev.vhostnet.backend.transport;

import java.io.IOException;

/** The peer went silent in the middle of a message, or stopped reading what we send: the connection is cut. */
public final class PeerTimeoutException extends IOException {
    public PeerTimeoutException(final String message) {
        super(message);
    }
}
