package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import dev.vhostnet.spec.vhostpci.VhostPciMessages;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.Closeable;
import java.io.EOFException;
import java.io.FileDescriptor;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * Framing of vhost-pci messages over a connected AF_UNIX stream socket, fds as SCM_RIGHTS attached to the
 * first byte of a message. The 32-byte header is read and checked (known type, payload within
 * {@link VhostPci#MAX_PAYLOAD}) before any payload byte is read. Whether the payload is consistent with its
 * type is left to the caller ({@link VhostPciMessages#validatePayload}), because a bad request is answered
 * with a FAIL while bad framing closes the connection.
 */
public final class VhostPciChannel implements Closeable {
    /** Room for the kernel's maximum of 253 fds per message, so excess fds are received and closed. */
    private static final int ANCILLARY_BUFFER = 4096;

    private final AFUNIXSocket socket;
    private final InputStream in;
    private final OutputStream out;
    private final Object sendLock = new Object();

    public VhostPciChannel(final AFUNIXSocket socket) throws IOException {
        this.socket = socket;
        socket.setAncillaryReceiveBufferSize(ANCILLARY_BUFFER);
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
    }

    public AFUNIXSocket socket() {
        return socket;
    }

    /**
     * Read the next message into {@code frame} (whose previous untaken fds are closed first).
     *
     * @return false at a clean end of stream between messages (the peer closed or died)
     * @throws VhostPciException when framing is lost: unknown type, payload too long, end of stream inside a
     *                           message, more fds than a message may carry
     */
    public boolean receive(final VhostPciFrame frame) throws IOException {
        frame.reset();
        final byte[] bytes = frame.bytes();
        if (!readFully(bytes, 0, VhostPciHeader.LENGTH, frame, true)) {
            return false;
        }
        final int header = VhostPciMessages.validateHeader(frame.buffer(), 0);
        if (header != VhostPciMessages.OK) {
            throw new VhostPciException("bad header (type " + frame.type() + ", msg_len " + frame.header().length()
                + "): " + VhostPciMessages.describe(header));
        }
        if (!readFully(bytes, VhostPciHeader.LENGTH, frame.payloadLength(), frame, false)) {
            throw new EOFException("peer closed the socket inside " + VhostPci.typeName(frame.type()));
        }
        if (frame.excessFds() > 0) {
            throw new VhostPciException(VhostPci.typeName(frame.type()) + " came with more than "
                + VhostPci.MAX_FDS + " fds");
        }
        return true;
    }

    private boolean readFully(final byte[] b, final int off, final int len, final VhostPciFrame frame,
                              final boolean eofAllowedAtStart) throws IOException {
        int done = 0;
        while (done < len) {
            final int n = in.read(b, off + done, len - done);
            collectFds(frame);
            if (n < 0) {
                if (done == 0 && eofAllowedAtStart) {
                    return false;
                }
                throw new EOFException("peer closed the socket mid-message");
            }
            done += n;
        }
        return true;
    }

    private void collectFds(final VhostPciFrame frame) throws IOException {
        final FileDescriptor[] received = socket.getReceivedFileDescriptors();
        if (received != null) {
            for (final FileDescriptor fd : received) {
                frame.addFd(FileDescriptorCast.using(fd).as(Integer.class));
            }
        }
    }

    /** Write {@code bytes[0 .. length)} as one message, with {@code fdCount} fds from {@code fds}. */
    public void send(final byte[] bytes, final int length, final int[] fds, final int fdCount) throws IOException {
        if (fdCount > VhostPci.MAX_FDS) {
            throw new IllegalArgumentException(fdCount + " fds (max " + VhostPci.MAX_FDS + ")");
        }
        synchronized (sendLock) {
            if (fdCount > 0) {
                final FileDescriptor[] descriptors = new FileDescriptor[fdCount];
                for (int i = 0; i < fdCount; i++) {
                    descriptors[i] = FileDescriptorCast.unsafeUsing(fds[i]).getFileDescriptor();
                }
                socket.setOutboundFileDescriptors(descriptors);
            }
            out.write(bytes, 0, length);
            out.flush();
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
