package dev.vhostnet.dataplane.sys;

/** Anonymous shared memory files (memfd_create), used for guest memory in tests and for shared buffers. */
public final class MemFd {
    /** Seals of a buffer we create and hand out, as QEMU's memory-backend-memfd sets them (seal=on). */
    public static final int HANDED_OUT_SEALS = LibC.F_SEAL_SHRINK | LibC.F_SEAL_GROW | LibC.F_SEAL_SEAL;

    private MemFd() {
    }

    /** A memfd of {@code size} bytes that accepts seals and has none yet. */
    public static int create(final String name, final long size) {
        return create(name, size, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
    }

    /**
     * A memfd with explicit memfd_create(2) flags; without {@link LibC#MFD_ALLOW_SEALING} the file is born with
     * F_SEAL_SEAL and can never be sealed against shrinking (as DPDK's no-huge memory is).
     */
    public static int create(final String name, final long size, final int flags) {
        final int fd = (int) NativeException.check(LibC.INSTANCE.memfd_create(name, flags), "memfd_create");
        if (LibC.INSTANCE.ftruncate(fd, size) < 0) {
            final int errno = LibC.errno();
            FileDescriptors.closeQuietly(fd);
            throw new NativeException("ftruncate", errno);
        }
        return fd;
    }

    /**
     * A memfd of {@code size} bytes with {@link #HANDED_OUT_SEALS}: whoever we hand it to cannot shrink it under
     * our mapping (SIGBUS), nor grow it or add seals.
     */
    public static int createSealed(final String name, final long size) {
        final int fd = create(name, size);
        final int errno = Seals.add(fd, HANDED_OUT_SEALS);
        if (errno != 0) {
            FileDescriptors.closeQuietly(fd);
            throw new NativeException("fcntl(F_ADD_SEALS)", errno);
        }
        return fd;
    }
}
