package dev.vhostnet.bench.latency;

import org.agrona.concurrent.UnsafeBuffer;

/**
 * One frame in flight at a time from one port's TX to another port's RX: stamp {@code System.nanoTime()},
 * publish the frame (release store of avail->idx, plus a kick only if the device asks for one), busy-poll
 * the far port's used ring until a frame with this sequence number shows up, stamp again. Then give the RX
 * buffer back and wait for the TX completion, so the next sample starts with both rings quiet.
 *
 * <p>Allocation-free per sample: the loop reads and writes guest memory through preallocated views only.
 */
public final class LatencyProbe {
    /** Locally administered MACs: B's then A's (dst, src). */
    private static final short DST_MAC_LO = 0x0002;
    private static final int ETHERTYPE = 0x88B5; // IEEE local experimental
    private static final int MAGIC = 0x564C4154; // "VLAT"
    private static final int OFF_MAGIC = 14;
    private static final int OFF_SEQ = 18;
    private static final int DEADLINE_CHECK_MASK = 0xFFF;

    private final PolledPort from;
    private final PolledPort to;
    private final int frameLength;
    private long seq = 1;
    private long lost;
    private long stale;
    private long kicked;
    private long badLength;
    private long txTimeouts;

    public LatencyProbe(final PolledPort from, final PolledPort to, final int frameLength) {
        if (frameLength < OFF_SEQ + 8) {
            throw new IllegalArgumentException("frame length " + frameLength);
        }
        this.from = from;
        this.to = to;
        this.frameLength = frameLength;
    }

    /**
     * Send one frame and wait for it. Returns the nanoseconds from just before the avail->idx store on the
     * sender to seeing the used->idx move on the receiver, or -1 if it did not arrive within
     * {@code timeoutNanos} (counted in {@link #lost()}).
     */
    public long once(final long timeoutNanos) {
        while (!from.txRoom()) {
            from.reapTx();
        }
        final UnsafeBuffer txImage = from.image();
        final int off = from.nextTxFrameOffset();
        // dst 02:00:00:00:00:02, src 02:00:00:00:00:01, ethertype, magic, sequence
        txImage.putInt(off, 0x02000000, java.nio.ByteOrder.BIG_ENDIAN);
        txImage.putShort(off + 4, DST_MAC_LO, java.nio.ByteOrder.BIG_ENDIAN);
        txImage.putInt(off + 6, 0x02000000, java.nio.ByteOrder.BIG_ENDIAN);
        txImage.putShort(off + 10, (short) 0x0001, java.nio.ByteOrder.BIG_ENDIAN);
        txImage.putShort(off + 12, (short) ETHERTYPE, java.nio.ByteOrder.BIG_ENDIAN);
        txImage.putInt(off + OFF_MAGIC, MAGIC);
        final long expected = seq++;
        txImage.putLong(off + OFF_SEQ, expected);

        final long t0 = System.nanoTime();
        if (from.transmit()) {
            kicked++;
        }
        long latency = -1;
        int spins = 0;
        final UnsafeBuffer rxImage = to.image();
        while (true) {
            if (to.rxReady()) {
                final long t1 = System.nanoTime();
                final int f = to.pollRx();
                final boolean mine = rxImage.getInt(f + OFF_MAGIC) == MAGIC && rxImage.getLong(f + OFF_SEQ) == expected;
                final int len = to.lastRxLength();
                to.repostRx();
                if (mine) {
                    if (len != frameLength) {
                        badLength++;
                    }
                    latency = t1 - t0;
                    break;
                }
                stale++; // a frame given up on earlier, or not ours
                continue;
            }
            if ((++spins & DEADLINE_CHECK_MASK) == 0 && System.nanoTime() - t0 > timeoutNanos) {
                lost++;
                break;
            }
        }
        final long txDeadline = System.nanoTime() + timeoutNanos;
        while (from.txInFlight() > 0) {
            from.reapTx();
            if ((++spins & DEADLINE_CHECK_MASK) == 0 && System.nanoTime() > txDeadline) {
                txTimeouts++; // left in flight; the next sample starts anyway
                break;
            }
        }
        return latency;
    }

    /**
     * Send probes until one gets through (the back-end may need a moment after the rings are enabled, e.g.
     * DPDK's link-up), up to {@code timeoutMillis}. Returns whether the path works.
     */
    public boolean awaitPath(final long timeoutMillis) throws InterruptedException {
        final long deadline = System.currentTimeMillis() + timeoutMillis;
        while (System.currentTimeMillis() < deadline) {
            if (once(200_000_000L) >= 0) {
                resetCounters(); // probes lost before the path came up do not count
                return true;
            }
            Thread.sleep(50);
        }
        return false;
    }

    public long lost() {
        return lost;
    }

    public long stale() {
        return stale;
    }

    public long kicked() {
        return kicked;
    }

    public long badLength() {
        return badLength;
    }

    public long txTimeouts() {
        return txTimeouts;
    }

    /** Forget the counters (e.g. after warm-up). */
    public void resetCounters() {
        lost = 0;
        stale = 0;
        kicked = 0;
        badLength = 0;
        txTimeouts = 0;
    }
}
