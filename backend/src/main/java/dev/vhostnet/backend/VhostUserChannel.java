package dev.vhostnet.backend;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.spec.VhostUserHeader;
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.Closeable;
import java.io.EOFException;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * Framing of vhost-user messages over a connected AF_UNIX stream socket, with fds passed as SCM_RIGHTS.
 * The header is read first and its size checked before any payload byte is read, so a hostile size never
 * makes us allocate or read past the message buffer.
 */
public final class VhostUserChannel implements Closeable {
    private final AFUNIXSocket socket;
    private final InputStream in;
    private final OutputStream out;
    private final byte[] replyBytes = new byte[VhostUserHeader.LENGTH + VhostUserHeader.MAX_PAYLOAD];
    private final UnsafeBuffer reply = new UnsafeBuffer(replyBytes);
    private final VhostUserHeader replyHeader = new VhostUserHeader();

    public VhostUserChannel(final AFUNIXSocket socket) throws IOException {
        this.socket = socket;
        // Room for the most fds one message may carry, and then some, so extra fds are received (and closed)
        // rather than silently truncated by the kernel.
        socket.setAncillaryReceiveBufferSize(1024);
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
        replyHeader.wrap(reply, 0);
    }

    public AFUNIXSocket socket() {
        return socket;
    }

    /**
     * Read the next message into {@code message}.
     *
     * @return false at a clean end of stream (front-end disconnected between messages)
     * @throws ProtocolException for a message too large to read (the connection must then be closed)
     */
    public boolean receive(final VhostUserMessage message) throws IOException, ProtocolException {
        message.reset();
        final byte[] bytes = message.bytes();
        if (!readFully(bytes, 0, VhostUserHeader.LENGTH, message, true)) {
            return false;
        }
        final long size = message.header().size();
        if (size > VhostUserHeader.MAX_PAYLOAD) {
            throw new ProtocolException(message.name() + " announces a " + size + "-byte payload (max "
                + VhostUserHeader.MAX_PAYLOAD + ")");
        }
        if (!readFully(bytes, VhostUserHeader.LENGTH, (int) size, message, false)) {
            throw new EOFException("front-end closed the socket in the middle of " + message.name());
        }
        return true;
    }

    private boolean readFully(final byte[] b, final int off, final int len, final VhostUserMessage message,
                              final boolean eofAllowedAtStart) throws IOException {
        int done = 0;
        while (done < len) {
            final int n = in.read(b, off + done, len - done);
            collectFds(message);
            if (n < 0) {
                if (done == 0 && eofAllowedAtStart) {
                    return false;
                }
                throw new EOFException("front-end closed the socket mid-message");
            }
            done += n;
        }
        return true;
    }

    private void collectFds(final VhostUserMessage message) throws IOException {
        final FileDescriptor[] received = socket.getReceivedFileDescriptors();
        if (received != null) {
            for (final FileDescriptor fd : received) {
                message.addFd(takeOwnership(fd));
            }
        }
    }

    /**
     * junixsocket remembers every fd it receives and closes those still valid when the socket closes; we own
     * fds by number and close them ourselves (often long before the connection ends), so that late close would
     * hit whatever reused the number meanwhile (another connection's memory, an eventfd, the epoll fd). Keep a
     * dup and release the original through its FileDescriptor, which also drops junixsocket's reference.
     */
    private static int takeOwnership(final FileDescriptor fd) throws IOException {
        final int number = FileDescriptorCast.using(fd).as(Integer.class);
        try {
            return FileDescriptors.dup(number);
        } finally {
            new FileInputStream(fd).close();
        }
    }

    /** Reply buffer for a payload of {@code size} bytes at offset {@link VhostUserHeader#LENGTH}. */
    public UnsafeBuffer replyBuffer() {
        return reply;
    }

    /** Send the reply whose payload was written into {@link #replyBuffer()}. */
    public void sendReply(final int request, final int size) throws IOException {
        replyHeader.request(request).flags(VhostUserHeader.VERSION | VhostUserHeader.FLAG_REPLY).size(size);
        synchronized (out) {
            out.write(replyBytes, 0, VhostUserHeader.LENGTH + size);
            out.flush();
        }
    }

    public void sendU64Reply(final int request, final long value) throws IOException {
        reply.putLong(VhostUserHeader.LENGTH, value, java.nio.ByteOrder.LITTLE_ENDIAN);
        sendReply(request, 8);
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
