package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.Iotlb;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.SystemNanoClock;

/**
 * One queue's wait for the IOTLB translations it asked the front-end for (VIRTIO_F_ACCESS_PLATFORM).
 *
 * <p>QEMU answers a miss with an update only if the guest has the address mapped; for any other address it
 * answers nothing at all (vhost_device_iotlb_miss finds no translation and sends no message). So a wait
 * must never depend on an answer arriving:
 * <ul>
 *   <li>a request is de-duplicated only while it is outstanding: same page, asked less than
 *       {@link #REASK_NANOS} ago, and no mapping removed since (an update for the page followed by an
 *       invalidation before the queue got to use it must be asked for again at once);</li>
 *   <li>a parked queue is walked again every {@link #REASK_NANOS} even if the IOTLB did not change, and
 *       that walk asks again;</li>
 *   <li>after {@link #GIVE_UP_NANOS} without the queue making progress the translation is given up on and
 *       the queue fails (error eventfd signalled) instead of waiting forever.</li>
 * </ul>
 * Dataplane thread only; allocation-free. The clock is replaceable so tests can step time.
 */
final class TranslationWait {
    /** An unanswered request is repeated this often (and a parked queue re-walked). */
    static final long REASK_NANOS = 20_000_000L;
    /** A peer's frames are held back this long for this queue's translation before being dropped. */
    static final long HOLD_PEER_NANOS = 100_000_000L;
    /** No progress for this long while waiting: the translation will not come; the queue fails. */
    static final long GIVE_UP_NANOS = 2_000_000_000L;

    private static final long PAGE_MASK = ~4095L;

    private NanoClock clock = SystemNanoClock.INSTANCE;
    private boolean waiting;
    private long waitingSince;
    private long askedPage = -1;
    private long askedAt;
    /** {@link Iotlb#removals()} when {@link #askedPage} was asked for. */
    private long askedRemovals;
    /** {@link Iotlb#generation()} at the last miss: the queue is parked until it changes (or a re-ask is due). */
    private long parkedGeneration = -1;

    void clock(final NanoClock clock) {
        this.clock = clock;
    }

    /** Forget the wait (queue started, IOTLB switched on or off). */
    void reset() {
        waiting = false;
        askedPage = -1;
        parkedGeneration = -1;
    }

    /**
     * A walk missed at {@code iova}. The queue is parked from now on.
     *
     * @return whether to send the request (false: the same request is outstanding)
     */
    boolean missed(final long iova, final Iotlb tlb) {
        final long now = clock.nanoTime();
        if (!waiting) {
            waiting = true; // until a walk gets through (progressed())
            waitingSince = now;
        }
        parkedGeneration = tlb.generation();
        final long page = iova & PAGE_MASK;
        if (page == askedPage && now - askedAt < REASK_NANOS && tlb.removals() == askedRemovals) {
            return false;
        }
        askedPage = page;
        askedAt = now;
        askedRemovals = tlb.removals();
        return true;
    }

    /** Whether walking the queue now is pointless: nothing changed in the IOTLB since the miss and no re-ask is due. */
    boolean parked(final Iotlb tlb) {
        if (parkedGeneration == -1) {
            return false;
        }
        if (parkedGeneration != tlb.generation()) {
            parkedGeneration = -1;
            return false;
        }
        return clock.nanoTime() - askedAt < REASK_NANOS;
    }

    /** Whether the queue has waited, without progress, longer than anyone should. */
    boolean expired() {
        return waiting && clock.nanoTime() - waitingSince >= GIVE_UP_NANOS;
    }

    /** Whether the peer's frames for this queue should still be held back rather than dropped. */
    boolean holdingPeer() {
        return waiting && clock.nanoTime() - waitingSince < HOLD_PEER_NANOS;
    }

    /** A walk got through: whatever was waited for has arrived. */
    void progressed() {
        waiting = false;
        askedPage = -1;
    }

    boolean waiting() {
        return waiting;
    }
}
