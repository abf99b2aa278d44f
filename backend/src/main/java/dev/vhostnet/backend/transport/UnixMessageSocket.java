package dev.vhostnet.backend.transport;

import dev.vhostnet.dataplane.sys.Errno;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.NativeScratch;
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.Closeable;
import java.io.EOFException;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.util.concurrent.TimeUnit;

/**
 * A connected AF_UNIX stream socket carrying messages with fds (SCM_RIGHTS): the one transport of the vhost-user
 * socket, the back-end channel and the vhost-pci socket. The framings on top decide how long a message is;
 * this class reads exactly what they ask for, hands every fd that arrives to the message's {@link FdSet}, and
 * bounds how long a peer can hold the connection (see {@link SocketTimeouts}).
 *
 * <p>It calls recvmsg/sendmsg itself (see {@link LibC#recvmsg} for why not junixsocket's streams): the ancillary
 * buffer holds the kernel's maximum of {@value #MAX_FDS} fds, fds are received close-on-exec and owned from the
 * moment they arrive (nothing else remembers them, so nothing closes them behind our back), and when the kernel
 * still truncates the ancillary data (MSG_CTRUNC: no fd slot left in this process) the fds it did install are
 * kept for closing and the message is marked {@link FdSet#lost()}; the kernel closes the rest itself.
 *
 * <p>Threads: one reader; any number of senders (a send is atomic with respect to other sends). {@link #close()}
 * may be called from any thread at any time: it shuts the socket down, which wakes a blocked reader or sender,
 * and the fd number is released only once no call is using it, so a late read can never reach whatever reused it.
 */
public final class UnixMessageSocket implements Closeable {
    /** SCM_MAX_FD: the most fds Linux passes with one message. */
    public static final int MAX_FDS = 253;
    private static final int CHUNK = 8192;
    private static final long NO_DEADLINE = Long.MAX_VALUE;

    private final int fd;
    private final SocketTimeouts timeouts;

    // Lifecycle, guarded by this.
    private int users;
    private boolean closing;
    private boolean released;
    private volatile String failure;

    // Receive side (the reader thread only).
    private final Syscall receive;
    private final int controlCapacity;
    private long messageDeadline;

    // Send side, guarded by send.
    private final Syscall send;

    /** The msghdr, iovec, pollfd, data and control buffers of one direction. */
    private static final class Syscall {
        final NativeScratch header = new NativeScratch(128);
        final NativeScratch data = new NativeScratch(CHUNK);
        final NativeScratch control;

        Syscall(final int controlBytes) {
            control = new NativeScratch(controlBytes);
        }
    }

    private UnixMessageSocket(final int fd, final SocketTimeouts timeouts, final int maxFdsPerRead) {
        this.fd = fd;
        this.timeouts = timeouts;
        this.controlCapacity = controlSpace(maxFdsPerRead);
        this.receive = new Syscall(controlCapacity);
        this.send = new Syscall(controlSpace(MAX_FDS));
    }

    /** CMSG_SPACE for {@code fds} ints. */
    private static int controlSpace(final int fds) {
        return (int) MsgHdr.align(MsgHdr.CMSG_HEADER + 4L * fds);
    }

    /**
     * Take over a connected junixsocket socket: keep a dup of its fd and release the original through its
     * FileDescriptor (junixsocket then sees it closed and never touches the number again). The socket object is
     * of no further use; it needs no closing, and closing it does nothing. On failure the connection is closed.
     */
    public static UnixMessageSocket adopt(final AFUNIXSocket socket, final SocketTimeouts timeouts) throws IOException {
        final FileDescriptor original = socket.getFileDescriptor();
        final int number = FileDescriptorCast.using(original).as(Integer.class);
        final int copy;
        try {
            copy = LibC.INSTANCE.dup(number);
        } finally {
            new FileInputStream(original).close();
        }
        if (copy < 0) {
            throw new IOException("dup of the socket: " + Errno.describe(LibC.errno()));
        }
        return new UnixMessageSocket(copy, timeouts, MAX_FDS);
    }

    /**
     * Own {@code fd} from now on if it is a connected AF_UNIX stream socket (e.g. the one SET_BACKEND_REQ_FD
     * brings). If it is not, nothing is taken: the caller still owns (and must close) it.
     */
    public static UnixMessageSocket adopt(final int fd, final SocketTimeouts timeouts) throws IOException {
        final NativeScratch option = new NativeScratch(16);
        for (final int[] expected : new int[][] {{LibC.SO_DOMAIN, LibC.AF_UNIX},
            {LibC.SO_TYPE, LibC.SOCK_STREAM}}) {
            option.buffer().putInt(8, 4);
            if (LibC.INSTANCE.getsockopt(fd, LibC.SOL_SOCKET, expected[0], option.address(),
                option.address() + 8) < 0) {
                throw new IOException("fd " + fd + " is not a socket (" + Errno.describe(LibC.errno()) + ")");
            }
            if (option.buffer().getInt(0) != expected[1]) {
                throw new IOException("fd " + fd + " is not an AF_UNIX stream socket");
            }
        }
        return new UnixMessageSocket(fd, timeouts, MAX_FDS);
    }

    /**
     * Two connected sockets (socketpair). {@code maxFdsPerRead} sizes the ancillary receive buffer: less than
     * {@link #MAX_FDS} only to show what happens when the kernel has to truncate.
     */
    public static UnixMessageSocket[] pair(final SocketTimeouts timeouts, final int maxFdsPerRead) throws IOException {
        final NativeScratch sv = new NativeScratch(8);
        if (LibC.INSTANCE.socketpair(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0,
            sv.address()) < 0) {
            throw new IOException("socketpair: " + Errno.describe(LibC.errno()));
        }
        return new UnixMessageSocket[] {
            new UnixMessageSocket(sv.buffer().getInt(0), timeouts, maxFdsPerRead),
            new UnixMessageSocket(sv.buffer().getInt(4), timeouts, MAX_FDS)};
    }

    public SocketTimeouts timeouts() {
        return timeouts;
    }

    // ---- receiving ---------------------------------------------------------------------------------------------

    /**
     * Read the first {@code len} bytes of the next message (its header). The first byte may take as long as it
     * takes ({@code firstByteWaitMillis} &lt; 0) or that long at most; from then on the whole message must
     * arrive within the mid-message time-out ({@link #readRest} reads the rest of it).
     *
     * @return false at an end of stream before the first byte (the peer closed between messages)
     * @throws EOFException         at an end of stream after the first byte
     * @throws PeerTimeoutException when the peer goes silent mid-message (or before the first byte, if bounded)
     */
    public boolean readStart(final byte[] into, final int off, final int len, final FdSet fds,
                             final long firstByteWaitMillis) throws IOException {
        final long firstDeadline = firstByteWaitMillis < 0 ? NO_DEADLINE
            : System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(firstByteWaitMillis);
        final int n = readSome(into, off, len, fds, firstDeadline, firstByteWaitMillis, "before a message");
        if (n < 0) {
            return false;
        }
        messageDeadline = System.nanoTime() + timeouts.midMessage().toNanos();
        readRest(into, off + n, len - n, fds);
        return true;
    }

    /** Read {@code len} more bytes of the message {@link #readStart} began, before its deadline. */
    public void readRest(final byte[] into, final int off, final int len, final FdSet fds) throws IOException {
        int done = 0;
        while (done < len) {
            final int n = readSome(into, off + done, len - done, fds, messageDeadline, timeouts.midMessage().toMillis(),
                "in the middle of a message");
            if (n < 0) {
                throw new EOFException("peer closed the connection in the middle of a message");
            }
            done += n;
        }
    }

    /** One recvmsg of at most {@code len} bytes, waiting until {@code deadline}; -1 at the end of stream. */
    private int readSome(final byte[] into, final int off, final int len, final FdSet fds, final long deadline,
                         final long limitMillis, final String where) throws IOException {
        enter();
        try {
            final String failed = failure;
            if (failed != null) {
                throw new IOException(failed); // what is still queued belongs to a connection we cut
            }
            final Syscall s = receive;
            final UnsafeBuffer h = s.header.buffer();
            final long iov = s.header.address() + MsgHdr.MSGHDR_SIZE;
            final int chunk = Math.min(len, CHUNK);
            while (true) {
                h.setMemory(0, MsgHdr.MSGHDR_SIZE + MsgHdr.IOVEC_SIZE, (byte) 0);
                h.putLong(MsgHdr.MSGHDR_SIZE, s.data.address());
                h.putLong(MsgHdr.MSGHDR_SIZE + 8, chunk);
                h.putLong(MsgHdr.MSGHDR_IOV, iov);
                h.putLong(MsgHdr.MSGHDR_IOVLEN, 1);
                h.putLong(MsgHdr.MSGHDR_CONTROL, s.control.address());
                h.putLong(MsgHdr.MSGHDR_CONTROLLEN, controlCapacity);
                final long n = LibC.INSTANCE.recvmsg(fd, s.header.address(),
                    LibC.MSG_DONTWAIT | LibC.MSG_CMSG_CLOEXEC);
                if (n >= 0) {
                    collectFds(h, s.control.buffer(), fds);
                    if (n == 0) {
                        final String why = failure;
                        if (why != null) {
                            throw new IOException(why);
                        }
                        return -1;
                    }
                    s.data.buffer().getBytes(0, into, off, (int) n);
                    return (int) n;
                }
                final int errno = LibC.errno();
                if (errno == LibC.EAGAIN) {
                    awaitReady(LibC.POLLIN, deadline, limitMillis, where);
                } else if (errno != LibC.EINTR) {
                    final String why = failure;
                    throw new IOException(why != null ? why : "recvmsg: " + Errno.describe(errno));
                }
            }
        } finally {
            exit();
        }
    }

    /** Every fd of every SCM_RIGHTS header into {@code fds} (or closed, without one); MSG_CTRUNC marks them lost. */
    private static void collectFds(final UnsafeBuffer header, final UnsafeBuffer control, final FdSet fds) {
        final long length = header.getLong(MsgHdr.MSGHDR_CONTROLLEN);
        int at = 0;
        while (at + MsgHdr.CMSG_HEADER <= length) {
            final long cmsgLength = control.getLong(at);
            if (cmsgLength < MsgHdr.CMSG_HEADER || cmsgLength > length - at) {
                break;
            }
            if (control.getInt(at + MsgHdr.CMSG_LEVEL) == LibC.SOL_SOCKET
                && control.getInt(at + MsgHdr.CMSG_TYPE) == LibC.SCM_RIGHTS) {
                final int n = (int) ((cmsgLength - MsgHdr.CMSG_HEADER) / 4);
                for (int i = 0; i < n; i++) {
                    final int received = control.getInt(at + MsgHdr.CMSG_HEADER + 4 * i);
                    if (fds != null) {
                        fds.add(received);
                    } else {
                        LibC.INSTANCE.close(received);
                    }
                }
            }
            at += (int) MsgHdr.align(cmsgLength);
        }
        if ((header.getInt(MsgHdr.MSGHDR_FLAGS) & LibC.MSG_CTRUNC) != 0 && fds != null) {
            fds.markLost();
        }
    }

    // ---- sending -----------------------------------------------------------------------------------------------

    /**
     * Write {@code bytes[off .. off + len)} as one message, {@code fdCount} fds of {@code fds} attached to its
     * first byte (the caller keeps its fds). A peer that does not make room within the send time-out cuts the
     * connection: part of the message may be out, so the framing is lost.
     */
    public void send(final byte[] bytes, final int off, final int len, final int[] fds, final int fdCount)
        throws IOException {
        if (fdCount < 0 || fdCount > MAX_FDS || fdCount > 0 && fds.length < fdCount) {
            throw new IllegalArgumentException(fdCount + " fds (at most " + MAX_FDS + ")");
        }
        synchronized (send) {
            enter();
            try {
                final long deadline = System.nanoTime() + timeouts.send().toNanos();
                final Syscall s = send;
                final UnsafeBuffer h = s.header.buffer();
                final long iov = s.header.address() + MsgHdr.MSGHDR_SIZE;
                int done = 0;
                boolean fdsSent = fdCount == 0;
                while (done < len) {
                    final int chunk = Math.min(len - done, CHUNK);
                    s.data.buffer().putBytes(0, bytes, off + done, chunk);
                    h.setMemory(0, MsgHdr.MSGHDR_SIZE + MsgHdr.IOVEC_SIZE, (byte) 0);
                    h.putLong(MsgHdr.MSGHDR_SIZE, s.data.address());
                    h.putLong(MsgHdr.MSGHDR_SIZE + 8, chunk);
                    h.putLong(MsgHdr.MSGHDR_IOV, iov);
                    h.putLong(MsgHdr.MSGHDR_IOVLEN, 1);
                    if (!fdsSent) {
                        final UnsafeBuffer c = s.control.buffer();
                        c.putLong(0, MsgHdr.CMSG_HEADER + 4L * fdCount);
                        c.putInt(MsgHdr.CMSG_LEVEL, LibC.SOL_SOCKET);
                        c.putInt(MsgHdr.CMSG_TYPE, LibC.SCM_RIGHTS);
                        for (int i = 0; i < fdCount; i++) {
                            c.putInt(MsgHdr.CMSG_HEADER + 4 * i, fds[i]);
                        }
                        h.putLong(MsgHdr.MSGHDR_CONTROL, s.control.address());
                        h.putLong(MsgHdr.MSGHDR_CONTROLLEN, controlSpace(fdCount));
                    }
                    final long n = LibC.INSTANCE.sendmsg(fd, s.header.address(),
                        LibC.MSG_DONTWAIT | LibC.MSG_NOSIGNAL);
                    if (n > 0) {
                        done += (int) n;
                        fdsSent = true;
                        continue;
                    }
                    final int errno = n < 0 ? LibC.errno() : LibC.EAGAIN;
                    if (errno == LibC.EAGAIN) {
                        try {
                            awaitReady(LibC.POLLOUT, deadline, timeouts.send().toMillis(),
                                "without reading what we send");
                        } catch (final PeerTimeoutException e) {
                            fail(e.getMessage());
                            throw e;
                        }
                    } else if (errno != LibC.EINTR) {
                        throw new IOException("sendmsg: " + Errno.describe(errno));
                    }
                }
            } finally {
                exit();
            }
        }
    }

    private void awaitReady(final short events, final long deadline, final long limitMillis, final String where)
        throws IOException {
        final NativeScratch scratch = events == LibC.POLLIN ? receive.header : send.header;
        final int pollfd = MsgHdr.MSGHDR_SIZE + MsgHdr.IOVEC_SIZE;
        while (true) {
            final int waitMillis;
            if (deadline == NO_DEADLINE) {
                waitMillis = -1;
            } else {
                final long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new PeerTimeoutException("peer silent for " + limitMillis + " ms " + where);
                }
                waitMillis = (int) Math.min(Integer.MAX_VALUE, TimeUnit.NANOSECONDS.toMillis(left) + 1);
            }
            scratch.buffer().putInt(pollfd, fd);
            scratch.buffer().putShort(pollfd + 4, events);
            scratch.buffer().putShort(pollfd + 6, (short) 0);
            final int rc = LibC.INSTANCE.poll(scratch.address() + pollfd, 1, waitMillis);
            if (rc > 0) {
                return; // readable, writable, hung up or failed: the next call says which
            }
            if (rc < 0 && LibC.errno() != LibC.EINTR) {
                throw new IOException("poll: " + Errno.describe(LibC.errno()));
            }
        }
    }

    // ---- lifecycle ---------------------------------------------------------------------------------------------

    /** Half-close: the peer reads an end of stream after what we sent; we can still read. */
    public void shutdownOutput() throws IOException {
        enter();
        try {
            LibC.INSTANCE.shutdown(fd, LibC.SHUT_WR);
        } finally {
            exit();
        }
    }

    /** Whether {@link #close()} was called or a time-out cut the connection. */
    public synchronized boolean isClosed() {
        return closing || failure != null;
    }

    /** Cut the connection (both directions) but keep the fd until the calls using it return. */
    private synchronized void fail(final String why) {
        if (failure == null) {
            failure = why;
        }
        if (!released) {
            LibC.INSTANCE.shutdown(fd, LibC.SHUT_RDWR);
        }
    }

    private synchronized void enter() throws IOException {
        if (closing) {
            throw new IOException("socket closed");
        }
        users++;
    }

    private synchronized void exit() {
        users--;
        releaseIfUnused();
    }

    private void releaseIfUnused() {
        if (closing && users == 0 && !released) {
            released = true;
            LibC.INSTANCE.close(fd);
        }
    }

    @Override
    public synchronized void close() {
        if (closing) {
            return;
        }
        closing = true;
        if (!released) {
            LibC.INSTANCE.shutdown(fd, LibC.SHUT_RDWR);
        }
        releaseIfUnused();
    }
}
