package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.transport.SocketTimeouts;
import dev.vhostnet.backend.transport.UnixMessageSocket;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import dev.vhostnet.spec.vhostpci.VhostPciMessages;
import org.newsclub.net.unix.AFUNIXSocket;

import java.io.Closeable;
import java.io.IOException;

/**
 * Framing of vhost-pci messages on a {@link UnixMessageSocket}, fds as SCM_RIGHTS attached to the first byte of
 * a message. The 32-byte header is read and checked (known type, payload within {@link VhostPci#MAX_PAYLOAD})
 * before any payload byte is read. Whether the payload is consistent with its type is left to the caller
 * ({@link VhostPciMessages#validatePayload}), because a bad request is answered with a FAIL while bad framing
 * closes the connection.
 */
public final class VhostPciChannel implements Closeable {
    private final UnixMessageSocket socket;

    public VhostPciChannel(final UnixMessageSocket socket) {
        this.socket = socket;
    }

    /** Takes the connection over from junixsocket (see {@link UnixMessageSocket#adopt(AFUNIXSocket, SocketTimeouts)}). */
    public VhostPciChannel(final AFUNIXSocket socket, final SocketTimeouts timeouts) throws IOException {
        this(UnixMessageSocket.adopt(socket, timeouts));
    }

    public VhostPciChannel(final AFUNIXSocket socket) throws IOException {
        this(socket, SocketTimeouts.DEFAULTS);
    }

    /** Read the next message, waiting for it as long as it takes. */
    public boolean receive(final VhostPciFrame frame) throws IOException {
        return receive(frame, -1);
    }

    /**
     * Read the next message into {@code frame} (whose previous untaken fds are closed first), waiting at most
     * {@code waitMillis} for its first byte ({@code < 0}: for ever); the rest must follow within the socket's
     * mid-message time-out.
     *
     * @return false at a clean end of stream between messages (the peer closed or died)
     * @throws VhostPciException when framing is lost: unknown type, payload too long, more fds than a message may
     *                           carry, or fds the kernel had to drop (their fds are closed all the same)
     * @throws IOException       end of stream or silence inside a message
     */
    public boolean receive(final VhostPciFrame frame, final long waitMillis) throws IOException {
        frame.reset();
        final byte[] bytes = frame.bytes();
        if (!socket.readStart(bytes, 0, VhostPciHeader.LENGTH, frame.fds(), waitMillis)) {
            return false;
        }
        final int header = VhostPciMessages.validateHeader(frame.buffer(), 0);
        if (header != VhostPciMessages.OK) {
            throw new VhostPciException("bad header (type " + frame.type() + ", msg_len " + frame.header().length()
                + "): " + VhostPciMessages.describe(header));
        }
        socket.readRest(bytes, VhostPciHeader.LENGTH, frame.payloadLength(), frame.fds());
        if (frame.excessFds() > 0) {
            throw new VhostPciException(VhostPci.typeName(frame.type()) + " came with more than "
                + VhostPci.MAX_FDS + " fds");
        }
        if (frame.fdsLost()) {
            throw new VhostPciException(VhostPci.typeName(frame.type())
                + " lost fds on the way (the process is out of file descriptors)");
        }
        return true;
    }

    /** Write {@code bytes[0 .. length)} as one message, with {@code fdCount} fds from {@code fds}. */
    public void send(final byte[] bytes, final int length, final int[] fds, final int fdCount) throws IOException {
        if (fdCount > VhostPci.MAX_FDS) {
            throw new IllegalArgumentException(fdCount + " fds (max " + VhostPci.MAX_FDS + ")");
        }
        socket.send(bytes, 0, length, fds, fdCount);
    }

    /** Half-close: the peer reads the end of stream after what we sent. */
    public void shutdownOutput() throws IOException {
        socket.shutdownOutput();
    }

    /** Cut the connection; safe from any thread (wakes the thread reading it). */
    @Override
    public void close() {
        socket.close();
    }
}
