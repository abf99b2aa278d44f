package dev.vhostnet.dataplane.sys;

/** Anonymous shared memory files (memfd_create), used for guest memory in tests and for shared buffers. */
public final class MemFd {
    private MemFd() {
    }

    public static int create(final String name, final long size) {
        final int fd = (int) NativeException.check(LibC.INSTANCE.memfd_create(name, LibC.MFD_CLOEXEC), "memfd_create");
        if (LibC.INSTANCE.ftruncate(fd, size) < 0) {
            final int errno = LibC.errno();
            FileDescriptors.closeQuietly(fd);
            throw new NativeException("ftruncate", errno);
        }
        return fd;
    }
}
