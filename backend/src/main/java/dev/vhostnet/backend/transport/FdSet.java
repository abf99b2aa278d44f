package dev.vhostnet.backend.transport;

import dev.vhostnet.dataplane.sys.FileDescriptors;

/**
 * The fds one received message brought. Each is either taken by the handler that uses it ({@link #take}: the
 * handler then owns and closes it) or closed by {@link #closeUntaken()} when the message has been dispatched,
 * on every path: refused, malformed, or the connection ends while the message is read. Holds up to
 * {@link UnixMessageSocket#MAX_FDS} (the kernel's limit per message), so any fd that arrives is held here until
 * the message's handler has decided, never dropped on the floor.
 */
public final class FdSet {
    private final int[] fds;
    private final boolean[] taken;
    private int count;
    /** Fds that arrived beyond the capacity (closed on arrival). */
    private int overflow;
    /** The kernel dropped some fds of this message (MSG_CTRUNC): what arrived is not what was sent. */
    private boolean lost;

    public FdSet() {
        this(UnixMessageSocket.MAX_FDS);
    }

    public FdSet(final int capacity) {
        fds = new int[capacity];
        taken = new boolean[capacity];
    }

    /** A received fd, owned by this set from now on. */
    void add(final int fd) {
        if (count == fds.length) {
            FileDescriptors.closeQuietly(fd);
            overflow++;
            return;
        }
        taken[count] = false;
        fds[count++] = fd;
    }

    void markLost() {
        lost = true;
    }

    /** Fds held (taken or not). */
    public int count() {
        return count;
    }

    /** Fds that came with the message: those held and those closed on arrival for want of room. */
    public int received() {
        return count + overflow;
    }

    /**
     * Whether the kernel had to drop fds of this message: it truncates the ancillary data when the receive
     * buffer is too small or when this process has no fd slot left for them (EMFILE), and closes the rest.
     */
    public boolean lost() {
        return lost;
    }

    /** Take ownership of fd {@code i}: the caller must close it. */
    public int take(final int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("fd " + i + " of " + count);
        }
        if (taken[i]) {
            throw new IllegalStateException("fd " + i + " taken twice");
        }
        taken[i] = true;
        return fds[i];
    }

    /** Close every fd no handler took. Idempotent. */
    public void closeUntaken() {
        for (int i = 0; i < count; i++) {
            if (!taken[i]) {
                FileDescriptors.closeQuietly(fds[i]);
                taken[i] = true;
            }
        }
    }

    /** Close what was not taken and forget everything: ready for the next message. */
    public void clear() {
        closeUntaken();
        count = 0;
        overflow = 0;
        lost = false;
    }
}
