package dev.vhostnet.spec.vhostpci;

import org.agrona.DirectBuffer;

import java.nio.ByteOrder;

/**
 * Length and fd rules of spec/VHOST-PCI.md §5.9: whether a received buffer holds a message whose length is
 * consistent with its type, and how many fds it must come with. Reads only fields that lie inside the bytes
 * the header announces, never allocates.
 */
public final class VhostPciMessages {
    public static final int OK = 0;
    /** Fewer than 32 bytes: no complete header. */
    public static final int ERR_SHORT_HEADER = -1;
    /** msg_type outside 1..8. */
    public static final int ERR_UNKNOWN_TYPE = -2;
    /** msg_len above {@link VhostPci#MAX_PAYLOAD}: refuse before reading the payload. */
    public static final int ERR_TOO_LONG = -3;
    /** Fewer bytes than header + msg_len. */
    public static final int ERR_TRUNCATED = -4;
    /** msg_len differs from what the type and its count fields imply (or cannot hold the fixed part). */
    public static final int ERR_BAD_LENGTH = -5;
    /** A count field (nregions, nvqs) outside its range. */
    public static final int ERR_BAD_COUNT = -6;
    /** An op / state / status field with a value the type does not define. */
    public static final int ERR_BAD_OP = -7;

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private VhostPciMessages() {
    }

    /**
     * Check the message starting at {@code offset}, of which {@code available} bytes were received.
     *
     * @return {@link #OK} or one of the negative {@code ERR_*} codes
     */
    public static int validate(final DirectBuffer buffer, final int offset, final int available) {
        if (available < VhostPciHeader.LENGTH) {
            return ERR_SHORT_HEADER;
        }
        final int header = validateHeader(buffer, offset);
        if (header != OK) {
            return header;
        }
        final long len = msgLen(buffer, offset);
        if (available - VhostPciHeader.LENGTH < len) {
            return ERR_TRUNCATED;
        }
        return validatePayload(type(buffer, offset), buffer, offset + VhostPciHeader.LENGTH, (int) len);
    }

    /** The checks that can be made on the 32 header bytes alone, before any payload byte is read. */
    public static int validateHeader(final DirectBuffer buffer, final int offset) {
        if (!VhostPci.isKnownType(type(buffer, offset))) {
            return ERR_UNKNOWN_TYPE;
        }
        if (msgLen(buffer, offset) > VhostPci.MAX_PAYLOAD) {
            return ERR_TOO_LONG;
        }
        return OK;
    }

    /** Whether a payload of {@code msgLen} bytes at {@code payloadOffset} is consistent with {@code type}. */
    public static int validatePayload(final int type, final DirectBuffer buffer, final int payloadOffset,
                                      final int msgLen) {
        final int expected = lengthFor(type, buffer, payloadOffset, msgLen);
        if (expected < 0) {
            return expected;
        }
        return expected == msgLen ? OK : ERR_BAD_LENGTH;
    }

    /**
     * The payload length a message of {@code type} must have, computed from its fixed part (op and count
     * fields), which is read only if it lies within {@code msgLen}. For HELLO, which later versions may extend,
     * any {@code msgLen} of at least 32 is its own answer.
     *
     * @return the expected msg_len, or a negative {@code ERR_*} code
     */
    public static int lengthFor(final int type, final DirectBuffer buffer, final int payloadOffset,
                                final int msgLen) {
        switch (type) {
            case VhostPci.HELLO:
                return msgLen >= HelloMessage.LENGTH ? msgLen : ERR_BAD_LENGTH;
            case VhostPci.MEMORY_INFO: {
                if (msgLen < MemoryInfoMessage.HEADER_LENGTH) {
                    return ERR_BAD_LENGTH;
                }
                final int op = u16(buffer, payloadOffset);
                if (op != VhostPci.OP_ADD && op != VhostPci.OP_DEL) {
                    return ERR_BAD_OP;
                }
                final long n = u32(buffer, payloadOffset + 4);
                if (n < 1 || n > VhostPci.MAX_REGIONS) {
                    return ERR_BAD_COUNT;
                }
                return MemoryInfoMessage.lengthFor((int) n);
            }
            case VhostPci.DEVICE_INFO: {
                if (msgLen < DeviceInfoMessage.HEADER_LENGTH) {
                    return ERR_BAD_LENGTH;
                }
                final int op = u16(buffer, payloadOffset);
                if (op != VhostPci.OP_ADD && op != VhostPci.OP_DEL) {
                    return ERR_BAD_OP;
                }
                final long n = u32(buffer, payloadOffset + 4);
                if (n > VhostPci.MAX_VIRTQUEUES || (op == VhostPci.OP_ADD && n < 1)) {
                    return ERR_BAD_COUNT;
                }
                return DeviceInfoMessage.lengthFor(op, (int) n);
            }
            case VhostPci.FEATURE_BITS:
                return FeatureBitsMessage.LENGTH;
            case VhostPci.PEER_CONNECTION:
                if (msgLen < PeerConnectionMessage.LENGTH) {
                    return ERR_BAD_LENGTH;
                }
                return twoValued(u16(buffer, payloadOffset), PeerConnectionMessage.LENGTH);
            case VhostPci.DIRTY_PAGE_LOGGING:
                if (msgLen < DirtyPageLoggingMessage.LENGTH) {
                    return ERR_BAD_LENGTH;
                }
                return twoValued(u16(buffer, payloadOffset), DirtyPageLoggingMessage.LENGTH);
            case VhostPci.HEARTBEAT:
                if (msgLen < HeartbeatMessage.LENGTH) {
                    return ERR_BAD_LENGTH;
                }
                return twoValued(u16(buffer, payloadOffset), HeartbeatMessage.LENGTH);
            case VhostPci.ACK: {
                if (msgLen < AckMessage.HEADER_LENGTH) {
                    return ERR_BAD_LENGTH;
                }
                if (u16(buffer, payloadOffset + 10) > VhostPci.FAIL) {
                    return ERR_BAD_OP;
                }
                final long n = u32(buffer, payloadOffset + 24);
                if (n > VhostPci.MAX_VIRTQUEUES) {
                    return ERR_BAD_COUNT;
                }
                return AckMessage.lengthFor((int) n);
            }
            default:
                return ERR_UNKNOWN_TYPE;
        }
    }

    /**
     * Number of fds a message of {@code type} must come with; call only on a payload that passed
     * {@link #validatePayload}.
     */
    public static int expectedFds(final int type, final DirectBuffer buffer, final int payloadOffset) {
        switch (type) {
            case VhostPci.MEMORY_INFO:
                return u16(buffer, payloadOffset) == VhostPci.OP_ADD ? (int) u32(buffer, payloadOffset + 4) : 0;
            case VhostPci.DEVICE_INFO: {
                if (u16(buffer, payloadOffset) != VhostPci.OP_ADD) {
                    return 0;
                }
                final int n = (int) u32(buffer, payloadOffset + 4);
                int fds = 0;
                for (int i = 0; i < n; i++) {
                    final int flags = buffer.getByte(payloadOffset + DeviceInfoMessage.HEADER_LENGTH
                        + i * VirtqInfo.LENGTH + 11) & (VhostPci.FD_KICK | VhostPci.FD_CALL);
                    fds += Integer.bitCount(flags);
                }
                return fds;
            }
            case VhostPci.DIRTY_PAGE_LOGGING:
                return u16(buffer, payloadOffset) == VhostPci.LOG_START ? 1 : 0;
            default:
                return 0;
        }
    }

    public static String describe(final int code) {
        switch (code) {
            case OK:
                return "ok";
            case ERR_SHORT_HEADER:
                return "incomplete header";
            case ERR_UNKNOWN_TYPE:
                return "unknown message type";
            case ERR_TOO_LONG:
                return "payload longer than " + VhostPci.MAX_PAYLOAD + " bytes";
            case ERR_TRUNCATED:
                return "payload shorter than msg_len";
            case ERR_BAD_LENGTH:
                return "msg_len inconsistent with the message type";
            case ERR_BAD_COUNT:
                return "count field out of range";
            case ERR_BAD_OP:
                return "undefined op/state/status value";
            default:
                return "error " + code;
        }
    }

    private static int twoValued(final int op, final int length) {
        return op == 0 || op == 1 ? length : ERR_BAD_OP;
    }

    private static int type(final DirectBuffer buffer, final int offset) {
        return u16(buffer, offset + VhostPciHeader.TYPE_OFFSET);
    }

    private static long msgLen(final DirectBuffer buffer, final int offset) {
        return u32(buffer, offset + VhostPciHeader.LEN_OFFSET);
    }

    private static int u16(final DirectBuffer buffer, final int at) {
        return buffer.getShort(at, LE) & 0xFFFF;
    }

    private static long u32(final DirectBuffer buffer, final int at) {
        return buffer.getInt(at, LE) & 0xFFFF_FFFFL;
    }
}
