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

    @SaveError
    int sched_setaffinity(int pid, long cpusetsize, long mask);

    int getpid();

    static int errno() {
        return RUNTIME.getLastError();
    }
}
