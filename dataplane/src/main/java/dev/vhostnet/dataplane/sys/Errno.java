package dev.vhostnet.dataplane.sys;

/** Human-readable names for the errno values the back-end is likely to meet. */
public final class Errno {
    private Errno() {
    }

    public static String describe(final int errno) {
        switch (errno) {
            case 1: return "EPERM";
            case 2: return "ENOENT";
            case 4: return "EINTR";
            case 9: return "EBADF";
            case 11: return "EAGAIN";
            case 12: return "ENOMEM";
            case 13: return "EACCES";
            case 14: return "EFAULT";
            case 16: return "EBUSY";
            case 19: return "ENODEV";
            case 22: return "EINVAL";
            case 24: return "EMFILE";
            case 28: return "ENOSPC";
            case 32: return "EPIPE";
            case 38: return "ENOSYS";
            case 75: return "EOVERFLOW";
            case 88: return "ENOTSOCK";
            case 104: return "ECONNRESET";
            case 107: return "ENOTCONN";
            default: return "errno " + errno;
        }
    }
}
