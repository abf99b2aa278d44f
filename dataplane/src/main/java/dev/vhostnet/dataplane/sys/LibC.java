package dev.vhostnet.dataplane.sys;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Runtime;
import jnr.ffi.annotations.In;
import jnr.ffi.annotations.SaveError;

/**
 * The few libc calls the back-end needs that the JDK lacks. Buffers are passed as raw addresses
 * ({@code long}) so that calls on the dataplane allocate nothing. x86_64/aarch64 Linux (LP64) only.
 */
public interface LibC {
    LibC INSTANCE = LibraryLoader.create(LibC.class).load("c");
    Runtime RUNTIME = Runtime.getRuntime(INSTANCE);

    int PROT_READ = 0x1;
    int PROT_WRITE = 0x2;
    int MAP_SHARED = 0x01;
    int MAP_PRIVATE = 0x02;
    int MAP_ANONYMOUS = 0x20;
    int MAP_NORESERVE = 0x4000;
    long MAP_FAILED = -1L;

    int MFD_CLOEXEC = 0x1;
    int MFD_ALLOW_SEALING = 0x2;

    int EFD_NONBLOCK = 0x800;
    int EFD_CLOEXEC = 0x80000;

    int EPOLL_CLOEXEC = 0x80000;
    int EPOLL_CTL_ADD = 1;
    int EPOLL_CTL_DEL = 2;
    int EPOLL_CTL_MOD = 3;
    int EPOLLIN = 0x001;
    int EPOLLERR = 0x008;
    int EPOLLHUP = 0x010;

    int SEEK_SET = 0;
    int SEEK_END = 2;

    int F_GETFL = 3;
    int F_SETFL = 4;
    int F_GETFD = 1;
    int F_ADD_SEALS = 1033;
    int F_GET_SEALS = 1034;
    int F_SEAL_SEAL = 0x1;
    int F_SEAL_SHRINK = 0x2;
    int F_SEAL_GROW = 0x4;
    int F_SEAL_WRITE = 0x8;
    int O_NONBLOCK = 0x800;

    int SOL_SOCKET = 1;
    int SO_ACCEPTCONN = 30;
    int SO_TYPE = 3;
    int SO_DOMAIN = 39;
    int SCM_RIGHTS = 1;
    int AF_UNIX = 1;
    int SOCK_STREAM = 1;
    int SOCK_CLOEXEC = 0x80000;

    int MSG_CTRUNC = 0x8;
    int MSG_DONTWAIT = 0x40;
    int MSG_NOSIGNAL = 0x4000;
    int MSG_CMSG_CLOEXEC = 0x40000000;

    short POLLIN = 0x1;
    short POLLOUT = 0x4;

    int SHUT_WR = 1;
    int SHUT_RDWR = 2;

    int EAGAIN = 11;
    int EINTR = 4;
    int EBADF = 9;
    int EPERM = 1;
    int EINVAL = 22;

    // mmap is not declared here: jnr-ffi's generated stubs pass a wrong sixth argument on this platform
    // (glibc then fails with EINVAL before the syscall). See RawMmap, which calls it through jffi directly.

    @SaveError
    int munmap(long addr, long length);

    @SaveError
    int memfd_create(@In String name, int flags);

    @SaveError
    int ftruncate(int fd, long length);

    @SaveError
    long lseek(int fd, long offset, int whence);

    @SaveError
    int eventfd(int initval, int flags);

    @SaveError
    long read(int fd, long buf, long count);

    @SaveError
    long write(int fd, long buf, long count);

    @SaveError
    int close(int fd);

    @SaveError
    int dup(int fd);

    @SaveError
    int fcntl(int fd, int cmd, int arg);

    @SaveError
    int epoll_create1(int flags);

    @SaveError
    int epoll_ctl(int epfd, int op, int fd, long event);

    @SaveError
    int epoll_wait(int epfd, long events, int maxevents, int timeoutMillis);

    @SaveError
    int getsockopt(int fd, int level, int optname, long optval, long optlen);

    /**
     * The vhost-user and vhost-pci transports receive and send fds with these instead of junixsocket's, whose
     * receive path caps the ancillary buffer at 60 fds and loses the fds the kernel installed when it truncates.
     */
    @SaveError
    long recvmsg(int fd, long msghdr, int flags);

    @SaveError
    long sendmsg(int fd, long msghdr, int flags);

    @SaveError
    int poll(long fds, long nfds, int timeoutMillis);

    @SaveError
    int shutdown(int fd, int how);

    @SaveError
    int socketpair(int domain, int type, int protocol, long sv);

    @SaveError
    int sched_setaffinity(int pid, long cpusetsize, long mask);

    int getpid();

    static int errno() {
        return RUNTIME.getLastError();
    }
}
