package dev.vhostnet.spec;

/** Device-independent virtio feature bits, plus the two vhost(-user) specific ones. */
public final class VirtioFeature {
    public static final int NOTIFY_ON_EMPTY = 24;
    /** vhost: log every write into guest memory (live migration). */
    public static final int VHOST_F_LOG_ALL = 26;
    public static final int ANY_LAYOUT = 27;
    public static final int RING_INDIRECT_DESC = 28;
    public static final int RING_EVENT_IDX = 29;
    /** vhost-user: GET/SET_PROTOCOL_FEATURES are available (never seen by the guest). */
    public static final int VHOST_USER_F_PROTOCOL_FEATURES = 30;
    public static final int VERSION_1 = 32;
    public static final int ACCESS_PLATFORM = 33;
    public static final int RING_PACKED = 34;
    public static final int IN_ORDER = 35;
    public static final int ORDER_PLATFORM = 36;
    public static final int SR_IOV = 37;
    public static final int NOTIFICATION_DATA = 38;
    public static final int NOTIF_CONFIG_DATA = 39;
    public static final int RING_RESET = 40;
    public static final int ADMIN_VQ = 41;

    private VirtioFeature() {
    }

    public static long bit(final int feature) {
        return 1L << feature;
    }

    public static boolean has(final long features, final int feature) {
        return (features & (1L << feature)) != 0;
    }
}
