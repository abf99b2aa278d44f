package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One received vhost-pci message: header, payload and the fds that came with it, in a buffer reused for every
 * message of a connection. The fds belong to the frame until taken with {@link #takeFd}; the rest are closed
 * by {@link #closeUntakenFds()} before the next message is read, so a peer cannot make us leak fds.
 */
public final class VhostPciFrame {
    /** Fds beyond this many are closed on arrival and counted as {@link #excessFds()}. */
    static final int FD_CAPACITY = VhostPci.MAX_FDS;

    private final byte[] bytes = new byte[VhostPciHeader.LENGTH + VhostPci.MAX_PAYLOAD];
    private final UnsafeBuffer buffer = new UnsafeBuffer(bytes);
    private final VhostPciHeader header = new VhostPciHeader();
    private final int[] fds = new int[FD_CAPACITY];
    private final boolean[] taken = new boolean[FD_CAPACITY];
    private int fdCount;
    private int excessFds;

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
        return fdCount;
    }

    /** Fds that arrived beyond {@link VhostPci#MAX_FDS} (already closed). */
    public int excessFds() {
        return excessFds;
    }

    /** Take ownership of fd i: the caller must close it. */
    public int takeFd(final int i) {
        if (i < 0 || i >= fdCount) {
            throw new IndexOutOfBoundsException("fd " + i + " of " + fdCount);
        }
        taken[i] = true;
        return fds[i];
    }

    void addFd(final int fd) {
        if (fdCount == fds.length) {
            FileDescriptors.closeQuietly(fd);
            excessFds++;
            return;
        }
        taken[fdCount] = false;
        fds[fdCount++] = fd;
    }

    public void closeUntakenFds() {
        for (int i = 0; i < fdCount; i++) {
            if (!taken[i]) {
                FileDescriptors.closeQuietly(fds[i]);
                taken[i] = true;
            }
        }
    }

    void reset() {
        closeUntakenFds();
        fdCount = 0;
        excessFds = 0;
    }
}
