package dev.vhostnet.spec.vhostpci;

/**
 * Constants of the vhost-pci socket protocol (spec/VHOST-PCI.md): message types, versions, roles,
 * capabilities, ops, flags, ACK statuses and reasons, limits.
 */
public final class VhostPci {
    private VhostPci() {
    }

    // ---- versions -------------------------------------------------------------------------------------
    /** Version of HELLO, of the ACK answering it, and the only version this implementation speaks. */
    public static final int VERSION_1 = 1;
    public static final int MIN_VERSION = 1;
    public static final int MAX_VERSION = 1;

    // ---- message types ----------------------------------------------------------------------------------
    public static final int HELLO = 1;
    public static final int MEMORY_INFO = 2;
    public static final int DEVICE_INFO = 3;
    public static final int FEATURE_BITS = 4;
    public static final int PEER_CONNECTION = 5;
    public static final int DIRTY_PAGE_LOGGING = 6;
    public static final int HEARTBEAT = 7;
    public static final int ACK = 8;
    public static final int MIN_TYPE = HELLO;
    public static final int MAX_TYPE = ACK;

    // ---- roles (HELLO.role) -------------------------------------------------------------------------------
    public static final int ROLE_DEVICE = 1;
    public static final int ROLE_CLIENT = 2;

    // ---- capabilities (HELLO.capabilities) ------------------------------------------------------------------
    public static final long CAP_PACKED_RING = 1L;
    public static final long CAP_DIRTY_LOG = 1L << 1;
    public static final long CAP_PEER_CONNECTION = 1L << 2;
    public static final long CAP_ALL = CAP_PACKED_RING | CAP_DIRTY_LOG | CAP_PEER_CONNECTION;

    // ---- ops ------------------------------------------------------------------------------------------------
    /** MEMORY_INFO and DEVICE_INFO op. */
    public static final int OP_ADD = 0;
    public static final int OP_DEL = 1;
    /** DIRTY_PAGE_LOGGING op. */
    public static final int LOG_STOP = 0;
    public static final int LOG_START = 1;
    /** HEARTBEAT op. */
    public static final int PING = 0;
    public static final int PONG = 1;
    /** PEER_CONNECTION state. */
    public static final int CONNECTION_OFF = 0;
    public static final int CONNECTION_ON = 1;

    // ---- DEVICE_INFO ------------------------------------------------------------------------------------------
    /** device_type: virtio device id of a network card (the only type version 1 defines). */
    public static final int DEVICE_NET = 1;
    public static final int FORMAT_SPLIT = 0;
    public static final int FORMAT_PACKED = 1;
    /** Queue state_flags. */
    public static final int STATE_AVAIL_WRAP = 1;
    public static final int STATE_USED_WRAP = 1 << 1;
    public static final int STATE_LOG = 1 << 2;
    /** Queue fd_flags: which eventfds are attached, kick before call. */
    public static final int FD_KICK = 1;
    public static final int FD_CALL = 1 << 1;

    // ---- FEATURE_BITS flags -------------------------------------------------------------------------------------
    public static final int FEATURES_NEGOTIATED = 1;

    // ---- ACK status ---------------------------------------------------------------------------------------------
    public static final int ADD_DONE = 0;
    public static final int ADD_FAIL = 1;
    public static final int DEL_DONE = 2;
    public static final int DEL_FAIL = 3;
    public static final int FEATURE_BITS_ACCEPTED = 4;
    public static final int DONE = 5;
    public static final int FAIL = 6;

    // ---- ACK reason ---------------------------------------------------------------------------------------------
    public static final int R_NONE = 0;
    public static final int R_VERSION_UNSUPPORTED = 1;
    public static final int R_ROLE_CONFLICT = 2;
    public static final int R_BUSY = 3;
    public static final int R_BAD_MESSAGE = 4;
    public static final int R_BAD_FDS = 5;
    public static final int R_MAP_FAILED = 6;
    public static final int R_OVERLAP = 7;
    public static final int R_TOO_MANY = 8;
    public static final int R_UNKNOWN_REGION = 9;
    public static final int R_REGION_IN_USE = 10;
    public static final int R_DEVICE_EXISTS = 11;
    public static final int R_UNKNOWN_DEVICE = 12;
    public static final int R_UNSUPPORTED_DEVICE = 13;
    public static final int R_FEATURES = 14;
    public static final int R_BAD_RING = 15;
    public static final int R_NOT_READY = 16;
    public static final int R_UNSUPPORTED = 17;
    public static final int R_SELF = 18;
    public static final int R_INTERNAL = 19;

    // ---- limits -------------------------------------------------------------------------------------------------
    /** Largest payload; a header announcing more is refused before the payload is read. */
    public static final int MAX_PAYLOAD = 4096;
    public static final int MAX_REGIONS = 32;
    public static final int MAX_VIRTQUEUES = 64;
    /** Most fds one message carries: DEVICE_INFO ADD with {@link #MAX_VIRTQUEUES} queues, kick and call each. */
    public static final int MAX_FDS = 2 * MAX_VIRTQUEUES;
    public static final int MAX_IN_FLIGHT = 32;

    public static final int DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
    public static final int DEFAULT_HEARTBEAT_TIMEOUT_MS = 5000;

    private static final String[] TYPE_NAMES = {
        "UNKNOWN", "HELLO", "MEMORY_INFO", "DEVICE_INFO", "FEATURE_BITS", "PEER_CONNECTION",
        "DIRTY_PAGE_LOGGING", "HEARTBEAT", "ACK"};
    private static final String[] STATUS_NAMES = {
        "ADD_DONE", "ADD_FAIL", "DEL_DONE", "DEL_FAIL", "FEATURE_BITS_ACCEPTED", "DONE", "FAIL"};
    private static final String[] REASON_NAMES = {
        "NONE", "VERSION_UNSUPPORTED", "ROLE_CONFLICT", "BUSY", "BAD_MESSAGE", "BAD_FDS", "MAP_FAILED",
        "OVERLAP", "TOO_MANY", "UNKNOWN_REGION", "REGION_IN_USE", "DEVICE_EXISTS", "UNKNOWN_DEVICE",
        "UNSUPPORTED_DEVICE", "FEATURES", "BAD_RING", "NOT_READY", "UNSUPPORTED", "SELF", "INTERNAL"};

    public static boolean isKnownType(final int type) {
        return type >= MIN_TYPE && type <= MAX_TYPE;
    }

    /** Messages answered by exactly one ACK (all but ACK and HEARTBEAT). */
    public static boolean isRequest(final int type) {
        return isKnownType(type) && type != ACK && type != HEARTBEAT;
    }

    public static String typeName(final int type) {
        return isKnownType(type) ? TYPE_NAMES[type] : "UNKNOWN(" + type + ")";
    }

    public static String statusName(final int status) {
        return status >= 0 && status < STATUS_NAMES.length ? STATUS_NAMES[status] : "UNKNOWN(" + status + ")";
    }

    public static String reasonName(final long reason) {
        return reason >= 0 && reason < REASON_NAMES.length ? REASON_NAMES[(int) reason] : "UNKNOWN(" + reason + ")";
    }

    /**
     * Whether {@code status} is a valid answer to a request of {@code type} with {@code op} (op matters for
     * MEMORY_INFO and DEVICE_INFO only).
     */
    public static boolean statusFits(final int type, final int op, final int status) {
        switch (type) {
            case MEMORY_INFO:
            case DEVICE_INFO:
                return op == OP_ADD ? status == ADD_DONE || status == ADD_FAIL
                    : op == OP_DEL && (status == DEL_DONE || status == DEL_FAIL);
            case FEATURE_BITS:
                return status == FEATURE_BITS_ACCEPTED || status == FAIL;
            case HELLO:
            case PEER_CONNECTION:
            case DIRTY_PAGE_LOGGING:
                return status == DONE || status == FAIL;
            default:
                return false;
        }
    }

    /** Whether an ACK status means success. */
    public static boolean isSuccess(final int status) {
        return status == ADD_DONE || status == DEL_DONE || status == FEATURE_BITS_ACCEPTED || status == DONE;
    }

    /**
     * Version both sides use, or -1 when the ranges {@code [minA, maxA]} and {@code [minB, maxB]} do not
     * overlap: the highest common version.
     */
    public static int agreedVersion(final int minA, final int maxA, final int minB, final int maxB) {
        if (minA > maxA || minB > maxB || minA < 1 || minB < 1) {
            return -1;
        }
        final int v = Math.min(maxA, maxB);
        return v >= Math.max(minA, minB) ? v : -1;
    }
}
