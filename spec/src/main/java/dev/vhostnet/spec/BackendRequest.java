package dev.vhostnet.spec;

/** Request ids of messages the back-end sends to the front-end over the back-end channel. */
public final class BackendRequest {
    public static final int IOTLB_MSG = 1;
    public static final int CONFIG_CHANGE_MSG = 2;
    public static final int VRING_HOST_NOTIFIER_MSG = 3;
    public static final int VRING_CALL = 4;
    public static final int VRING_ERR = 5;
    public static final int SHARED_OBJECT_ADD = 6;
    public static final int SHARED_OBJECT_REMOVE = 7;
    public static final int SHARED_OBJECT_LOOKUP = 8;
    public static final int SHMEM_MAP = 9;
    public static final int SHMEM_UNMAP = 10;

    public static final int MAX = SHMEM_UNMAP;

    private static final String[] NAMES = {
        "NONE", "IOTLB_MSG", "CONFIG_CHANGE_MSG", "VRING_HOST_NOTIFIER_MSG", "VRING_CALL", "VRING_ERR",
        "SHARED_OBJECT_ADD", "SHARED_OBJECT_REMOVE", "SHARED_OBJECT_LOOKUP", "SHMEM_MAP", "SHMEM_UNMAP",
    };

    private BackendRequest() {
    }

    public static String name(final int request) {
        return request > 0 && request < NAMES.length ? NAMES[request] : "UNKNOWN(" + Integer.toUnsignedString(request) + ")";
    }
}
