package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.sys.EventFd;
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
public final class SplitVirtqueue {
    private final int index;
    private final QueueCounters counters = new QueueCounters();

    // Rings, re-wrapped on start and on every memory table change.
    private final UnsafeBuffer desc = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer avail = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer used = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer indirect = new UnsafeBuffer(new byte[0]);

    private GuestMemory memory = GuestMemory.EMPTY;
    private int size;
    private int mask;
    private long descUserAddr;
    private long availUserAddr;
    private long usedUserAddr;

    private boolean eventIdx;
    private boolean indirectAllowed;

    private boolean started;
    private boolean enabled;
    private QueueError error = QueueError.NONE;

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

    private EventFd call;
    private EventFd kick;
    private EventFd err;

    public SplitVirtqueue(final int index) {
        this.index = index;
    }

    public int index() {
        return index;
    }

    public QueueCounters counters() {
        return counters;
    }

    // ---------------------------------------------------------------------------------------------
    // Control (dataplane thread, from commands)

    public void setFeatures(final boolean eventIdx, final boolean indirectAllowed) {
        this.eventIdx = eventIdx;
        this.indirectAllowed = indirectAllowed;
        signalledValid = false;
    }

    /**
     * Start processing: the ring addresses (front-end virtual addresses) are resolved against the memory
     * table, and processing begins at {@code base}.
     *
     * @return {@link QueueError#NONE}, or why the ring cannot be used (the queue is then broken)
     */
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
        this.lastAvailIdx = base & 0xFFFF;
        this.shadowAvailIdx = lastAvailIdx;
        this.started = true;
        this.signalledValid = false;
        this.kicksEnabled = true;
        final QueueError result = remap(memory);
        if (result == QueueError.NONE) {
            // The used index the driver sees is authoritative: after a reconnect it may differ from base.
            usedIdx = used.getShortVolatile(USED_IDX) & 0xFFFF;
            publishedUsedIdx = usedIdx;
        }
        return result;
    }

    /** Re-resolve the rings against a new memory table (SET_MEM_TABLE / ADD/REM_MEM_REG while running). */
    public QueueError remap(final GuestMemory memory) {
        this.memory = memory;
        if (!started) {
            return QueueError.NONE;
        }
        final long descHost = memory.uvaToHost(descUserAddr, (long) DESC_SIZE * size);
        final long availHost = memory.uvaToHost(availUserAddr, 6L + 2L * size);
        final long usedHost = memory.uvaToHost(usedUserAddr, 6L + (long) USED_ELEM_SIZE * size);
        if (descHost == GuestMemory.UNMAPPED || availHost == GuestMemory.UNMAPPED || usedHost == GuestMemory.UNMAPPED
            || (descHost & 15) != 0 || (availHost & 1) != 0 || (usedHost & 3) != 0) {
            return fail(QueueError.RING_UNMAPPED);
        }
        desc.wrap(descHost, DESC_SIZE * size);
        avail.wrap(availHost, 6 + 2 * size);
        used.wrap(usedHost, 6 + USED_ELEM_SIZE * size);
        return QueueError.NONE;
    }

    /** Stop the ring (GET_VRING_BASE); returns the index of the next available entry to process. */
    public int stop() {
        if (started && error == QueueError.NONE && usedIdx != publishedUsedIdx) {
            publishUsed();
        }
        started = false;
        return lastAvailIdx;
    }

    public void setEnabled(final boolean enabled) {
        this.enabled = enabled;
    }

    public boolean isStarted() {
        return started;
    }

    public boolean isEnabled() {
        return enabled;
    }

    /** Ready for traffic: started, enabled, not broken. */
    public boolean isRunning() {
        return started && enabled && error == QueueError.NONE;
    }

    public QueueError error() {
        return error;
    }

    public int size() {
        return size;
    }

    public int lastAvailIdx() {
        return lastAvailIdx;
    }

    public void setLastAvailIdx(final int base) {
        lastAvailIdx = base & 0xFFFF;
        shadowAvailIdx = lastAvailIdx;
    }

    public EventFd setCall(final EventFd call) {
        final EventFd old = this.call;
        this.call = call;
        signalledValid = false;
        return old;
    }

    public EventFd setKick(final EventFd kick) {
        final EventFd old = this.kick;
        this.kick = kick;
        return old;
    }

    public EventFd setErr(final EventFd err) {
        final EventFd old = this.err;
        this.err = err;
        return old;
    }

    public EventFd kick() {
        return kick;
    }

    public EventFd call() {
        return call;
    }

    /** Mark the queue broken; processing stops until the front-end sets it up again. */
    public QueueError fail(final QueueError why) {
        if (error == QueueError.NONE) {
            error = why;
            counters.add(QueueCounters.ERRORS, 1);
            if (err != null) {
                err.signal();
            }
        }
        return why;
    }

    /** Forget everything (disconnect, RESET_OWNER, RESET_DEVICE); returns nothing: fds are closed by the caller. */
    public void reset() {
        started = false;
        enabled = false;
        error = QueueError.NONE;
        memory = GuestMemory.EMPTY;
        size = 0;
        lastAvailIdx = 0;
        shadowAvailIdx = 0;
        usedIdx = 0;
        publishedUsedIdx = 0;
        signalledValid = false;
        eventIdx = false;
        indirectAllowed = false;
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
    public int available() {
        if (!isRunning()) {
            return 0;
        }
        final int cached = (shadowAvailIdx - lastAvailIdx) & 0xFFFF;
        if (cached != 0 && cached <= size) {
            return cached;
        }
        return refreshAvailable();
    }

    /** Re-read avail->idx from guest memory (acquire: ring entries it covers are read after it). */
    public int refreshAvailable() {
        if (!isRunning()) {
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
    public boolean pop(final DescriptorChain chain) {
        final int head = avail.getShort(AVAIL_RING + 2 * (lastAvailIdx & mask)) & 0xFFFF;
        lastAvailIdx = (lastAvailIdx + 1) & 0xFFFF;
        if (head >= size) {
            fail(QueueError.HEAD_OUT_OF_RANGE);
            return false;
        }
        chain.ensureCapacity(size + 8);
        final QueueError walked = walk(head, chain);
        if (walked != QueueError.NONE) {
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
                final long host = memory.gpaToHost(addr, len);
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
            final QueueError added = addBuffer(chain, addr, len, writable);
            if (added != QueueError.NONE) {
                return added;
            }
            if ((flags & DESC_F_NEXT) == 0) {
                return QueueError.NONE;
            }
            if (next >= tableSize) {
                return QueueError.NEXT_OUT_OF_RANGE;
            }
            i = next;
        }
    }

    /** Translate one descriptor's buffer, splitting it where it straddles two adjacent regions. */
    private QueueError addBuffer(final DescriptorChain chain, final long addr, final long len, final boolean writable) {
        long gpa = addr;
        long remaining = len;
        while (remaining > 0) {
            final long host = memory.gpaToHostStart(gpa);
            if (host == GuestMemory.UNMAPPED) {
                return QueueError.BUFFER_UNMAPPED;
            }
            final int n = (int) Math.min(remaining, Math.min(memory.contiguousBytes(gpa), Integer.MAX_VALUE));
            final boolean ok = writable ? chain.addWritable(host, n) : chain.addReadable(host, n);
            if (!ok) {
                return QueueError.TOO_MANY_SEGMENTS;
            }
            gpa += n;
            remaining -= n;
        }
        return QueueError.NONE;
    }

    /** Queue a used entry (not visible to the guest until {@link #publishUsed()}). */
    public void addUsed(final int id, final int len) {
        final int at = USED_RING + USED_ELEM_SIZE * (usedIdx & mask);
        used.putInt(at, id);
        used.putInt(at + 4, len);
        usedIdx = (usedIdx + 1) & 0xFFFF;
    }

    /** Position to return to if a multi-chain operation (mergeable RX) cannot complete. */
    public long mark() {
        return ((long) lastAvailIdx << 16) | usedIdx;
    }

    /** Give back chains popped and used entries queued since {@code mark}; the guest never saw them. */
    public void rewind(final long mark) {
        lastAvailIdx = (int) (mark >>> 16) & 0xFFFF;
        usedIdx = (int) mark & 0xFFFF;
    }

    /** Publish queued used entries (release store) and interrupt the guest if it asked to be. */
    public void publishUsed() {
        if (usedIdx == publishedUsedIdx || !isRunning()) {
            return;
        }
        // Volatile store: release for the entries written above, and the StoreLoad fence the interrupt
        // decision below needs (the guest writes used_event / flags, then reads used->idx).
        used.putShortVolatile(USED_IDX, (short) usedIdx);
        publishedUsedIdx = usedIdx;
        if (call != null && needsInterrupt()) {
            call.signal();
            counters.add(QueueCounters.CALLS, 1);
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
    public void disableKicks() {
        if (!kicksEnabled || !isRunning()) {
            return;
        }
        kicksEnabled = false;
        if (!eventIdx) {
            used.putShortVolatile(USED_FLAGS, (short) USED_F_NO_NOTIFY);
        }
        // With EVENT_IDX, avail_event is simply left behind: the guest kicks again only when its index
        // crosses the stale value, once per 2^16 buffers.
    }

    /**
     * Ask the guest to kick on its next buffer, before the dataplane sleeps. Returns true if buffers arrived
     * in the meantime (the caller must not sleep).
     */
    public boolean enableKicks() {
        if (!isRunning()) {
            return false;
        }
        kicksEnabled = true;
        if (eventIdx) {
            used.putShortVolatile(USED_RING + USED_ELEM_SIZE * size, (short) lastAvailIdx);
        } else {
            used.putShortVolatile(USED_FLAGS, (short) 0);
        }
        return refreshAvailable() > 0;
    }

    @Override
    public String toString() {
        return "vq" + index + "{size=" + size + ", started=" + started + ", enabled=" + enabled + ", lastAvail="
            + lastAvailIdx + ", used=" + usedIdx + ", error=" + error + "}";
    }
}
