package dev.vhostnet.spec;

/** Request ids of messages the front-end sends to the back-end (vhost-user "front-end message types"). */
public final class FrontendRequest {
    public static final int GET_FEATURES = 1;
    public static final int SET_FEATURES = 2;
    public static final int SET_OWNER = 3;
    public static final int RESET_OWNER = 4;
    public static final int SET_MEM_TABLE = 5;
    public static final int SET_LOG_BASE = 6;
    public static final int SET_LOG_FD = 7;
    public static final int SET_VRING_NUM = 8;
    public static final int SET_VRING_ADDR = 9;
    public static final int SET_VRING_BASE = 10;
    public static final int GET_VRING_BASE = 11;
    public static final int SET_VRING_KICK = 12;
    public static final int SET_VRING_CALL = 13;
    public static final int SET_VRING_ERR = 14;
    public static final int GET_PROTOCOL_FEATURES = 15;
    public static final int SET_PROTOCOL_FEATURES = 16;
    public static final int GET_QUEUE_NUM = 17;
    public static final int SET_VRING_ENABLE = 18;
    public static final int SEND_RARP = 19;
    public static final int NET_SET_MTU = 20;
    public static final int SET_BACKEND_REQ_FD = 21;
    public static final int IOTLB_MSG = 22;
    public static final int SET_VRING_ENDIAN = 23;
    public static final int GET_CONFIG = 24;
    public static final int SET_CONFIG = 25;
    public static final int CREATE_CRYPTO_SESSION = 26;
    public static final int CLOSE_CRYPTO_SESSION = 27;
    public static final int POSTCOPY_ADVISE = 28;
    public static final int POSTCOPY_LISTEN = 29;
    public static final int POSTCOPY_END = 30;
    public static final int GET_INFLIGHT_FD = 31;
    public static final int SET_INFLIGHT_FD = 32;
    public static final int GPU_SET_SOCKET = 33;
    public static final int RESET_DEVICE = 34;
    public static final int VRING_KICK = 35;
    public static final int GET_MAX_MEM_SLOTS = 36;
    public static final int ADD_MEM_REG = 37;
    public static final int REM_MEM_REG = 38;
    public static final int SET_STATUS = 39;
    public static final int GET_STATUS = 40;
    public static final int GET_SHARED_OBJECT = 41;
    public static final int SET_DEVICE_STATE_FD = 42;
    public static final int CHECK_DEVICE_STATE = 43;
    public static final int GET_SHMEM_CONFIG = 44;

    /** Highest id defined; ids above it are unknown. */
    public static final int MAX = GET_SHMEM_CONFIG;

    private static final String[] NAMES = {
        "NONE", "GET_FEATURES", "SET_FEATURES", "SET_OWNER", "RESET_OWNER", "SET_MEM_TABLE", "SET_LOG_BASE",
        "SET_LOG_FD", "SET_VRING_NUM", "SET_VRING_ADDR", "SET_VRING_BASE", "GET_VRING_BASE", "SET_VRING_KICK",
        "SET_VRING_CALL", "SET_VRING_ERR", "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES", "GET_QUEUE_NUM",
        "SET_VRING_ENABLE", "SEND_RARP", "NET_SET_MTU", "SET_BACKEND_REQ_FD", "IOTLB_MSG", "SET_VRING_ENDIAN",
        "GET_CONFIG", "SET_CONFIG", "CREATE_CRYPTO_SESSION", "CLOSE_CRYPTO_SESSION", "POSTCOPY_ADVISE",
        "POSTCOPY_LISTEN", "POSTCOPY_END", "GET_INFLIGHT_FD", "SET_INFLIGHT_FD", "GPU_SET_SOCKET",
        "RESET_DEVICE", "VRING_KICK", "GET_MAX_MEM_SLOTS", "ADD_MEM_REG", "REM_MEM_REG", "SET_STATUS",
        "GET_STATUS", "GET_SHARED_OBJECT", "SET_DEVICE_STATE_FD", "CHECK_DEVICE_STATE", "GET_SHMEM_CONFIG",
    };

    private FrontendRequest() {
    }

    public static String name(final int request) {
        return request > 0 && request < NAMES.length ? NAMES[request] : "UNKNOWN(" + Integer.toUnsignedString(request) + ")";
    }
}
