package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.transport.FdSet;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One received vhost-pci message: header, payload and the fds that came with it, in a buffer reused for every
 * message of a connection. The fds belong to the frame ({@link FdSet}) until taken with {@link #takeFd}; the
 * rest are closed by {@link #closeUntakenFds()} before the next message is read, so a peer cannot make us leak
 * fds. The frame holds as many fds as the kernel passes with one message; the channel refuses a frame with
 * more than {@link VhostPci#MAX_FDS}.
 */
public final class VhostPciFrame {

    private final byte[] bytes = new byte[VhostPciHeader.LENGTH + VhostPci.MAX_PAYLOAD];
    private final UnsafeBuffer buffer = new UnsafeBuffer(bytes);
    private final VhostPciHeader header = new VhostPciHeader();
    private final FdSet fds = new FdSet();

    public VhostPciFrame() {
        header.wrap(buffer, 0);
    }

    byte[] bytes() {
        return bytes;
    }

    public UnsafeBuffer buffer() {
        return buffer;
    }

    public VhostPciHeader header() {
        return header;
    }

    public int type() {
        return header.type();
    }

    public long seq() {
        return header.seq();
    }

    /** Payload length (checked against {@link VhostPci#MAX_PAYLOAD} by the channel before it was read). */
    public int payloadLength() {
        return (int) header.length();
    }

    /** Offset of the payload in {@link #buffer()}. */
    public static int payloadOffset() {
        return VhostPciHeader.LENGTH;
    }

    public int fdCount() {
        return fds.count();
    }

    /** Fds that arrived beyond {@link VhostPci#MAX_FDS}. */
    public int excessFds() {
        return Math.max(0, fds.received() - VhostPci.MAX_FDS);
    }

    /** Whether the kernel dropped fds of this frame on the way (see {@link FdSet#lost()}). */
    public boolean fdsLost() {
        return fds.lost();
    }

    /** Take ownership of fd i: the caller must close it. */
    public int takeFd(final int i) {
        return fds.take(i);
    }

    FdSet fds() {
        return fds;
    }

    public void closeUntakenFds() {
        fds.closeUntaken();
    }

    void reset() {
        fds.clear();
    }
}
