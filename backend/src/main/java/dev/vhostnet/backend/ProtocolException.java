package dev.vhostnet.backend;

/** A front-end message that cannot be honoured: bad size, bad index, wrong fd count, not negotiated. */
public final class ProtocolException extends Exception {
    public ProtocolException(final String message) {
        super(message);
    }
}
