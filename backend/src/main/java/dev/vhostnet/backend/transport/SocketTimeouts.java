package dev.vhostnet.backend.transport;

import java.time.Duration;

/**
 * How long a peer may keep one connection waiting, so that a silent or stalled peer costs only that connection.
 * There is no bound on the silence between messages: QEMU may legitimately say nothing for the lifetime of a
 * guest once the device runs.
 *
 * @param midMessage from the first byte of a message to its last: a peer that stops in the middle of one is cut off
 * @param send       for one message to fit into the socket: a peer that sends requests without ever reading the
 *                   replies fills our send buffer; it is then cut off instead of holding the connection's thread
 */
public record SocketTimeouts(Duration midMessage, Duration send) {
    /** The default for both: far beyond anything a working front-end or peer needs. */
    public static final SocketTimeouts DEFAULTS = new SocketTimeouts(Duration.ofSeconds(10), Duration.ofSeconds(10));

    public SocketTimeouts {
        if (midMessage.isNegative() || midMessage.isZero() || send.isNegative() || send.isZero()) {
            throw new IllegalArgumentException("time-outs must be positive: " + midMessage + ", " + send);
        }
    }

    public static SocketTimeouts of(final Duration both) {
        return new SocketTimeouts(both, both);
    }
}
