package dev.vhostnet.dataplane.sys;

/**
 * File seals (fcntl(2) F_GET_SEALS / F_ADD_SEALS): properties of a file, not of one fd, that nobody can remove
 * once set. Only memfds created with MFD_ALLOW_SEALING (tmpfs- or hugetlbfs-backed) accept new seals; other
 * tmpfs and hugetlbfs files report {@link LibC#F_SEAL_SEAL} alone, and other file types have no seals at all.
 */
public final class Seals {
    /** {@link #get} of a file whose type has no seals (EINVAL: a regular file, a socket, an eventfd, ...). */
    public static final int UNSUPPORTED = -1;

    private Seals() {
    }

    /** The seals of the file behind {@code fd}, or {@link #UNSUPPORTED}. */
    public static int get(final int fd) {
        final int seals = LibC.INSTANCE.fcntl(fd, LibC.F_GET_SEALS, 0);
        if (seals >= 0) {
            return seals;
        }
        final int errno = LibC.errno();
        if (errno == LibC.EINVAL) {
            return UNSUPPORTED;
        }
        throw new NativeException("fcntl(F_GET_SEALS)", errno);
    }

    /** Add {@code seals}; returns 0 or the errno (EPERM: F_SEAL_SEAL is set; EINVAL: no seals on this file). */
    public static int add(final int fd, final int seals) {
        return LibC.INSTANCE.fcntl(fd, LibC.F_ADD_SEALS, seals) == 0 ? 0 : LibC.errno();
    }

    /** Whether {@code seals} (a {@link #get} result) include every bit of {@code wanted}. */
    public static boolean has(final int seals, final int wanted) {
        return seals != UNSUPPORTED && (seals & wanted) == wanted;
    }
}
