package dev.vhostnet.dataplane.testing;

import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.NativeException;
import jnr.ffi.LibraryLoader;
import jnr.ffi.annotations.In;
import jnr.ffi.annotations.SaveError;

import java.nio.file.Path;

/** Raw fds of named files (a tmpfs file under /dev/shm, a regular file), as memory-backend-file would pass them. */
public final class PosixFiles {
    /** open(2), which the back-end itself never needs. */
    public interface Open {
        @SaveError
        int open(@In String path, int flags, int mode);
    }

    private static final Open OPEN = LibraryLoader.create(Open.class).load("c");
    private static final int O_RDWR = 2;
    private static final int O_CREAT = 0x40;
    private static final int O_CLOEXEC = 0x80000;

    private PosixFiles() {
    }

    /** Create (or open) {@code path} read-write with {@code size} bytes; the caller owns the fd. */
    public static int create(final Path path, final long size) {
        final int fd = OPEN.open(path.toString(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            throw new NativeException("open(" + path + ")", LibC.errno());
        }
        if (LibC.INSTANCE.ftruncate(fd, size) < 0) {
            final int errno = LibC.errno();
            LibC.INSTANCE.close(fd);
            throw new NativeException("ftruncate", errno);
        }
        return fd;
    }
}
