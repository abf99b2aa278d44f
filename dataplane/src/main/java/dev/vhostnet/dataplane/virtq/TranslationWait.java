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
 *       {@link #REASK_NANOS} ago, and no invalidation of that page since (an update for the page followed
 *       by an invalidation before the queue got to use it must be asked for again at once; invalidations
 *       of other pages, constant in strict mode, are no reason to ask again: a late duplicate request for
 *       a page the guest has since unmapped only makes QEMU log a fault);</li>
 *   <li>a parked queue is walked again every {@link #REASK_NANOS} even if the IOTLB did not change, and
 *       that walk asks again;</li>
 *   <li>after {@link #GIVE_UP_NANOS} of asking for the same translation in vain it is given up on and
 *       the queue fails (error eventfd signalled) instead of waiting forever.</li>
 * </ul>
 * Dataplane thread only; allocation-free. The clock is replaceable so tests can step time.
 */
final class TranslationWait {
    /**
     * An unanswered request is repeated this often (and a parked queue re-walked): often enough to recover a
     * request lost on the way, rarely enough that QEMU (which answers within milliseconds) is not sent
     * duplicates that arrive after the guest has unmapped the page again.
     */
    static final long REASK_NANOS = 500_000_000L;
    /** A peer's frames are held back this long for this queue's translation before being dropped. */
    static final long HOLD_PEER_NANOS = 100_000_000L;
    /** No progress for this long while waiting: the translation will not come; the queue fails. */
    static final long GIVE_UP_NANOS = 2_000_000_000L;

    private static final long PAGE_MASK = ~4095L;

    private NanoClock clock = SystemNanoClock.INSTANCE;
    /** Page of the translation asked for and not arrived yet, or -1 (not waiting). */
    private long askedPage = -1;
    /** When that page was first asked for: the give-up bound and the peer's hold run from here. */
    private long firstAskedAt;
    /** When it was last asked for (re-asks are spaced). */
    private long askedAt;
    /** {@link Iotlb#removals()} when it was last asked for. */
    private long askedRemovals;
    /** {@link Iotlb#generation()} at the last miss: the queue is parked until it changes (or a re-ask is due). */
    private long parkedGeneration = -1;

    void clock(final NanoClock clock) {
        this.clock = clock;
    }

    /** Forget the wait (queue started, IOTLB switched on or off). */
    void reset() {
        askedPage = -1;
        parkedGeneration = -1;
    }

    /** What to do about a miss: send the request, leave the outstanding one be, or give up. */
    enum Verdict { ASK, OUTSTANDING, GIVE_UP }

    /**
     * A walk missed at {@code iova}; the queue is parked from now on. A miss on another page, or on a page
     * an invalidation may have removed since it was asked for, is a new request with a fresh bound. The same
     * request is repeated every {@link #REASK_NANOS} and given up on after {@link #GIVE_UP_NANOS}. Idle time
     * counts only while the same translation stays missing: a queue nobody walked for a while is not
     * blamed for it.
     */
    Verdict missed(final long iova, final Iotlb tlb) {
        final long now = clock.nanoTime();
        parkedGeneration = tlb.generation();
        final long page = iova & PAGE_MASK;
        if (page != askedPage || tlb.removedSince(askedRemovals, page, page + ~PAGE_MASK)) {
            askedPage = page;
            firstAskedAt = now;
            askedAt = now;
            askedRemovals = tlb.removals();
            return Verdict.ASK;
        }
        if (now - firstAskedAt >= GIVE_UP_NANOS) {
            return Verdict.GIVE_UP;
        }
        if (now - askedAt < REASK_NANOS) {
            return Verdict.OUTSTANDING;
        }
        askedAt = now;
        askedRemovals = tlb.removals();
        return Verdict.ASK;
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

    /** Whether the peer's frames for this queue should still be held back rather than dropped. */
    boolean holdingPeer() {
        return askedPage != -1 && clock.nanoTime() - firstAskedAt < HOLD_PEER_NANOS;
    }

    /** A walk got through: whatever was waited for has arrived. */
    void progressed() {
        askedPage = -1;
    }

    boolean waiting() {
        return askedPage != -1;
    }
}
