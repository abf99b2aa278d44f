package dev.vhostnet.dataplane.sys;

/** A failed system call, with the errno it set. */
public final class NativeException extends RuntimeException {
    private final int errno;

    public NativeException(final String call, final int errno) {
        super(call + " failed: errno " + errno + " (" + Errno.describe(errno) + ")");
        this.errno = errno;
    }

    public int errno() {
        return errno;
    }

    /** Throws for a negative return value, with the current errno. */
    public static long check(final long rc, final String call) {
        if (rc < 0) {
            throw new NativeException(call, LibC.errno());
        }
        return rc;
    }
}
