package dev.vhostnet.dataplane.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Plain fd helpers: close, size, flags, kind. */
public final class FileDescriptors {
    private FileDescriptors() {
    }

    /**
     * What /proc names the file behind {@code fd} ("/memfd:guest (deleted)", "/dev/shm/vm0",
     * "anon_inode:[eventfd]", "socket:[1234]"), or null if it cannot be read. Control plane only (a syscall and
     * an allocation).
     */
    public static String procName(final int fd) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
        } catch (final IOException | UnsupportedOperationException e) {
            return null;
        }
    }

    /** Close an fd we own; -1 is ignored. Errors are not interesting at close time. */
    public static void closeQuietly(final int fd) {
        if (fd >= 0) {
            LibC.INSTANCE.close(fd);
        }
    }

    /** Current size of the file behind {@code fd} (memfd, shm, hugetlbfs file). */
    public static long size(final int fd) {
        final long end = NativeException.check(LibC.INSTANCE.lseek(fd, 0, LibC.SEEK_END), "lseek");
        LibC.INSTANCE.lseek(fd, 0, LibC.SEEK_SET);
        return end;
    }

    /** Whether {@code fd} is open in this process. */
    public static boolean isOpen(final int fd) {
        return fd >= 0 && LibC.INSTANCE.fcntl(fd, LibC.F_GETFD, 0) >= 0;
    }

    public static void setNonBlocking(final int fd) {
        final int flags = (int) NativeException.check(LibC.INSTANCE.fcntl(fd, LibC.F_GETFL, 0), "fcntl(F_GETFL)");
        NativeException.check(LibC.INSTANCE.fcntl(fd, LibC.F_SETFL, flags | LibC.O_NONBLOCK), "fcntl(F_SETFL)");
    }

    public static int dup(final int fd) {
        return (int) NativeException.check(LibC.INSTANCE.dup(fd), "dup");
    }

    /** Whether {@code fd} is a socket in the listening state (SO_ACCEPTCONN). */
    public static boolean isListeningSocket(final int fd) {
        final NativeScratch scratch = new NativeScratch(16);
        scratch.buffer().putInt(8, 4);
        NativeException.check(LibC.INSTANCE.getsockopt(fd, LibC.SOL_SOCKET, LibC.SO_ACCEPTCONN,
            scratch.address(), scratch.address() + 8), "getsockopt(SO_ACCEPTCONN)");
        return scratch.buffer().getInt(0) != 0;
    }

    /** Pin the calling thread to one CPU. */
    public static void pinCurrentThread(final int cpu) {
        if (cpu < 0 || cpu >= 1024) {
            throw new IllegalArgumentException("cpu out of range: " + cpu);
        }
        final NativeScratch mask = new NativeScratch(128);
        mask.buffer().putLong((cpu / 64) * 8, 1L << (cpu % 64));
        NativeException.check(LibC.INSTANCE.sched_setaffinity(0, 128, mask.address()), "sched_setaffinity");
    }
}
