package dev.vhostnet.dataplane.virtq;

import org.agrona.BufferUtil;
import org.agrona.concurrent.AtomicBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * Per-queue counters in the style of Aeron counters: one writer (the dataplane thread) updates them with
 * ordered stores, readers (the stats printer, tests) read them with volatile loads. Each counter sits on
 * its own cache line so the reader never makes the writer's line bounce.
 */
public final class QueueCounters {
    public static final int PACKETS = 0;
    public static final int BYTES = 1;
    public static final int DROPS = 2;
    public static final int KICKS = 3;
    public static final int CALLS = 4;
    public static final int ERRORS = 5;
    /** IOTLB misses sent to the front-end (VIRTIO_F_ACCESS_PLATFORM), de-duplicated requests not counted. */
    public static final int IOTLB_MISSES = 6;
    private static final int COUNT = 7;
    private static final String[] NAMES = {"packets", "bytes", "drops", "kicks", "calls", "errors", "iotlb-misses"};
    private static final int STRIDE = 64;

    private final AtomicBuffer values = new UnsafeBuffer(BufferUtil.allocateDirectAligned(COUNT * STRIDE, 64));
    /** Times a queue with these counters broke, and the last reason; written by whoever fails the queue. */
    private volatile long breaks;
    private volatile QueueError lastBreak = QueueError.NONE;

    /** Single-writer increment: plain read, ordered (release) write. Dataplane thread only. */
    public void add(final int counter, final long delta) {
        final int at = counter * STRIDE;
        values.putLongOrdered(at, values.getLong(at) + delta);
    }

    /**
     * Record that the queue broke (one writer at a time: the queue's dataplane thread, or the control plane while
     * the dataplane is parked). Lets the reporter log every breakage, also one that a reset and a new breakage
     * with the same error followed before it looked.
     */
    public void noteBreak(final QueueError why) {
        lastBreak = why;
        breaks = breaks + 1;
    }

    public long breaks() {
        return breaks;
    }

    /** The reason of the latest breakage (read after {@link #breaks}). */
    public QueueError lastBreak() {
        return lastBreak;
    }

    public long get(final int counter) {
        return values.getLongVolatile(counter * STRIDE);
    }

    public static String name(final int counter) {
        return NAMES[counter];
    }

    public static int size() {
        return COUNT;
    }

    /** "packets=.. bytes=.. drops=.. kicks=.. calls=.. errors=.. iotlb-misses=..". */
    public String format() {
        final StringBuilder sb = new StringBuilder();
        for (int i = 0; i < COUNT; i++) {
            if (i > 0) {
                sb.append(' ');
            }
            sb.append(NAMES[i]).append('=').append(get(i));
        }
        return sb.toString();
    }
}
