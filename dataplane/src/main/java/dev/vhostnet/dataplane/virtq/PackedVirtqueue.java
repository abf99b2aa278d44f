package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.GuestMemory;
import org.agrona.concurrent.UnsafeBuffer;

import static dev.vhostnet.spec.PackedRingLayout.DESC_ADDR;
import static dev.vhostnet.spec.PackedRingLayout.DESC_F_AVAIL;
import static dev.vhostnet.spec.PackedRingLayout.DESC_F_INDIRECT;
import static dev.vhostnet.spec.PackedRingLayout.DESC_F_NEXT;
import static dev.vhostnet.spec.PackedRingLayout.DESC_F_USED;
import static dev.vhostnet.spec.PackedRingLayout.DESC_F_WRITE;
import static dev.vhostnet.spec.PackedRingLayout.DESC_FLAGS;
import static dev.vhostnet.spec.PackedRingLayout.DESC_ID;
import static dev.vhostnet.spec.PackedRingLayout.DESC_LEN;
import static dev.vhostnet.spec.PackedRingLayout.DESC_SIZE;
import static dev.vhostnet.spec.PackedRingLayout.EVENT_FLAGS;
import static dev.vhostnet.spec.PackedRingLayout.EVENT_FLAGS_DESC;
import static dev.vhostnet.spec.PackedRingLayout.EVENT_FLAGS_DISABLE;
import static dev.vhostnet.spec.PackedRingLayout.EVENT_FLAGS_ENABLE;
import static dev.vhostnet.spec.PackedRingLayout.EVENT_OFF_WRAP;
import static dev.vhostnet.spec.PackedRingLayout.MAX_QUEUE_SIZE;

/**
 * The device side of a packed virtqueue (virtio 1.x section 2.8): one descriptor ring shared by driver and
 * device, with avail/used flag bits compared against wrap counters, plus the driver and device event
 * suppression areas.
 *
 * <p>Ordering: a descriptor's flags are read with acquire semantics before its other fields. Used entries are
 * queued and written at {@link #publishUsed()}: ids and lengths first, then the flags of every entry but the
 * first, then (release) the first entry's flags, so the driver, which polls the first one, sees the whole
 * batch at once.
 *
 * <p>Positions are kept as 15-bit indexes plus wrap counters, and the vhost-user base encoding is bits 0-14
 * avail index, bit 15 avail wrap counter, bits 16-30 used index, bit 31 used wrap counter.
 */
public final class PackedVirtqueue extends Virtqueue {
    private final UnsafeBuffer ring = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer driverEvent = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer deviceEvent = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer indirect = new UnsafeBuffer(new byte[0]);

    private long ringUserAddr;
    private long driverUserAddr;
    private long deviceUserAddr;

    private int lastAvailIdx;
    private boolean availWrap = true;
    private int usedIdx;
    private boolean usedWrap = true;
    /** Ring descriptors the last popped chain occupied (the used index advances by this much). */
    private int lastChainDescs;

    // Completions queued since the last publish.
    private int pendingCount;
    private int[] pendingPos = new int[0];
    private int[] pendingId = new int[0];
    private int[] pendingLen = new int[0];
    private short[] pendingFlags = new short[0];

    /** Used index / wrap at the last interrupt decision, for the DESC event mode. */
    private int signalledUsedIdx;
    private boolean signalledUsedWrap;
    private boolean signalledValid;
    private boolean kicksEnabled = true;
    /** Inflight tracking (INFLIGHT_SHMFD), or null: every hook below is one null check when off. */
    private PackedInflight inflight;

    public PackedVirtqueue(final int index, final QueueCounters counters) {
        super(index, counters);
    }

    @Override
    public boolean isPacked() {
        return true;
    }

    @Override
    public QueueError start(final GuestMemory memory, final int size, final long descUserAddr,
                            final long driverUserAddr, final long deviceUserAddr, final int base) {
        if (size <= 0 || size > MAX_QUEUE_SIZE) {
            return fail(QueueError.RING_UNMAPPED);
        }
        this.size = size;
        this.ringUserAddr = descUserAddr;
        this.driverUserAddr = driverUserAddr;
        this.deviceUserAddr = deviceUserAddr;
        this.error = QueueError.NONE;
        this.ringsReady = false;
        this.lastAvailIdx = base & 0x7FFF;
        this.availWrap = (base & 0x8000) != 0;
        final int usedPart = base >>> 16;
        if (usedPart == 0) {
            // Front-ends that only encode the avail position (QEMU): nothing is in flight, used == avail.
            usedIdx = lastAvailIdx;
            usedWrap = availWrap;
        } else {
            usedIdx = usedPart & 0x7FFF;
            usedWrap = (usedPart & 0x8000) != 0;
        }
        if (lastAvailIdx >= size || usedIdx >= size) {
            return fail(QueueError.RING_UNMAPPED);
        }
        if (pendingPos.length < size) {
            pendingPos = new int[size];
            pendingId = new int[size];
            pendingLen = new int[size];
            pendingFlags = new short[size];
        }
        pendingCount = 0;
        signalledValid = false;
        kicksEnabled = true;
        this.started = true;
        resetTranslationWait();
        final QueueError result = remap(memory);
        if (result == QueueError.NONE && inflight != null) {
            // Reconnect: positions from the region, chains found inflight resubmitted first, in fetch order.
            // Completing in order, those are the chains at [used, avail) of the ring: the same ones a back-end
            // without tracking would re-read from there; the tracking matters for out-of-order completion.
            final long pos = inflight.start(size, usedIdx, usedWrap, ring);
            if (pos >= 0) {
                lastAvailIdx = (int) pos & 0x7FFF;
                availWrap = (pos & 0x8000) != 0;
                usedIdx = (int) (pos >>> 16) & 0x7FFF;
                usedWrap = (pos & 0x8000_0000L) != 0;
            }
        }
        return result;
    }

    @Override
    public void setInflight(final InflightBuffer.Region region) {
        inflight = region == null ? null : new PackedInflight(region);
    }

    /** Tracking state, for tests in this package. */
    PackedInflight inflight() {
        return inflight;
    }

    @Override
    public int pendingResubmits() {
        return inflight == null ? 0 : inflight.pendingResubmits();
    }

    @Override
    public QueueError remap(final GuestMemory memory) {
        this.memory = memory;
        if (!started) {
            return QueueError.NONE;
        }
        // All three parts at once (see SplitVirtqueue#remap).
        beginWalk();
        final long ringHost = translateRing(ringUserAddr, (long) DESC_SIZE * size, dev.vhostnet.spec.IotlbMessage.PERM_RW);
        final long driverHost = translateRing(driverUserAddr, 4, dev.vhostnet.spec.IotlbMessage.PERM_RO);
        final long deviceHost = translateRing(deviceUserAddr, 4, dev.vhostnet.spec.IotlbMessage.PERM_WO);
        if (ringHost == RING_MISS || driverHost == RING_MISS || deviceHost == RING_MISS) {
            ringsReady = false;
            return QueueError.IOTLB_MISS;
        }
        if (ringHost == GuestMemory.UNMAPPED || driverHost == GuestMemory.UNMAPPED || deviceHost == GuestMemory.UNMAPPED
            || (ringHost & 15) != 0 || (driverHost & 3) != 0 || (deviceHost & 3) != 0) {
            ringsReady = false;
            return fail(QueueError.RING_UNMAPPED);
        }
        ringsReady = true;
        ring.wrap(ringHost, DESC_SIZE * size);
        driverEvent.wrap(driverHost, 4);
        deviceEvent.wrap(deviceHost, 4);
        if (pendingCount == 0) {
            restMark = mark();
        }
        return QueueError.NONE;
    }

    @Override
    public int stop() {
        if (started && ringsReady && error == QueueError.NONE && pendingCount > 0) {
            publishUsed();
        }
        started = false;
        return encodeBase();
    }

    /** Current position in the vhost-user base encoding. */
    public int encodeBase() {
        return (lastAvailIdx | (availWrap ? 0x8000 : 0)) | ((usedIdx | (usedWrap ? 0x8000 : 0)) << 16);
    }

    @Override
    public void reset() {
        super.reset();
        inflight = null;
        lastAvailIdx = 0;
        availWrap = true;
        usedIdx = 0;
        usedWrap = true;
        pendingCount = 0;
        signalledValid = false;
        ring.wrap(new byte[0]);
        driverEvent.wrap(new byte[0]);
        deviceEvent.wrap(new byte[0]);
    }

    @Override
    protected void onCallChanged() {
        signalledValid = false;
    }

    // ---------------------------------------------------------------------------------------------

    private boolean isAvail(final int flags) {
        return ((flags & DESC_F_AVAIL) != 0) == availWrap && ((flags & DESC_F_USED) != 0) != availWrap;
    }

    /**
     * Packed rings carry no index to read: "available" means the descriptor at our position is marked
     * available for the current wrap. We report 1 or 0; the forwarder pops until it sees 0.
     */
    @Override
    public int available() {
        if (inflight != null && inflight.pendingResubmits() > 0 && isRunning()) {
            return inflight.pendingResubmits();
        }
        return refreshAvailable();
    }

    @Override
    public int refreshAvailable() {
        if (!started || !enabled || error != QueueError.NONE || iotlb != null && !iotlbReady()) {
            return 0;
        }
        if (!ringsReady) {
            return 0;
        }
        final int flags = ring.getShortVolatile(lastAvailIdx * DESC_SIZE + DESC_FLAGS) & 0xFFFF;
        return isAvail(flags) ? 1 : 0;
    }

    @Override
    public boolean pop(final DescriptorChain chain) {
        final PackedInflight t = inflight;
        if (t != null && t.pendingResubmits() > 0) {
            return popResubmitted(t, t.nextResubmit(), chain);
        }
        if (pendingCount >= size) {
            // Every slot already holds a completion we have not published: a driver that offers more is
            // re-offering descriptors it does not own.
            return failed(QueueError.AVAIL_IDX_JUMP);
        }
        chain.ensureCapacity(size + 8);
        chain.reset(-1);
        beginWalk();
        // After a buffer missed, the rest of the chain is still walked (validated, its misses asked for at
        // once), and the chain is then retried as a whole.
        boolean missed = false;
        int pos = lastAvailIdx;
        boolean wrap = availWrap;
        int descs = 0;
        while (true) {
            if (descs == size) {
                return failed(QueueError.CHAIN_TOO_LONG);
            }
            final int at = pos * DESC_SIZE;
            final int flags = ring.getShortVolatile(at + DESC_FLAGS) & 0xFFFF;
            if (descs > 0 && (((flags & DESC_F_AVAIL) != 0) != wrap || ((flags & DESC_F_USED) != 0) == wrap)) {
                // The driver makes a chain available by writing its head's flags last; a chain whose tail is
                // not available is malformed.
                return failed(QueueError.NEXT_OUT_OF_RANGE);
            }
            final long addr = ring.getLong(at + DESC_ADDR);
            final long len = ring.getInt(at + DESC_LEN) & 0xFFFF_FFFFL;
            final int id = ring.getShort(at + DESC_ID) & 0xFFFF;
            if (t != null && !t.onDescriptor(descs, (flags & (DESC_F_NEXT | DESC_F_INDIRECT)) != DESC_F_NEXT,
                addr, (int) len, flags, id)) {
                return failed(QueueError.INFLIGHT_FULL);
            }
            descs++;
            if (++pos == size) {
                pos = 0;
                wrap = !wrap;
            }
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirectAllowed) {
                    return failed(QueueError.INDIRECT_NOT_NEGOTIATED);
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    return failed(QueueError.INDIRECT_WITH_NEXT);
                }
                final QueueError e = walkIndirect(chain, addr, len);
                if (e == QueueError.IOTLB_MISS) {
                    missed = true;
                } else if (e != QueueError.NONE) {
                    return failed(e);
                }
                chain.head = id;
                break;
            }
            final boolean writable = (flags & DESC_F_WRITE) != 0;
            if (!writable && chain.writeCount > 0) {
                return failed(QueueError.READABLE_AFTER_WRITABLE);
            }
            final QueueError e = missed ? addMissing(chain, addr, len, writable) : addBuffer(chain, addr, len, writable);
            if (e == QueueError.IOTLB_MISS) {
                missed = true;
            } else if (e != QueueError.NONE) {
                return failed(e);
            }
            if ((flags & DESC_F_NEXT) == 0) {
                chain.head = id; // the buffer id is in the last descriptor of the chain
                break;
            }
        }
        if (missed) {
            askAheadOfMiss(pos, wrap, chain);
            return failed(QueueError.IOTLB_MISS); // not a failure: retried once the translations arrived
        }
        if (chain.head >= size) {
            return failed(QueueError.BAD_BUFFER_ID);
        }
        if (t != null) {
            t.bind(chain.head);
        }
        lastAvailIdx = pos;
        availWrap = wrap;
        lastChainDescs = descs;
        chain.ringDescs = descs;
        if (iotlb != null) {
            walked();
        }
        return true;
    }

    /** A chain a previous back-end took and did not complete, walked again from its copy in the region. */
    private boolean popResubmitted(final PackedInflight t, final int slot, final DescriptorChain chain) {
        chain.ensureCapacity(size + 8);
        chain.reset(-1);
        beginWalk();
        final int num = t.num(slot);
        int j = slot;
        int id = -1;
        for (int k = 0; k < num; k++) {
            if (j >= t.entries()) {
                return failed(QueueError.CHAIN_TOO_LONG);
            }
            final long addr = t.addr(j);
            final long len = t.len(j) & 0xFFFF_FFFFL;
            final int flags = t.flags(j);
            id = t.id(j);
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirectAllowed) {
                    return failed(QueueError.INDIRECT_NOT_NEGOTIATED);
                }
                if ((flags & DESC_F_NEXT) != 0 || k != num - 1) {
                    return failed(QueueError.INDIRECT_WITH_NEXT);
                }
                final QueueError e = walkIndirect(chain, addr, len);
                if (e != QueueError.NONE) {
                    return failed(e);
                }
            } else {
                final boolean writable = (flags & DESC_F_WRITE) != 0;
                if (!writable && chain.writeCount > 0) {
                    return failed(QueueError.READABLE_AFTER_WRITABLE);
                }
                final QueueError e = addBuffer(chain, addr, len, writable);
                if (e != QueueError.NONE) {
                    return failed(e);
                }
            }
            j = t.next(j);
        }
        if (id < 0 || id >= size) {
            return failed(QueueError.BAD_BUFFER_ID);
        }
        chain.head = id;
        chain.ringDescs = num;
        lastChainDescs = num;
        t.bindResubmitted(id, slot);
        return true;
    }

    /** Chains after a missing one whose translations are asked for in the same round trip. */
    private static final int CHAINS_AHEAD = 32;

    /**
     * After a chain missed: walk the chains made available after it, from {@code pos}/{@code wrap}, without
     * taking them, so that their missing pages go out in the same round trip (see SplitVirtqueue). Stops at
     * the first chain that is not available or not well formed (its real pop reports it).
     */
    private void askAheadOfMiss(final int from, final boolean fromWrap, final DescriptorChain scratch) {
        int pos = from;
        boolean wrap = fromWrap;
        for (int k = 0; k < CHAINS_AHEAD && error == QueueError.NONE; k++) {
            scratch.reset(-1);
            int descs = 0;
            while (true) {
                if (descs == size) {
                    return;
                }
                final int at = pos * DESC_SIZE;
                final int flags = ring.getShortVolatile(at + DESC_FLAGS) & 0xFFFF;
                if (((flags & DESC_F_AVAIL) != 0) != wrap || ((flags & DESC_F_USED) != 0) == wrap) {
                    return; // not made available (yet)
                }
                final long addr = ring.getLong(at + DESC_ADDR);
                final long len = ring.getInt(at + DESC_LEN) & 0xFFFF_FFFFL;
                descs++;
                if (++pos == size) {
                    pos = 0;
                    wrap = !wrap;
                }
                if ((flags & DESC_F_INDIRECT) != 0) {
                    if (!indirectAllowed || (flags & DESC_F_NEXT) != 0) {
                        return;
                    }
                    final QueueError e = walkIndirect(scratch, addr, len);
                    if (e != QueueError.NONE && e != QueueError.IOTLB_MISS) {
                        return;
                    }
                    break;
                }
                final QueueError e = addMissing(scratch, addr, len, (flags & DESC_F_WRITE) != 0);
                if (e != QueueError.NONE && e != QueueError.IOTLB_MISS) {
                    return;
                }
                if ((flags & DESC_F_NEXT) == 0) {
                    break;
                }
            }
        }
    }

    private boolean failed(final QueueError e) {
        if (e != QueueError.IOTLB_MISS) {
            fail(e); // a miss is not a failure: the position was not advanced, the chain is retried
        }
        return false;
    }

    private QueueError walkIndirect(final DescriptorChain chain, final long addr, final long len) {
        if (len == 0 || (len & (DESC_SIZE - 1)) != 0 || len > (long) DESC_SIZE * MAX_QUEUE_SIZE) {
            return QueueError.BAD_INDIRECT_SIZE;
        }
        final long host = translateTable(addr, len);
        if (host == RING_MISS) {
            return QueueError.IOTLB_MISS;
        }
        if (host == GuestMemory.UNMAPPED) {
            return QueueError.INDIRECT_UNMAPPED;
        }
        indirect.wrap(host, (int) len);
        final int n = (int) (len / DESC_SIZE);
        boolean missed = false;
        // In a packed indirect table descriptors are used in order; NEXT is ignored.
        for (int i = 0; i < n; i++) {
            final int at = i * DESC_SIZE;
            final long a = indirect.getLong(at + DESC_ADDR);
            final long l = indirect.getInt(at + DESC_LEN) & 0xFFFF_FFFFL;
            final int f = indirect.getShort(at + DESC_FLAGS) & 0xFFFF;
            if ((f & DESC_F_INDIRECT) != 0) {
                return QueueError.NESTED_INDIRECT;
            }
            final boolean writable = (f & DESC_F_WRITE) != 0;
            if (!writable && chain.writeCount > 0) {
                return QueueError.READABLE_AFTER_WRITABLE;
            }
            final QueueError e = missed ? addMissing(chain, a, l, writable) : addBuffer(chain, a, l, writable);
            if (e == QueueError.IOTLB_MISS) {
                missed = true; // the rest of the table's misses are asked for at once too
            } else if (e != QueueError.NONE) {
                return e;
            }
        }
        return missed ? QueueError.IOTLB_MISS : QueueError.NONE;
    }

    @Override
    public void addUsed(final DescriptorChain chain, final int len) {
        final int i = pendingCount++;
        pendingPos[i] = usedIdx;
        pendingId[i] = chain.head();
        pendingLen[i] = len;
        pendingFlags[i] = (short) (usedWrap ? (DESC_F_AVAIL | DESC_F_USED) : 0);
        usedIdx += chain.ringDescs;
        if (usedIdx >= size) {
            usedIdx -= size;
            usedWrap = !usedWrap;
        }
    }

    @Override
    public long mark() {
        if (inflight != null) {
            inflight.mark();
        }
        return ((long) pendingCount << 48) | ((long) (usedIdx | (usedWrap ? 0x8000 : 0)) << 16)
            | (lastAvailIdx | (availWrap ? 0x8000 : 0));
    }

    @Override
    public void rewind(final long mark) {
        if (inflight != null) {
            inflight.rewind();
        }
        pendingCount = (int) (mark >>> 48);
        final int used = (int) (mark >>> 16) & 0xFFFF;
        usedIdx = used & 0x7FFF;
        usedWrap = (used & 0x8000) != 0;
        lastAvailIdx = (int) mark & 0x7FFF;
        availWrap = (mark & 0x8000) != 0;
    }

    @Override
    public void publishUsed() {
        final int n = pendingCount;
        if (n == 0 || !isRunning() || !ringsReady) {
            restMark = mark();
            return;
        }
        final PackedInflight t = inflight;
        if (t != null) {
            t.linkBatch(pendingId, n, usedIdx, usedWrap);
        }
        for (int i = 0; i < n; i++) {
            final int at = pendingPos[i] * DESC_SIZE;
            ring.putShort(at + DESC_ID, (short) pendingId[i]);
            ring.putInt(at + DESC_LEN, pendingLen[i]);
        }
        // Ids and lengths before any flag: a driver that sees a used flag must see its entry.
        java.lang.invoke.VarHandle.storeStoreFence();
        for (int i = n - 1; i > 0; i--) {
            ring.putShort(pendingPos[i] * DESC_SIZE + DESC_FLAGS, pendingFlags[i]);
        }
        // Volatile store: releases the whole batch, and orders it before the event-suppression read below.
        ring.putShortVolatile(pendingPos[0] * DESC_SIZE + DESC_FLAGS, pendingFlags[0]);
        if (t != null) {
            t.completeBatch(pendingId, n, usedIdx, usedWrap);
        }
        pendingCount = 0;
        if (log != null) {
            memory.logWrite(log, ring.addressOffset(), ring.capacity());
        }
        if (call != null && needsInterrupt()) {
            interrupt();
        }
    }

    private boolean needsInterrupt() {
        final int flags = driverEvent.getShortVolatile(EVENT_FLAGS) & 0x3;
        final int oldIdx = signalledUsedIdx;
        final boolean oldWrap = signalledUsedWrap;
        final boolean valid = signalledValid;
        signalledUsedIdx = usedIdx;
        signalledUsedWrap = usedWrap;
        signalledValid = true;
        if (flags == EVENT_FLAGS_ENABLE) {
            return true;
        }
        if (flags != EVENT_FLAGS_DESC || !eventIdx) {
            return flags != EVENT_FLAGS_DISABLE;
        }
        if (!valid) {
            return true;
        }
        final int offWrap = driverEvent.getShortVolatile(EVENT_OFF_WRAP) & 0xFFFF;
        int eventIdxPos = offWrap & 0x7FFF;
        final boolean eventWrap = (offWrap & 0x8000) != 0;
        // Bring the event position into the same numbering as new/old (unwrapped across one lap).
        int newIdx = usedIdx;
        int old = oldIdx;
        if (usedWrap != oldWrap) {
            old -= size; // we wrapped since the last decision
        }
        if (eventWrap != usedWrap) {
            eventIdxPos -= size;
        }
        return ((newIdx - eventIdxPos - 1) & 0xFFFF) < ((newIdx - old) & 0xFFFF);
    }

    @Override
    public void disableKicks() {
        if (!kicksEnabled || !isRunning() || !ringsReady) {
            return;
        }
        kicksEnabled = false;
        deviceEvent.putShortVolatile(EVENT_FLAGS, (short) EVENT_FLAGS_DISABLE);
        if (log != null) {
            memory.logWrite(log, deviceEvent.addressOffset(), 4);
        }
    }

    @Override
    public boolean enableKicks() {
        if (!isRunning() || !ringsReady) {
            return false;
        }
        kicksEnabled = true;
        deviceEvent.putShortVolatile(EVENT_FLAGS, (short) EVENT_FLAGS_ENABLE);
        if (log != null) {
            memory.logWrite(log, deviceEvent.addressOffset(), 4);
        }
        return refreshAvailable() > 0;
    }

    @Override
    public String toString() {
        return "packed-vq" + index + "{size=" + size + ", started=" + started + ", enabled=" + enabled
            + ", avail=" + lastAvailIdx + "/" + availWrap + ", used=" + usedIdx + "/" + usedWrap + ", error=" + error + "}";
    }
}
