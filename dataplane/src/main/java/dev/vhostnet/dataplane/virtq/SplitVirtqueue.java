package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.GuestMemory;
import org.agrona.concurrent.UnsafeBuffer;

import static dev.vhostnet.spec.SplitRingLayout.AVAIL_F_NO_INTERRUPT;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_IDX;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_RING;
import static dev.vhostnet.spec.SplitRingLayout.DESC_ADDR;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_INDIRECT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_NEXT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_WRITE;
import static dev.vhostnet.spec.SplitRingLayout.DESC_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.DESC_LEN;
import static dev.vhostnet.spec.SplitRingLayout.DESC_NEXT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_SIZE;
import static dev.vhostnet.spec.SplitRingLayout.MAX_QUEUE_SIZE;
import static dev.vhostnet.spec.SplitRingLayout.USED_ELEM_SIZE;
import static dev.vhostnet.spec.SplitRingLayout.USED_F_NO_NOTIFY;
import static dev.vhostnet.spec.SplitRingLayout.USED_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.USED_IDX;
import static dev.vhostnet.spec.SplitRingLayout.USED_RING;

/**
 * The device side of a split virtqueue, walked in place in guest memory. Owned by one dataplane thread;
 * the control plane changes it only through commands that thread runs between bursts.
 *
 * <p>Memory ordering (the guest runs concurrently on other CPUs):
 * <ul>
 *   <li>avail->idx is read with acquire semantics (volatile load) before any ring entry or descriptor it
 *       covers;</li>
 *   <li>used ring entries are written with plain stores and published by a release store of used->idx;</li>
 *   <li>before deciding whether to interrupt (reading used_event or avail->flags) and before re-checking
 *       avail->idx after re-enabling kicks, a full fence orders our store against the guest's.</li>
 * </ul>
 * Every value read from the ring is read once into a local, validated, and only then used, so a guest
 * rewriting a descriptor while we walk it cannot make us use an unchecked value.
 *
 * <p>Ring accesses use the host's byte order; the back-end only runs on little-endian hosts, as virtio 1.x
 * rings are little-endian.
 */
public final class SplitVirtqueue extends Virtqueue {

    // Rings, re-wrapped on start and on every memory table change.
    private final UnsafeBuffer desc = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer avail = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer used = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer indirect = new UnsafeBuffer(new byte[0]);

    private int mask;
    private long descUserAddr;
    private long availUserAddr;
    private long usedUserAddr;



    /** Next avail ring slot to consume (free-running 16-bit). */
    private int lastAvailIdx;
    /**
     * avail->idx as last read. The guest writes that cache line constantly; reading it once per burst
     * instead of once per chain saves a cross-core miss per packet.
     */
    private int shadowAvailIdx;
    /** Next used ring slot to fill; published to the guest by {@link #publishUsed()}. */
    private int usedIdx;
    /** used->idx as last published. */
    private int publishedUsedIdx;
    /** used->idx at the last interrupt decision (EVENT_IDX "old" index). */
    private int signalledUsedIdx;
    private boolean signalledValid;
    private boolean kicksEnabled = true;
    /** Whether usedIdx was read from the ring since start (deferred while an IOTLB miss is pending). */
    private boolean usedIdxKnown;
    /** Inflight tracking (INFLIGHT_SHMFD), or null: every hook below is one null check when off. */
    private SplitInflight inflight;


    public SplitVirtqueue(final int index, final QueueCounters counters) {
        super(index, counters);
    }

    @Override
    public boolean isPacked() {
        return false;
    }

    // ---------------------------------------------------------------------------------------------
    // Control (dataplane thread, from commands)

    @Override
    public void setFeatures(final boolean eventIdx, final boolean indirectAllowed) {
        super.setFeatures(eventIdx, indirectAllowed);
        signalledValid = false;
    }

    /**
     * Start processing: the ring addresses (front-end virtual addresses) are resolved against the memory
     * table, and processing begins at {@code base}.
     *
     * @return {@link QueueError#NONE}, or why the ring cannot be used (the queue is then broken)
     */
    @Override
    public QueueError start(final GuestMemory memory, final int size, final long descUserAddr,
                            final long availUserAddr, final long usedUserAddr, final int base) {
        if (size <= 0 || size > MAX_QUEUE_SIZE || (size & (size - 1)) != 0) {
            return fail(QueueError.RING_UNMAPPED);
        }
        this.size = size;
        this.mask = size - 1;
        this.descUserAddr = descUserAddr;
        this.availUserAddr = availUserAddr;
        this.usedUserAddr = usedUserAddr;
        this.error = QueueError.NONE;
        this.ringsReady = false;
        this.lastAvailIdx = base & 0xFFFF;
        this.shadowAvailIdx = lastAvailIdx;
        this.started = true;
        this.signalledValid = false;
        this.kicksEnabled = true;
        usedIdxKnown = false;
        resetTranslationWait();
        return remap(memory);
    }

    /** Re-resolve the rings against a new memory table (SET_MEM_TABLE / ADD/REM_MEM_REG while running). */
    @Override
    public QueueError remap(final GuestMemory memory) {
        this.memory = memory;
        if (!started) {
            return QueueError.NONE;
        }
        // All three parts at once: the queue waits for the first missing one, the others are asked ahead.
        beginWalk();
        final long descHost = translateRing(descUserAddr, (long) DESC_SIZE * size, dev.vhostnet.spec.IotlbMessage.PERM_RO);
        final long availHost = translateRing(availUserAddr, 6L + 2L * size, dev.vhostnet.spec.IotlbMessage.PERM_RO);
        final long usedHost = translateRing(usedUserAddr, 6L + (long) USED_ELEM_SIZE * size, dev.vhostnet.spec.IotlbMessage.PERM_WO);
        if (descHost == RING_MISS || availHost == RING_MISS || usedHost == RING_MISS) {
            ringsReady = false;
            return QueueError.IOTLB_MISS; // retried when the front-end answers
        }
        if (descHost == GuestMemory.UNMAPPED || availHost == GuestMemory.UNMAPPED || usedHost == GuestMemory.UNMAPPED
            || (descHost & 15) != 0 || (availHost & 1) != 0 || (usedHost & 3) != 0) {
            ringsReady = false;
            return fail(QueueError.RING_UNMAPPED);
        }
        ringsReady = true;
        desc.wrap(descHost, DESC_SIZE * size);
        avail.wrap(availHost, 6 + 2 * size);
        used.wrap(usedHost, 6 + USED_ELEM_SIZE * size);
        if (!usedIdxKnown) {
            // The used index the driver sees is authoritative: after a reconnect it may differ from base.
            usedIdx = used.getShortVolatile(USED_IDX) & 0xFFFF;
            publishedUsedIdx = usedIdx;
            usedIdxKnown = true;
            restMark = mark();
            if (inflight != null) {
                // Reconnect: continue after the chains found inflight (resubmitted first, in fetch order).
                // This back-end completes in order, so those are exactly avail slots [used->idx, used->idx + n):
                // resubmitting them equals re-reading the avail ring from used->idx, which is the base QEMU
                // sends after a back-end crash; the tracking matters for out-of-order completion only.
                final int resumeAt = inflight.start(size, usedIdx);
                if (resumeAt >= 0) {
                    lastAvailIdx = resumeAt;
                    shadowAvailIdx = resumeAt;
                }
            }
        }
        return QueueError.NONE;
    }

    /** Stop the ring (GET_VRING_BASE); returns the index of the next available entry to process. */
    @Override
    public int stop() {
        if (started && ringsReady && error == QueueError.NONE && usedIdx != publishedUsedIdx) {
            publishUsed();
        }
        started = false;
        return lastAvailIdx;
    }

    public int lastAvailIdx() {
        return lastAvailIdx;
    }

    @Override
    protected void onCallChanged() {
        signalledValid = false;
    }

    @Override
    public void setInflight(final InflightBuffer.Region region) {
        inflight = region == null ? null : new SplitInflight(region);
    }

    /** Tracking state, for tests in this package. */
    SplitInflight inflight() {
        return inflight;
    }

    @Override
    public int pendingResubmits() {
        return inflight == null ? 0 : inflight.pendingResubmits();
    }

    /** Forget everything (disconnect, RESET_OWNER, RESET_DEVICE); returns nothing: fds are closed by the caller. */
    @Override
    public void reset() {
        super.reset();
        inflight = null;
        lastAvailIdx = 0;
        shadowAvailIdx = 0;
        usedIdx = 0;
        publishedUsedIdx = 0;
        signalledValid = false;
        desc.wrap(new byte[0]);
        avail.wrap(new byte[0]);
        used.wrap(new byte[0]);
    }

    // ---------------------------------------------------------------------------------------------
    // Data path (dataplane thread)

    /**
     * Number of chains the driver has made available and we have not consumed; 0 if none or if the queue is
     * not running. An index that moved by more than the queue size breaks the queue.
     */
    @Override
    public int available() {
        if (!isRunning()) {
            return 0;
        }
        if (iotlb != null && !iotlbReady()) {
            return 0;
        }
        if (inflight != null && inflight.pendingResubmits() > 0) {
            return inflight.pendingResubmits();
        }
        final int cached = (shadowAvailIdx - lastAvailIdx) & 0xFFFF;
        if (cached != 0 && cached <= size) {
            return cached;
        }
        return refreshAvailable();
    }

    /** Re-read avail->idx from guest memory (acquire: ring entries it covers are read after it). */
    @Override
    public int refreshAvailable() {
        if (!isRunning() || iotlb != null && !iotlbReady() || !ringsReady) {
            return 0;
        }
        final int availIdx = avail.getShortVolatile(AVAIL_IDX) & 0xFFFF;
        final int n = (availIdx - lastAvailIdx) & 0xFFFF;
        if (n > size) {
            fail(QueueError.AVAIL_IDX_JUMP);
            return 0;
        }
        shadowAvailIdx = availIdx;
        return n;
    }

    /**
     * Consume the next available chain into {@code chain} (caller checked {@link #available()}).
     *
     * @return true if the chain is valid; false if the queue is now broken
     */
    @Override
    public boolean pop(final DescriptorChain chain) {
        final SplitInflight t = inflight;
        if (t != null && t.pendingResubmits() > 0) {
            return popResubmitted(t.nextResubmit(), chain);
        }
        final int head = avail.getShort(AVAIL_RING + 2 * (lastAvailIdx & mask)) & 0xFFFF;
        lastAvailIdx = (lastAvailIdx + 1) & 0xFFFF;
        if (head >= size) {
            fail(QueueError.HEAD_OUT_OF_RANGE);
            return false;
        }
        chain.ensureCapacity(size + 8);
        beginWalk();
        final QueueError walked = walk(head, chain);
        if (walked != QueueError.NONE) {
            if (walked == QueueError.IOTLB_MISS) {
                lastAvailIdx = (lastAvailIdx - 1) & 0xFFFF; // retried once the translation arrives
                askAheadOfMiss(chain);
                return false;
            }
            fail(walked);
            return false;
        }
        if (t != null) {
            t.onPop(head); // inflight from here: validated, not yet processed
        }
        if (iotlb != null) {
            walked();
        }
        return true;
    }

    /**
     * After a chain missed: walk the chains made available after it (without taking them) so that their
     * missing pages go out in the same round trip. RX buffers are posted long before frames arrive and TX
     * chains come in bursts, so one round trip then serves many chains. Malformed chains are left for
     * their real pop to report. {@code scratch} is the chain being discarded.
     */
    private void askAheadOfMiss(final DescriptorChain scratch) {
        final int ahead = Math.min(CHAINS_AHEAD, ((shadowAvailIdx - lastAvailIdx) & 0xFFFF) - 1);
        for (int k = 1; k <= ahead && error == QueueError.NONE; k++) {
            final int h = avail.getShort(AVAIL_RING + 2 * ((lastAvailIdx + k) & mask)) & 0xFFFF;
            if (h >= size) {
                return;
            }
            final QueueError e = walk(h, scratch);
            if (e != QueueError.NONE && e != QueueError.IOTLB_MISS) {
                return;
            }
        }
    }

    /** Chains after a missing one whose translations are asked for in the same round trip. */
    private static final int CHAINS_AHEAD = 32;

    /** A head a previous back-end took and did not complete: walked again from the descriptor table. */
    private boolean popResubmitted(final int head, final DescriptorChain chain) {
        chain.ensureCapacity(size + 8);
        beginWalk();
        final QueueError walked = walk(head, chain);
        if (walked != QueueError.NONE) {
            if (walked == QueueError.IOTLB_MISS) {
                lastAvailIdx = (lastAvailIdx - 1) & 0xFFFF; // retried once the translation arrives
                return false;
            }
            fail(walked);
            return false;
        }
        return true;
    }

    private QueueError walk(final int head, final DescriptorChain chain) {
        chain.reset(head);
        UnsafeBuffer table = desc;
        int tableSize = size;
        int budget = size;
        boolean inIndirect = false;
        // After a buffer missed, the rest of the chain is still walked (validated, its misses asked for at
        // once), and the chain is then retried as a whole.
        boolean missed = false;
        int i = head;
        while (true) {
            if (--budget < 0) {
                return QueueError.CHAIN_TOO_LONG;
            }
            final int at = i * DESC_SIZE;
            final long addr = table.getLong(at + DESC_ADDR);
            final long len = table.getInt(at + DESC_LEN) & 0xFFFF_FFFFL;
            final int flags = table.getShort(at + DESC_FLAGS) & 0xFFFF;
            final int next = table.getShort(at + DESC_NEXT) & 0xFFFF;

            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirectAllowed) {
                    return QueueError.INDIRECT_NOT_NEGOTIATED;
                }
                if (inIndirect) {
                    return QueueError.NESTED_INDIRECT;
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    return QueueError.INDIRECT_WITH_NEXT;
                }
                if (len == 0 || (len & (DESC_SIZE - 1)) != 0 || len > (long) DESC_SIZE * MAX_QUEUE_SIZE) {
                    return QueueError.BAD_INDIRECT_SIZE;
                }
                final long host = translateTable(addr, len);
                if (host == RING_MISS) {
                    return QueueError.IOTLB_MISS; // the table itself: nothing more to read
                }
                if (host == GuestMemory.UNMAPPED || (host & 1) != 0) {
                    return QueueError.INDIRECT_UNMAPPED;
                }
                indirect.wrap(host, (int) len);
                table = indirect;
                tableSize = (int) (len / DESC_SIZE);
                budget = tableSize;
                inIndirect = true;
                i = 0;
                continue;
            }

            final boolean writable = (flags & DESC_F_WRITE) != 0;
            if (!writable && chain.writeCount > 0) {
                return QueueError.READABLE_AFTER_WRITABLE;
            }
            final QueueError added = missed ? addMissing(chain, addr, len, writable) : addBuffer(chain, addr, len, writable);
            if (added == QueueError.IOTLB_MISS) {
                missed = true;
            } else if (added != QueueError.NONE) {
                return added;
            }
            if ((flags & DESC_F_NEXT) == 0) {
                return missed ? QueueError.IOTLB_MISS : QueueError.NONE;
            }
            if (next >= tableSize) {
                return QueueError.NEXT_OUT_OF_RANGE;
            }
            i = next;
        }
    }

    /** Queue a used entry (not visible to the guest until {@link #publishUsed()}). */
    @Override
    public void addUsed(final DescriptorChain chain, final int len) {
        addUsed(chain.head(), len);
    }

    /** Queue a used entry for buffer (head) {@code id}. */
    public void addUsed(final int id, final int len) {
        final int at = USED_RING + USED_ELEM_SIZE * (usedIdx & mask);
        used.putInt(at, id);
        used.putInt(at + 4, len);
        if (inflight != null) {
            inflight.onUsed(usedIdx, id);
        }
        usedIdx = (usedIdx + 1) & 0xFFFF;
    }

    /** Position to return to if a multi-chain operation (mergeable RX) cannot complete. */
    @Override
    public long mark() {
        if (inflight != null) {
            inflight.mark();
        }
        return ((long) lastAvailIdx << 16) | usedIdx;
    }

    /** Give back chains popped and used entries queued since {@code mark}; the guest never saw them. */
    @Override
    public void rewind(final long mark) {
        if (inflight != null) {
            inflight.rewind(avail, (int) (mark >>> 16) & 0xFFFF, lastAvailIdx);
        }
        lastAvailIdx = (int) (mark >>> 16) & 0xFFFF;
        usedIdx = (int) mark & 0xFFFF;
    }

    /** Publish queued used entries (release store) and interrupt the guest if it asked to be. */
    @Override
    public void publishUsed() {
        if (usedIdx == publishedUsedIdx || !isRunning() || !ringsReady) {
            restMark = mark();
            return;
        }
        final SplitInflight t = inflight;
        if (t != null) {
            t.linkBatch(publishedUsedIdx, usedIdx);
        }
        // Volatile store: release for the entries written above, and the StoreLoad fence the interrupt
        // decision below needs (the guest writes used_event / flags, then reads used->idx).
        used.putShortVolatile(USED_IDX, (short) usedIdx);
        if (t != null) {
            t.completeBatch(publishedUsedIdx, usedIdx);
        }
        publishedUsedIdx = usedIdx;
        if (log != null) {
            memory.logWrite(log, used.addressOffset(), used.capacity());
        }
        restMark = mark();
        if (call != null && needsInterrupt()) {
            interrupt();
        }
    }

    private boolean needsInterrupt() {
        if (eventIdx) {
            final int usedEvent = avail.getShortVolatile(AVAIL_RING + 2 * size) & 0xFFFF;
            final int old = signalledUsedIdx;
            final boolean valid = signalledValid;
            signalledUsedIdx = usedIdx;
            signalledValid = true;
            return !valid || dev.vhostnet.spec.SplitRingLayout.needEvent(usedEvent, usedIdx, old);
        }
        return (avail.getShortVolatile(0) & AVAIL_F_NO_INTERRUPT) == 0;
    }

    /** Ask the guest not to kick: we are polling. */
    @Override
    public void disableKicks() {
        if (!kicksEnabled || !isRunning() || !ringsReady) {
            return;
        }
        kicksEnabled = false;
        if (!eventIdx) {
            used.putShortVolatile(USED_FLAGS, (short) USED_F_NO_NOTIFY);
            if (log != null) {
                memory.logWrite(log, used.addressOffset(), 2);
            }
        }
        // With EVENT_IDX, avail_event is simply left behind: the guest kicks again only when its index
        // crosses the stale value, once per 2^16 buffers.
    }

    /**
     * Ask the guest to kick on its next buffer, before the dataplane sleeps. Returns true if buffers arrived
     * in the meantime (the caller must not sleep).
     */
    @Override
    public boolean enableKicks() {
        if (!isRunning() || !ringsReady) {
            return false;
        }
        kicksEnabled = true;
        if (eventIdx) {
            used.putShortVolatile(USED_RING + USED_ELEM_SIZE * size, (short) lastAvailIdx);
        } else {
            used.putShortVolatile(USED_FLAGS, (short) 0);
        }
        if (log != null) {
            memory.logWrite(log, used.addressOffset(), used.capacity());
        }
        return refreshAvailable() > 0;
    }

    @Override
    public String toString() {
        return "vq" + index + "{size=" + size + ", started=" + started + ", enabled=" + enabled + ", lastAvail="
            + lastAvailIdx + ", used=" + usedIdx + ", error=" + error + "}";
    }
}
