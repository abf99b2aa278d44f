package dev.vhostnet.backend.transport;

/**
 * Layouts of the structures recvmsg(2)/sendmsg(2)/poll(2) take, which {@link UnixMessageSocket} builds in
 * off-heap scratch memory and passes by address. x86_64/aarch64 Linux (LP64).
 */
final class MsgHdr {
    /** struct msghdr: msg_name, msg_namelen, msg_iov, msg_iovlen, msg_control, msg_controllen, msg_flags. */
    static final int MSGHDR_IOV = 16;
    static final int MSGHDR_IOVLEN = 24;
    static final int MSGHDR_CONTROL = 32;
    static final int MSGHDR_CONTROLLEN = 40;
    static final int MSGHDR_FLAGS = 48;
    static final int MSGHDR_SIZE = 56;
    /** struct iovec: iov_base, iov_len. */
    static final int IOVEC_SIZE = 16;
    /** struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type, then the data, 8-byte aligned. */
    static final int CMSG_LEVEL = 8;
    static final int CMSG_TYPE = 12;
    static final int CMSG_HEADER = 16;
    /** struct pollfd: fd, events, revents. */
    static final int POLLFD_SIZE = 8;

    private MsgHdr() {
    }

    /** CMSG_ALIGN: cmsg lengths are padded to the size of size_t. */
    static long align(final long n) {
        return (n + 7) & ~7L;
    }
}
