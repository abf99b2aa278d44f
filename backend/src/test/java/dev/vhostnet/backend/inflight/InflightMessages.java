package dev.vhostnet.backend.inflight;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.InflightMessage;
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.lang.reflect.Field;

/**
 * GET_INFLIGHT_FD / SET_INFLIGHT_FD from the front-end side. The reply to GET carries an fd, which the shared
 * {@link VhostUserFrontend} does not collect: its socket is reached by reflection to receive it (a
 * {@code receivedFds()} accessor on the front-end would make this unnecessary).
 */
final class InflightMessages {
    private InflightMessages() {
    }

    /** The buffer as the front-end keeps it: description and fd (owned by the caller). */
    record Inflight(long mmapSize, long mmapOffset, int numQueues, int queueSize, int fd) {
    }

    static byte[] payload(final long mmapSize, final long mmapOffset, final int numQueues, final int queueSize) {
        final byte[] payload = new byte[InflightMessage.LENGTH];
        new InflightMessage().<InflightMessage>wrap(new UnsafeBuffer(payload), 0)
            .mmapSize(mmapSize).mmapOffset(mmapOffset).numQueues(numQueues).queueSize(queueSize);
        return payload;
    }

    static Inflight get(final VhostUserFrontend fe, final int numQueues, final int queueSize) throws IOException {
        final AFUNIXSocket socket = socketOf(fe);
        socket.setAncillaryReceiveBufferSize(1024);
        final VhostUserFrontend.Reply reply = fe.call(FrontendRequest.GET_INFLIGHT_FD, payload(0, 0, numQueues, queueSize));
        final FileDescriptor[] fds = socket.getReceivedFileDescriptors();
        if (fds == null || fds.length != 1) {
            throw new IOException("GET_INFLIGHT_FD reply carried " + (fds == null ? 0 : fds.length) + " fds");
        }
        // junixsocket closes received fds when the connection closes: keep a dup, release the original.
        final int fd;
        try {
            fd = FileDescriptors.dup(FileDescriptorCast.using(fds[0]).as(Integer.class));
        } finally {
            new FileInputStream(fds[0]).close();
        }
        if (reply.payload().length != InflightMessage.LENGTH) {
            throw new IOException("GET_INFLIGHT_FD reply of " + reply.payload().length + " bytes");
        }
        final InflightMessage m = new InflightMessage().wrap(reply.buffer(), 0);
        return new Inflight(m.mmapSize(), m.mmapOffset(), m.numQueues(), m.queueSize(), fd);
    }

    static void set(final VhostUserFrontend fe, final Inflight inflight) throws IOException {
        fe.tell(FrontendRequest.SET_INFLIGHT_FD,
            payload(inflight.mmapSize(), inflight.mmapOffset(), inflight.numQueues(), inflight.queueSize()), inflight.fd());
    }

    private static AFUNIXSocket socketOf(final VhostUserFrontend fe) {
        try {
            final Field f = VhostUserFrontend.class.getDeclaredField("socket");
            f.setAccessible(true);
            return (AFUNIXSocket) f.get(fe);
        } catch (final ReflectiveOperationException e) {
            throw new IllegalStateException("VhostUserFrontend changed: cannot reach its socket", e);
        }
    }
}
