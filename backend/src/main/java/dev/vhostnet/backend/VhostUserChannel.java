package dev.vhostnet.backend;

import dev.vhostnet.backend.transport.SocketTimeouts;
import dev.vhostnet.backend.transport.UnixMessageSocket;
import dev.vhostnet.spec.VhostUserHeader;
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.AFUNIXSocket;

import java.io.Closeable;
import java.io.IOException;

/**
 * Framing of vhost-user messages on a {@link UnixMessageSocket}. The header is read first and its size checked
 * before any payload byte is read, so a hostile size never makes us allocate or read past the message buffer.
 * Between messages the front-end may stay silent for ever; inside one, the socket's time-out applies.
 */
public final class VhostUserChannel implements Closeable {
    private static final int[] NO_FDS = new int[0];

    private final UnixMessageSocket socket;
    private final byte[] replyBytes = new byte[VhostUserHeader.LENGTH + VhostUserHeader.MAX_PAYLOAD];
    private final UnsafeBuffer reply = new UnsafeBuffer(replyBytes);
    private final VhostUserHeader replyHeader = new VhostUserHeader();
    private final int[] replyFd = new int[1];

    public VhostUserChannel(final UnixMessageSocket socket) {
        this.socket = socket;
        replyHeader.wrap(reply, 0);
    }

    /** Takes the connection over from junixsocket (see {@link UnixMessageSocket#adopt(AFUNIXSocket, SocketTimeouts)}). */
    public VhostUserChannel(final AFUNIXSocket socket, final SocketTimeouts timeouts) throws IOException {
        this(UnixMessageSocket.adopt(socket, timeouts));
    }

    public VhostUserChannel(final AFUNIXSocket socket) throws IOException {
        this(socket, SocketTimeouts.DEFAULTS);
    }

    /**
     * Read the next message into {@code message} (closing the fds its previous content did not hand over).
     *
     * @return false at a clean end of stream (front-end disconnected between messages)
     * @throws ProtocolException for a message too large to read (the connection must then be closed)
     * @throws IOException       the front-end went, or went silent, in the middle of a message
     */
    public boolean receive(final VhostUserMessage message) throws IOException, ProtocolException {
        message.reset();
        final byte[] bytes = message.bytes();
        if (!socket.readStart(bytes, 0, VhostUserHeader.LENGTH, message.fds(), -1)) {
            return false;
        }
        final long size = message.header().size();
        if (size > VhostUserHeader.MAX_PAYLOAD) {
            throw new ProtocolException(message.name() + " announces a " + size + "-byte payload (max "
                + VhostUserHeader.MAX_PAYLOAD + ")");
        }
        socket.readRest(bytes, VhostUserHeader.LENGTH, (int) size, message.fds());
        return true;
    }

    /** Reply buffer for a payload of {@code size} bytes at offset {@link VhostUserHeader#LENGTH}. */
    public UnsafeBuffer replyBuffer() {
        return reply;
    }

    /** Send the reply whose payload was written into {@link #replyBuffer()}. */
    public void sendReply(final int request, final int size) throws IOException {
        sendReply(request, size, NO_FDS, 0);
    }

    /** The same, with {@code fd} attached (the caller keeps its own). */
    public void sendReply(final int request, final int size, final int fd) throws IOException {
        synchronized (replyFd) {
            replyFd[0] = fd;
            sendReply(request, size, replyFd, 1);
        }
    }

    private void sendReply(final int request, final int size, final int[] fds, final int fdCount) throws IOException {
        synchronized (reply) {
            replyHeader.request(request).flags(VhostUserHeader.VERSION | VhostUserHeader.FLAG_REPLY).size(size);
            socket.send(replyBytes, 0, VhostUserHeader.LENGTH + size, fds, fdCount);
        }
    }

    public void sendU64Reply(final int request, final long value) throws IOException {
        synchronized (reply) {
            reply.putLong(VhostUserHeader.LENGTH, value, java.nio.ByteOrder.LITTLE_ENDIAN);
            sendReply(request, 8);
        }
    }

    /** Cut the connection; safe from any thread (wakes the thread reading it). */
    @Override
    public void close() {
        socket.close();
    }
}
