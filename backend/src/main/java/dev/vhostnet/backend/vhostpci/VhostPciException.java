package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.spec.vhostpci.VhostPci;

import java.io.IOException;

/**
 * The vhost-pci connection failed or was refused. {@link #reason()} is the ACK reason code when the failure is
 * a refusal carried by an ACK (e.g. {@link VhostPci#R_VERSION_UNSUPPORTED}), else {@link VhostPci#R_NONE}.
 */
public final class VhostPciException extends IOException {
    private final long reason;

    public VhostPciException(final String message) {
        this(message, VhostPci.R_NONE);
    }

    public VhostPciException(final String message, final long reason) {
        super(message);
        this.reason = reason;
    }

    public long reason() {
        return reason;
    }
}
