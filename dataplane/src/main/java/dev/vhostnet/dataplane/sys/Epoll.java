package dev.vhostnet.dataplane.sys;

/**
 * An epoll set of readable fds, each registered with a caller-chosen 64-bit token. Waiting allocates
 * nothing: events land in a private off-heap array.
 */
public final class Epoll implements AutoCloseable {
    private static final int EVENT_SIZE = 12; // struct epoll_event is packed on x86_64: u32 events, u64 data
    private final int epfd;
    private final int maxEvents;
    private final NativeScratch events;
    private final NativeScratch ctl = new NativeScratch(16);

    public Epoll(final int maxEvents) {
        this.epfd = (int) NativeException.check(LibC.INSTANCE.epoll_create1(LibC.EPOLL_CLOEXEC), "epoll_create1");
        this.maxEvents = maxEvents;
        this.events = new NativeScratch(maxEvents * EVENT_SIZE);
    }

    public synchronized void add(final int fd, final long token) {
        ctl.buffer().putInt(0, LibC.EPOLLIN);
        ctl.buffer().putLong(4, token);
        NativeException.check(LibC.INSTANCE.epoll_ctl(epfd, LibC.EPOLL_CTL_ADD, fd, ctl.address()), "epoll_ctl(ADD)");
    }

    /** Remove fd; ignores fds that were never added or are already closed. */
    public synchronized void remove(final int fd) {
        LibC.INSTANCE.epoll_ctl(epfd, LibC.EPOLL_CTL_DEL, fd, ctl.address());
    }

    /** Wait up to timeoutMillis (0: poll, -1: forever). Returns the number of ready events (0 on EINTR). */
    public int await(final int timeoutMillis) {
        final int n = LibC.INSTANCE.epoll_wait(epfd, events.address(), maxEvents, timeoutMillis);
        return Math.max(n, 0);
    }

    public long token(final int i) {
        return events.buffer().getLong(i * EVENT_SIZE + 4);
    }

    public int readyEvents(final int i) {
        return events.buffer().getInt(i * EVENT_SIZE);
    }

    @Override
    public void close() {
        FileDescriptors.closeQuietly(epfd);
    }
}
