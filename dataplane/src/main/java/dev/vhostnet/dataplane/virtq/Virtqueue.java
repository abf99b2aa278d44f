package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.DirtyLog;
import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.Iotlb;
import dev.vhostnet.dataplane.memory.IotlbMissSink;
import dev.vhostnet.dataplane.sys.EventFd;

/**
 * The device side of one virtqueue, split or packed, as the forwarder and the control plane see it. Owned
 * by one dataplane thread; the control plane changes it only through commands that thread runs.
 *
 * <p>Data path contract: {@link #available()} says how many chains can be taken, {@link #pop} takes and
 * validates one, {@link #addUsed} queues its completion, and {@link #publishUsed()} makes a batch of
 * completions visible to the driver and interrupts it if it asked to be. {@link #mark()} / {@link #rewind}
 * undo pops and completions that were not published yet (a mergeable frame that did not fit).
 */
public abstract class Virtqueue {
    protected final int index;
    protected final QueueCounters counters;

    protected GuestMemory memory = GuestMemory.EMPTY;
    protected int size;
    protected boolean eventIdx;
    protected boolean indirectAllowed;
    protected boolean started;
    protected boolean enabled;
    protected QueueError error = QueueError.NONE;
    /** Ring addresses resolved to host memory (false while an IOTLB translation is awaited). */
    protected boolean ringsReady;
    /**
     * {@link #mark()} at the last point where every chain taken had been completed and published (after each
     * publish, and at start). See {@link #recoverAfterFault()}.
     */
    protected long restMark;

    /** Dirty log while live migration logs writes (VHOST_F_LOG_ALL + SET_LOG_BASE), else null. */
    protected DirtyLog log;

    /** Device IOTLB when VIRTIO_F_ACCESS_PLATFORM is negotiated (addresses are IOVAs), else null. */
    protected Iotlb iotlb;
    private IotlbMissSink missSink;
    /** IOTLB generation the rings were resolved at; re-resolved when the IOTLB changes. */
    private long ringGeneration = -1;
    /** Translations asked for and not arrived yet: de-duplication, re-asking, giving up. */
    private final TranslationWait wait = new TranslationWait();
    /**
     * Whether the current walk (a pop, or resolving the rings) already missed. Its further misses are asked
     * for at once too, without waiting for the first answer: one round trip to the front-end per chain
     * instead of one per page (a 64 KiB TSO frame spans 17 pages), so they go out as requests ahead.
     */
    private boolean missedThisWalk;
    /** Pages of one buffer asked for ahead of the walk at most. */
    private static final int MAX_PAGES_AHEAD = 32;

    /** Returned by {@link #translateRing} when the translation was requested from the front-end. */
    protected static final long RING_MISS = -1;

    protected EventFd call;
    protected EventFd kick;
    protected EventFd err;

    protected Virtqueue(final int index, final QueueCounters counters) {
        this.index = index;
        this.counters = counters;
    }

    public final int index() {
        return index;
    }

    public final QueueCounters counters() {
        return counters;
    }

    public abstract boolean isPacked();

    // ---------------------------------------------------------------------------------------------
    // Control

    public void setFeatures(final boolean eventIdx, final boolean indirectAllowed) {
        this.eventIdx = eventIdx;
        this.indirectAllowed = indirectAllowed;
    }

    /**
     * Start processing with rings at the given front-end virtual addresses (split: descriptor table,
     * available ring, used ring; packed: descriptor ring, driver area, device area) and the position
     * {@code base} in the vhost-user encoding of SET_VRING_BASE.
     *
     * @return {@link QueueError#NONE} or why the ring cannot be used (the queue is then broken)
     */
    public abstract QueueError start(GuestMemory memory, int size, long descUserAddr, long driverUserAddr,
                                     long deviceUserAddr, int base);

    /** Re-resolve the rings against a new memory table (SET_MEM_TABLE / ADD/REM_MEM_REG while running). */
    public abstract QueueError remap(GuestMemory memory);

    /** Stop the ring (GET_VRING_BASE); returns the position to resume from, in the SET_VRING_BASE encoding. */
    public abstract int stop();

    /**
     * Track inflight descriptors in {@code region} of the shared inflight buffer (INFLIGHT_SHMFD), or stop
     * tracking ({@code null}). Set while the ring is stopped; the next {@link #start} initializes the region or,
     * if it holds a previous back-end's state, runs the reconnect procedure and resubmits what was inflight.
     */
    public void setInflight(final InflightBuffer.Region region) {
        // Ring formats without inflight support ignore it.
    }

    /** Inflight descriptors found at start and not resubmitted yet (0 without tracking). */
    public int pendingResubmits() {
        return 0;
    }

    /** Forget everything (disconnect, reset); fds must have been detached by the caller. */
    public void reset() {
        started = false;
        ringsReady = false;
        enabled = false;
        error = QueueError.NONE;
        memory = GuestMemory.EMPTY;
        size = 0;
        eventIdx = false;
        indirectAllowed = false;
    }

    /** Hand fds and the enabled state to the queue replacing this one (ring format negotiated). */
    public void transferTo(final Virtqueue next) {
        next.call = call;
        next.kick = kick;
        next.err = err;
        next.enabled = enabled;
        next.log = log;
        next.iotlb = iotlb;
        next.missSink = missSink;
        next.wait.reset();
        call = null;
        kick = null;
        err = null;
    }

    /** Use (non-null) or stop using (null) an IOTLB for every address of this queue. */
    public final void setIotlb(final Iotlb iotlb, final IotlbMissSink sink) {
        this.iotlb = iotlb;
        this.missSink = sink;
        ringGeneration = -1;
        wait.reset();
    }

    /** A (re)started ring owes nothing to waits of its previous run. */
    protected final void resetTranslationWait() {
        wait.reset();
        ringGeneration = -1;
    }

    /** The clock translation waits are timed with (tests step it; default System.nanoTime). */
    public final void setTranslationClock(final org.agrona.concurrent.NanoClock clock) {
        wait.clock(clock);
    }

    /**
     * With an IOTLB: whether the queue can be walked now. Re-resolves the rings after the IOTLB changed, and
     * stays false while a requested translation has not arrived, so a queue waiting for the front-end costs
     * a few loads per poll and stalls no other queue.
     */
    protected final boolean iotlbReady() {
        if (iotlb == null) {
            return true;
        }
        if (wait.parked(iotlb)) {
            return false;
        }
        final long generation = iotlb.generation();
        if (ringGeneration != generation) {
            ringGeneration = generation;
            final QueueError e = remap(memory);
            if (e != QueueError.NONE) {
                ringGeneration = -1;
                return false;
            }
        }
        return true;
    }

    /** Whether the queue is waiting for the front-end to answer an IOTLB miss (nothing to do until then). */
    public final boolean awaitingTranslation() {
        // Bounded: a guest whose IOMMU never maps the address must not hold its peer's frames forever.
        return iotlb != null && wait.holdingPeer();
    }

    /** A chain was taken: whatever translation this queue waited for has arrived. */
    protected final void walked() {
        if (wait.waiting()) {
            wait.progressed();
        }
    }

    /** Host address of a ring: front-end virtual address, or IOVA through the IOTLB ({@link #RING_MISS}). */
    protected final long translateRing(final long address, final long length, final int perm) {
        if (iotlb == null) {
            return memory.uvaToHost(address, length);
        }
        final long host = iotlb.translateContiguous(address, length, perm, memory);
        if (host == Iotlb.MISS) {
            // The first byte that missed, not the ring's start: a ring spanning pages whose first page is
            // mapped would otherwise ask for that page forever and never for the one it lacks.
            requestTranslation(iotlb.lastFault(), perm);
            return RING_MISS;
        }
        if (host == Iotlb.DENIED) {
            if (missSink != null) {
                missSink.accessFailed(iotlb.lastFault(), perm);
            }
            return GuestMemory.UNMAPPED;
        }
        return host;
    }

    /**
     * Ask the front-end for the translation of {@code iova} (unless the same request is outstanding) and
     * park the queue until the IOTLB changes or a re-ask is due. After asking for the same translation too
     * long the queue fails ({@link QueueError#IOTLB_TIMEOUT}): QEMU never answers for an address the guest has
     * not mapped, and a queue must not hang on it.
     */
    protected final void requestTranslation(final long iova, final int perm) {
        if (missedThisWalk) {
            requestAhead(iova, perm);
            return;
        }
        missedThisWalk = true;
        final TranslationWait.Verdict verdict = wait.missed(iova, iotlb);
        if (verdict == TranslationWait.Verdict.GIVE_UP) {
            fail(QueueError.IOTLB_TIMEOUT);
        } else if (verdict == TranslationWait.Verdict.ASK && missSink != null) {
            counters.add(QueueCounters.IOTLB_MISSES, 1);
            missSink.miss(iova, perm);
        }
    }

    /** A walk (pop, or resolving the rings) begins: its first miss is the one the queue waits for. */
    protected final void beginWalk() {
        missedThisWalk = false;
    }

    /** A further miss of a walk that already missed: ask unless a request for the page is on its way. */
    private void requestAhead(final long iova, final int perm) {
        if (!iotlb.outstanding(iova) && missSink != null) {
            iotlb.requested(iova);
            counters.add(QueueCounters.IOTLB_MISSES, 1);
            missSink.miss(iova, perm);
        }
    }

    /**
     * Translate one descriptor buffer into chain segments: guest physical addresses, or IOVAs through the
     * IOTLB. Splits buffers that straddle regions or IOTLB entries.
     */
    protected final QueueError addBuffer(final DescriptorChain chain, final long addr, final long len, final boolean writable) {
        if (iotlb != null) {
            return addBufferIova(chain, addr, len, writable);
        }
        if (len <= Integer.MAX_VALUE) {
            // Common case: the whole buffer lies in one region, one lookup.
            final long host = memory.gpaToHost(addr, len);
            if (host != GuestMemory.UNMAPPED) {
                if (len == 0) {
                    return QueueError.NONE;
                }
                final boolean ok = writable ? chain.addWritable(host, (int) len) : chain.addReadable(host, (int) len);
                return ok ? QueueError.NONE : QueueError.TOO_MANY_SEGMENTS;
            }
        }
        long gpa = addr;
        long remaining = len;
        while (remaining > 0) {
            final long host = memory.gpaToHostStart(gpa);
            if (host == GuestMemory.UNMAPPED) {
                return QueueError.BUFFER_UNMAPPED;
            }
            final int n = (int) Math.min(remaining, Math.min(memory.contiguousBytes(gpa), Integer.MAX_VALUE));
            if (!(writable ? chain.addWritable(host, n) : chain.addReadable(host, n))) {
                return QueueError.TOO_MANY_SEGMENTS;
            }
            gpa += n;
            remaining -= n;
        }
        return QueueError.NONE;
    }

    /**
     * After a miss earlier in the chain: only ask for this buffer's missing pages (segments are not kept,
     * the chain is retried). IOTLB_MISS if any page missed, or the error a translation ran into.
     */
    protected final QueueError addMissing(final DescriptorChain chain, final long addr, final long len, final boolean writable) {
        final int writes = chain.writeCount;
        final int reads = chain.readCount;
        final QueueError e = addBuffer(chain, addr, len, writable);
        chain.writeCount = writes; // keep the chain's segment count bounded while nothing of it is used
        chain.readCount = reads;
        return e;
    }

    private QueueError addBufferIova(final DescriptorChain chain, final long addr, final long len, final boolean writable) {
        final int perm = writable ? dev.vhostnet.spec.IotlbMessage.PERM_WO : dev.vhostnet.spec.IotlbMessage.PERM_RO;
        long iova = addr;
        long remaining = len;
        while (remaining > 0) {
            final long host = iotlb.translate(iova, remaining, perm, memory);
            if (host == Iotlb.MISS) {
                requestTranslation(iova, perm);
                // The rest of the buffer's pages that miss too, asked for at once (bounded).
                long page = (iova | 4095L) + 1;
                for (int i = 0; i < MAX_PAGES_AHEAD && Long.compareUnsigned(page - addr, len) < 0; i++, page += 4096) {
                    if (iotlb.translate(page, 1, perm, memory) == Iotlb.MISS) {
                        requestTranslation(page, perm);
                    }
                }
                return QueueError.IOTLB_MISS;
            }
            if (host == Iotlb.DENIED) {
                if (missSink != null) {
                    missSink.accessFailed(iova, perm);
                }
                return QueueError.IOTLB_DENIED;
            }
            final int n = (int) Math.min(remaining, Math.min(iotlb.lastContiguous(), Integer.MAX_VALUE));
            if (!(writable ? chain.addWritable(host, n) : chain.addReadable(host, n))) {
                return QueueError.TOO_MANY_SEGMENTS;
            }
            iova += n;
            remaining -= n;
        }
        return QueueError.NONE;
    }

    /** Host address of an indirect table (guest physical address, or IOVA through the IOTLB). */
    protected final long translateTable(final long addr, final long len) {
        if (iotlb == null) {
            return memory.gpaToHost(addr, len);
        }
        final long host = iotlb.translateContiguous(addr, len, dev.vhostnet.spec.IotlbMessage.PERM_RO, memory);
        if (host == Iotlb.MISS) {
            // First missing byte: the table may span pages and only a later one be missing.
            requestTranslation(iotlb.lastFault(), dev.vhostnet.spec.IotlbMessage.PERM_RO);
            return RING_MISS;
        }
        if (host == Iotlb.DENIED) {
            if (missSink != null) {
                missSink.accessFailed(iotlb.lastFault(), dev.vhostnet.spec.IotlbMessage.PERM_RO);
            }
            return GuestMemory.UNMAPPED;
        }
        return host;
    }

    /** Start (non-null) or stop (null) logging this queue's writes into guest memory. */
    public final void setLog(final DirtyLog log) {
        this.log = log;
    }

    public final DirtyLog log() {
        return log;
    }

    public final GuestMemory memory() {
        return memory;
    }

    public final void setEnabled(final boolean enabled) {
        this.enabled = enabled;
    }

    public final boolean isStarted() {
        return started;
    }

    public final boolean isEnabled() {
        return enabled;
    }

    /** Ready for traffic: started, enabled, not broken. */
    public final boolean isRunning() {
        return started && enabled && error == QueueError.NONE;
    }

    public final QueueError error() {
        return error;
    }

    public final int size() {
        return size;
    }

    public final EventFd setCall(final EventFd call) {
        final EventFd old = this.call;
        this.call = call;
        onCallChanged();
        return old;
    }

    protected void onCallChanged() {
    }

    public final EventFd setKick(final EventFd kick) {
        final EventFd old = this.kick;
        this.kick = kick;
        return old;
    }

    public final EventFd setErr(final EventFd err) {
        final EventFd old = this.err;
        this.err = err;
        return old;
    }

    public final EventFd kick() {
        return kick;
    }

    public final EventFd call() {
        return call;
    }

    /** Mark the queue broken; processing stops until the front-end sets it up again. */
    public final QueueError fail(final QueueError why) {
        if (error == QueueError.NONE) {
            error = why;
            counters.add(QueueCounters.ERRORS, 1);
            counters.noteBreak(why);
            if (err != null) {
                err.signal();
            }
        }
        return why;
    }

    /** Interrupt the guest (call eventfd), counted. */
    protected final void interrupt() {
        if (call != null) {
            call.signal();
            counters.add(QueueCounters.CALLS, 1);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Data path

    /** Chains available now (cached position; refreshed from guest memory when exhausted). 0 if not running. */
    public abstract int available();

    /** Re-read the driver's position from guest memory. */
    public abstract int refreshAvailable();

    /** Take the next available chain into {@code chain}; false if the queue is now broken. */
    public abstract boolean pop(DescriptorChain chain);

    /** Queue the completion of the chain popped as {@code chain} (not visible until published). */
    public abstract void addUsed(DescriptorChain chain, int len);

    public abstract long mark();

    public abstract void rewind(long mark);

    public abstract void publishUsed();

    /**
     * After a fault in someone else's guest memory surfaced asynchronously in the middle of this queue's
     * work: go back to the last consistent position. Chains taken since were neither completed nor
     * published; they are taken again (a frame may be sent twice, none is lost, no buffer leaks).
     */
    public final void recoverAfterFault() {
        if (started && ringsReady && error == QueueError.NONE) {
            rewind(restMark);
        }
    }

    /** Ask the guest not to kick: we are polling. */
    public abstract void disableKicks();

    /** Ask the guest to kick on its next buffer; true if buffers arrived meanwhile (do not sleep). */
    public abstract boolean enableKicks();
}
