package dev.vhostnet.spec;

/**
 * The 12-byte header that starts every vhost-user message: request (u32), flags (u32), size (u32) of
 * the payload that follows. Flags bits 0-1 carry the protocol version (always 1), bit 2 marks a reply,
 * bit 3 asks for a reply (REPLY_ACK).
 */
public final class VhostUserHeader extends Flyweight {
    public static final int LENGTH = 12;
    public static final int REQUEST_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int SIZE_OFFSET = 8;

    public static final int VERSION_MASK = 0x3;
    public static final int VERSION = 0x1;
    public static final int FLAG_REPLY = 1 << 2;
    public static final int FLAG_NEED_REPLY = 1 << 3;

    /**
     * Largest payload any request of the spec defines (memory table: 8 + 8 * 32 bytes; config space:
     * 12 + 256 bytes). Anything larger is refused before it is read.
     */
    public static final int MAX_PAYLOAD = 4096;

    /** Most fds one message carries (memory table with VHOST_MEMORY_BASELINE_NREGIONS regions). */
    public static final int MAX_FDS = 8;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int request() {
        return (int) u32(REQUEST_OFFSET);
    }

    public VhostUserHeader request(final int request) {
        u32(REQUEST_OFFSET, request);
        return this;
    }

    public int flags() {
        return (int) u32(FLAGS_OFFSET);
    }

    public VhostUserHeader flags(final int flags) {
        u32(FLAGS_OFFSET, flags);
        return this;
    }

    /** Payload size as an unsigned value; may exceed int range in a hostile message. */
    public long size() {
        return u32(SIZE_OFFSET);
    }

    public VhostUserHeader size(final int size) {
        u32(SIZE_OFFSET, size);
        return this;
    }

    public int version() {
        return flags() & VERSION_MASK;
    }

    public boolean isReply() {
        return (flags() & FLAG_REPLY) != 0;
    }

    public boolean needsReply() {
        return (flags() & FLAG_NEED_REPLY) != 0;
    }
}
