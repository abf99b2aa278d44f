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
 *   <li>a request is de-duplicated exactly while it is outstanding ({@link Iotlb#outstanding}: asked, no
 *       update covering the page since; device-wide) and was sent less than {@link #REASK_NANOS} ago. An
 *       update for the page followed by an invalidation before the queue got to use it is asked for again
 *       at once. Invalidations alone are no reason to ask again, not even a full flush covering the page
 *       before the answer came: the answer is on its way, and a duplicate that QEMU handles after the guest
 *       has unmapped the page (once the queue used the first answer) makes it log a translation fault;</li>
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
        if (page != askedPage) {
            askedPage = page;
            firstAskedAt = now;
            askedAt = now;
            return ask(page, tlb);
        }
        if (now - firstAskedAt >= GIVE_UP_NANOS) {
            return Verdict.GIVE_UP;
        }
        if (tlb.outstanding(page) && now - askedAt < REASK_NANOS) {
            return Verdict.OUTSTANDING;
        }
        askedAt = now; // answered and invalidated again before we could use it, or a re-ask is due
        tlb.requested(page);
        return Verdict.ASK;
    }

    private static Verdict ask(final long page, final Iotlb tlb) {
        if (tlb.outstanding(page)) {
            return Verdict.OUTSTANDING; // asked already (by this queue before, or another queue of the device)
        }
        tlb.requested(page);
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
