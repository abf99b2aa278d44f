package dev.vhostnet.backend;

import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.spec.VirtioFeature;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A front-end connection driven message by message, for protocol tests: guest memory, and (after
 * {@link #negotiated}) every offered protocol feature acked, REPLY_ACK included, so that each rejection shows
 * as a non-zero ack on a connection that stays open.
 */
final class RawSession implements AutoCloseable {
    static final long BASE_FEATURES = VirtioFeature.bit(VirtioFeature.VERSION_1)
        | VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);

    final VhostUserFrontend fe;
    final GuestMemoryImage memory;

    private RawSession(final VhostUserFrontend fe, final GuestMemoryImage memory) {
        this.fe = fe;
        this.memory = memory;
    }

    /** Connected, nothing sent. */
    static RawSession bare(final Path socket) throws IOException {
        final GuestMemoryImage memory = GuestMemoryImage.create(4);
        try {
            return new RawSession(VhostUserFrontend.connect(socket), memory);
        } catch (final IOException | RuntimeException e) {
            memory.close();
            throw e;
        }
    }

    /** SET_OWNER, all offered protocol features, VERSION_1 + PROTOCOL_FEATURES; no memory table yet. */
    static RawSession negotiated(final Path socket) throws IOException {
        final RawSession s = bare(socket);
        try {
            s.fe.setOwner();
            s.fe.getFeatures();
            s.fe.setProtocolFeatures(s.fe.getProtocolFeatures());
            s.fe.setFeatures(BASE_FEATURES);
            return s;
        } catch (final IOException | RuntimeException e) {
            s.close();
            throw e;
        }
    }

    /** The connection is still served: a GET_FEATURES round trip works. */
    boolean alive() throws IOException {
        return fe.getFeatures() != 0;
    }

    @Override
    public void close() throws IOException {
        try {
            fe.close();
        } finally {
            memory.close();
        }
    }
}
