package dev.vhostnet.dataplane.sys;

/**
 * An eventfd used as a kick (guest to back-end) or call (back-end to guest) notifier. Reads and writes go
 * through a private 8-byte off-heap scratch, so signalling allocates nothing.
 */
public final class EventFd implements AutoCloseable {
    private final int fd;
    private final boolean owned;
    private final NativeScratch scratch = new NativeScratch(8);
    private boolean closed;

    private EventFd(final int fd, final boolean owned) {
        this.fd = fd;
        this.owned = owned;
    }

    /** A new non-blocking eventfd owned by this object. */
    public static EventFd create() {
        final int fd = (int) NativeException.check(
            LibC.INSTANCE.eventfd(0, LibC.EFD_NONBLOCK | LibC.EFD_CLOEXEC), "eventfd");
        return new EventFd(fd, true);
    }

    /** Take ownership of an fd received from a peer (closed by {@link #close()}). */
    /** Whether {@code fd} is an eventfd (and not, say, a memfd, socket or pipe a peer passed in its place). */
    public static boolean isEventFd(final int fd) {
        return "anon_inode:[eventfd]".equals(FileDescriptors.procName(fd));
    }

    public static EventFd adopt(final int fd) {
        return new EventFd(fd, true);
    }

    public int fd() {
        return fd;
    }

    /** Add 1 to the counter. Returns false if the write failed (e.g. the peer closed its end). */
    public boolean signal() {
        scratch.buffer().putLong(0, 1L);
        return LibC.INSTANCE.write(fd, scratch.address(), 8) == 8;
    }

    /** Read and reset the counter without blocking (the fd may be blocking: only call when readable). */
    public long drain() {
        final long n = LibC.INSTANCE.read(fd, scratch.address(), 8);
        return n == 8 ? scratch.buffer().getLong(0) : 0;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            if (owned) {
                FileDescriptors.closeQuietly(fd);
            }
        }
    }

    @Override
    public String toString() {
        return "eventfd(" + fd + ")";
    }
}
