package dev.vhostnet.hostile;

import dev.vhostnet.backend.NetDeviceConfig;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.VirtioDeviceStatus;
import dev.vhostnet.spec.VirtioFeature;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hostile front-end's connection: raw access to the socket plus 4 MiB of guest memory, and the two ways a
 * back-end may answer abuse: refuse the request (non-zero REPLY_ACK, connection still served) or close.
 */
final class Session implements AutoCloseable {
    static final long FEATURES = VirtioFeature.bit(VirtioFeature.VERSION_1)
        | VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);

    final VhostUserFrontend fe;
    final GuestMemoryImage memory;

    private Session(final VhostUserFrontend fe, final GuestMemoryImage memory) {
        this.fe = fe;
        this.memory = memory;
    }

    /** Connected, nothing sent. */
    static Session bare(final Path socket) throws IOException {
        final GuestMemoryImage memory = GuestMemoryImage.create(4);
        try {
            return new Session(VhostUserFrontend.connect(socket), memory);
        } catch (final IOException | RuntimeException e) {
            memory.close();
            throw e;
        }
    }

    /** SET_OWNER, every offered protocol feature (REPLY_ACK, STATUS, ...), VERSION_1 + PROTOCOL_FEATURES. */
    static Session negotiated(final Path socket) throws IOException {
        final Session s = bare(socket);
        try {
            s.fe.setOwner();
            s.fe.getFeatures();
            s.fe.setProtocolFeatures(NetDeviceConfig.OFFERED_PROTOCOL_FEATURES);
            s.fe.setFeatures(FEATURES);
            return s;
        } catch (final IOException | RuntimeException e) {
            s.close();
            throw e;
        }
    }

    /** Negotiated and the whole image as the memory table. */
    static Session withMemory(final Path socket) throws IOException {
        final Session s = negotiated(socket);
        try {
            s.fe.setMemTable(java.util.List.of(s.memory.region()));
            return s;
        } catch (final IOException | RuntimeException e) {
            s.close();
            throw e;
        }
    }

    /** The back-end refuses the request with a non-zero ack and goes on serving this connection. */
    void refused(final int request, final byte[] payload, final int... fds) throws IOException {
        assertNotEquals(0L, fe.ack(request, payload, fds), FrontendRequest.name(request) + " must be refused");
        assertTrue(alive(), "connection still served after a refused " + FrontendRequest.name(request));
    }

    /** The back-end closes the connection. */
    void closed(final String why) throws IOException {
        boolean closed;
        try {
            closed = fe.awaitClosed(Arena.WAIT);
        } catch (final java.net.SocketException e) {
            closed = true; // junixsocket already saw the peer go (reset) and shut our end
        }
        assertTrue(closed, "back-end must close the connection on " + why);
    }

    boolean alive() throws IOException {
        return fe.getFeatures() != 0;
    }

    boolean needsReset() throws IOException {
        return (fe.getStatus() & VirtioDeviceStatus.DEVICE_NEEDS_RESET) != 0;
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
