package dev.vhostnet.backend;

import dev.vhostnet.backend.transport.FdSet;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.VhostUserHeader;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One received message: header, payload and the fds that came with it, in a buffer reused for every
 * message of a connection. The fds belong to the message ({@link FdSet}) until a handler takes them; whatever
 * is not taken is closed by {@link #closeUntakenFds()}, so a hostile front-end cannot make us leak fds.
 */
public final class VhostUserMessage {
    private final byte[] bytes = new byte[VhostUserHeader.LENGTH + VhostUserHeader.MAX_PAYLOAD];
    private final UnsafeBuffer buffer = new UnsafeBuffer(bytes);
    private final VhostUserHeader header = new VhostUserHeader();
    private final FdSet fds = new FdSet();

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
        fds.clear();
    }

    FdSet fds() {
        return fds;
    }

    public int fdCount() {
        return fds.count();
    }

    /** Whether the kernel dropped fds of this message on the way (see {@link FdSet#lost()}). */
    public boolean fdsLost() {
        return fds.lost();
    }

    /** Take ownership of fd i: the caller must close it. */
    public int takeFd(final int i) {
        return fds.take(i);
    }

    public void requireFds(final int expected) throws ProtocolException {
        if (fds.count() != expected) {
            throw new ProtocolException(name() + " carries " + fds.count() + " fds, expected " + expected);
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
        fds.closeUntaken();
    }
}
