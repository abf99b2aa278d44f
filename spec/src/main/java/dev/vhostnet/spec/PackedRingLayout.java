package dev.vhostnet.spec;

/**
 * Packed virtqueue layout (virtio 1.x section 2.8): one ring of 16-byte descriptors and two 4-byte event
 * suppression structures (driver area and device area).
 */
public final class PackedRingLayout {
    public static final int MAX_QUEUE_SIZE = 32768;

    // struct pvirtq_desc
    public static final int DESC_SIZE = 16;
    public static final int DESC_ADDR = 0;
    public static final int DESC_LEN = 8;
    public static final int DESC_ID = 12;
    public static final int DESC_FLAGS = 14;
    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;
    public static final int DESC_F_AVAIL = 1 << 7;
    public static final int DESC_F_USED = 1 << 15;

    // struct pvirtq_event_suppress
    public static final int EVENT_SIZE = 4;
    public static final int EVENT_OFF_WRAP = 0;
    public static final int EVENT_FLAGS = 2;
    public static final int EVENT_FLAGS_ENABLE = 0;
    public static final int EVENT_FLAGS_DISABLE = 1;
    public static final int EVENT_FLAGS_DESC = 2;
    /** Bit 15 of off_wrap is the wrap counter; bits 0-14 the descriptor offset. */
    public static final int EVENT_WRAP_BIT = 15;

    /**
     * vhost-user encodes packed ring positions in the 32-bit "num" of SET/GET_VRING_BASE: bits 0-14 the
     * last avail index, bit 15 its wrap counter; bits 16-30 the last used index, bit 31 its wrap counter.
     */
    public static final int BASE_WRAP_BIT = 15;

    private PackedRingLayout() {
    }

    public static long ringSize(final int queueSize) {
        return (long) DESC_SIZE * queueSize;
    }
}
