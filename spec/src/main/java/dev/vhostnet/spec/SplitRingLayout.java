package dev.vhostnet.spec;

/**
 * Split virtqueue layout (virtio 1.x section 2.7): a descriptor table of 16-byte entries, the driver's
 * available ring and the device's used ring. Sizes are in bytes, offsets from the start of each part.
 */
public final class SplitRingLayout {
    public static final int MAX_QUEUE_SIZE = 32768;

    // struct virtq_desc
    public static final int DESC_SIZE = 16;
    public static final int DESC_ADDR = 0;
    public static final int DESC_LEN = 8;
    public static final int DESC_FLAGS = 12;
    public static final int DESC_NEXT = 14;
    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;

    // struct virtq_avail
    public static final int AVAIL_FLAGS = 0;
    public static final int AVAIL_IDX = 2;
    public static final int AVAIL_RING = 4;
    public static final int AVAIL_F_NO_INTERRUPT = 1;

    // struct virtq_used
    public static final int USED_FLAGS = 0;
    public static final int USED_IDX = 2;
    public static final int USED_RING = 4;
    public static final int USED_ELEM_SIZE = 8;
    public static final int USED_ELEM_ID = 0;
    public static final int USED_ELEM_LEN = 4;
    public static final int USED_F_NO_NOTIFY = 1;

    public static final int DESC_ALIGN = 16;
    public static final int AVAIL_ALIGN = 2;
    public static final int USED_ALIGN = 4;

    private SplitRingLayout() {
    }

    public static long descTableSize(final int queueSize) {
        return (long) DESC_SIZE * queueSize;
    }

    /** flags, idx, ring[queueSize], used_event. */
    public static long availRingSize(final int queueSize) {
        return 4L + 2L * queueSize + 2;
    }

    /** flags, idx, ring[queueSize], avail_event. */
    public static long usedRingSize(final int queueSize) {
        return 4L + (long) USED_ELEM_SIZE * queueSize + 2;
    }

    /** Offset within the avail ring of used_event (EVENT_IDX). */
    public static int usedEventOffset(final int queueSize) {
        return AVAIL_RING + 2 * queueSize;
    }

    /** Offset within the used ring of avail_event (EVENT_IDX). */
    public static int availEventOffset(final int queueSize) {
        return USED_RING + USED_ELEM_SIZE * queueSize;
    }

    /**
     * The virtio "need event" test: whether moving an index from {@code oldIdx} to {@code newIdx} crossed
     * {@code eventIdx}, all modulo 2^16.
     */
    public static boolean needEvent(final int eventIdx, final int newIdx, final int oldIdx) {
        return ((newIdx - eventIdx - 1) & 0xFFFF) < ((newIdx - oldIdx) & 0xFFFF);
    }

    public static boolean isPowerOfTwo(final long n) {
        return n > 0 && (n & (n - 1)) == 0;
    }
}
