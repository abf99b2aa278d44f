package dev.vhostnet.backend.transport;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Runtime;
import jnr.ffi.annotations.SaveError;

/**
 * The socket calls {@link UnixMessageSocket} makes itself instead of going through junixsocket, whose receive
 * path caps the ancillary buffer at 256 bytes (60 fds) and, when the kernel truncates the ancillary data, throws
 * without reporting the fds that were installed, so nobody can close them. Structures are passed as raw
 * addresses of off-heap scratch memory. x86_64/aarch64 Linux (LP64) layouts. Public only because jnr-ffi
 * generates its implementation in another class loader.
 */
public interface SocketCalls {
    SocketCalls INSTANCE = LibraryLoader.create(SocketCalls.class).load("c");
    Runtime RUNTIME = Runtime.getRuntime(INSTANCE);

    int SOL_SOCKET = 1;
    int SCM_RIGHTS = 1;
    int SO_TYPE = 3;
    int SO_DOMAIN = 39;
    int AF_UNIX = 1;
    int SOCK_STREAM = 1;

    int MSG_CTRUNC = 0x8;
    int MSG_DONTWAIT = 0x40;
    int MSG_NOSIGNAL = 0x4000;
    int MSG_CMSG_CLOEXEC = 0x40000000;

    short POLLIN = 0x1;
    short POLLOUT = 0x4;

    int SHUT_WR = 1;
    int SHUT_RDWR = 2;

    int EINTR = 4;
    int EAGAIN = 11;

    /** struct msghdr: msg_name, msg_namelen, msg_iov, msg_iovlen, msg_control, msg_controllen, msg_flags. */
    int MSGHDR_IOV = 16;
    int MSGHDR_IOVLEN = 24;
    int MSGHDR_CONTROL = 32;
    int MSGHDR_CONTROLLEN = 40;
    int MSGHDR_FLAGS = 48;
    int MSGHDR_SIZE = 56;
    /** struct iovec: iov_base, iov_len. */
    int IOVEC_SIZE = 16;
    /** struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type, then the data, 8-byte aligned. */
    int CMSG_LEVEL = 8;
    int CMSG_TYPE = 12;
    int CMSG_HEADER = 16;
    /** struct pollfd: fd, events, revents. */
    int POLLFD_SIZE = 8;

    @SaveError
    long recvmsg(int fd, long msghdr, int flags);

    @SaveError
    long sendmsg(int fd, long msghdr, int flags);

    @SaveError
    int poll(long fds, long nfds, int timeoutMillis);

    @SaveError
    int shutdown(int fd, int how);

    @SaveError
    int getsockopt(int fd, int level, int optname, long optval, long optlen);

    @SaveError
    int socketpair(int domain, int type, int protocol, long sv);

    @SaveError
    int dup(int fd);

    @SaveError
    int close(int fd);

    static int errno() {
        return RUNTIME.getLastError();
    }

    /** CMSG_ALIGN: cmsg lengths are padded to the size of size_t. */
    static long align(final long n) {
        return (n + 7) & ~7L;
    }
}
