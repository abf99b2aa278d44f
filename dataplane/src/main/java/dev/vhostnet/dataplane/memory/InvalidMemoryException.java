package dev.vhostnet.dataplane.memory;

/** A memory table or region the front-end sent that cannot be used as described. */
public final class InvalidMemoryException extends RuntimeException {
    public InvalidMemoryException(final String message) {
        super(message);
    }
}
