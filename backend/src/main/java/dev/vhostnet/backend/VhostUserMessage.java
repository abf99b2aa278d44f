package dev.vhostnet.backend;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.VhostUserHeader;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One received message: header, payload and the fds that came with it, in a buffer reused for every
 * message of a connection. The fds belong to the message until a handler takes them; whatever is not
 * taken is closed by {@link #closeUntakenFds()}, so a hostile front-end cannot make us leak fds.
 */
public final class VhostUserMessage {
    private final byte[] bytes = new byte[VhostUserHeader.LENGTH + VhostUserHeader.MAX_PAYLOAD];
    private final UnsafeBuffer buffer = new UnsafeBuffer(bytes);
    private final VhostUserHeader header = new VhostUserHeader();
    private final int[] fds = new int[64];
    private final boolean[] taken = new boolean[64];
    private int fdCount;

    public VhostUserMessage() {
        header.wrap(buffer, 0);
    }

    byte[] bytes() {
        return bytes;
    }

    public UnsafeBuffer buffer() {
        return buffer;
    }

    public VhostUserHeader header() {
        return header;
    }

    public int request() {
        return header.request();
    }

    public String name() {
        return FrontendRequest.name(header.request());
    }

    /** Payload size (validated against the buffer by the channel before the payload is read). */
    public int size() {
        return (int) header.size();
    }

    /** Offset of the payload within {@link #buffer()}. */
    public static int payloadOffset() {
        return VhostUserHeader.LENGTH;
    }

    void reset() {
        closeUntakenFds();
        fdCount = 0;
    }

    void addFd(final int fd) {
        if (fdCount == fds.length) {
            FileDescriptors.closeQuietly(fd);
            return;
        }
        taken[fdCount] = false;
        fds[fdCount++] = fd;
    }

    public int fdCount() {
        return fdCount;
    }

    /** Take ownership of fd i: the caller must close it. */
    public int takeFd(final int i) {
        taken[i] = true;
        return fds[i];
    }

    public void requireFds(final int expected) throws ProtocolException {
        if (fdCount != expected) {
            throw new ProtocolException(name() + " carries " + fdCount + " fds, expected " + expected);
        }
    }

    public void requireSize(final int expected) throws ProtocolException {
        if (size() != expected) {
            throw new ProtocolException(name() + " payload is " + size() + " bytes, expected " + expected);
        }
    }

    public void requireSizeAtLeast(final int expected) throws ProtocolException {
        if (size() < expected) {
            throw new ProtocolException(name() + " payload is " + size() + " bytes, expected at least " + expected);
        }
    }

    public void closeUntakenFds() {
        for (int i = 0; i < fdCount; i++) {
            if (!taken[i]) {
                FileDescriptors.closeQuietly(fds[i]);
                taken[i] = true;
            }
        }
    }
}
