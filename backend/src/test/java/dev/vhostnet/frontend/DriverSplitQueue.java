package dev.vhostnet.frontend;

import dev.vhostnet.dataplane.sys.Epoll;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.spec.SplitRingLayout;
import org.agrona.concurrent.UnsafeBuffer;

import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.List;

import static dev.vhostnet.spec.SplitRingLayout.AVAIL_F_NO_INTERRUPT;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_FLAGS;
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
import static dev.vhostnet.spec.SplitRingLayout.USED_ELEM_SIZE;
import static dev.vhostnet.spec.SplitRingLayout.USED_F_NO_NOTIFY;
import static dev.vhostnet.spec.SplitRingLayout.USED_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.USED_IDX;
import static dev.vhostnet.spec.SplitRingLayout.USED_RING;

/**
 * The driver side of a split virtqueue laid out in a {@link GuestMemoryImage}: what a guest's virtio driver
 * does. Adds descriptor chains (optionally through an indirect table), publishes them with a release store of
 * avail->idx, kicks when the device asks for it (used->flags or avail_event with EVENT_IDX), collects used
 * entries and waits for calls on an eventfd. Single-threaded, like one vCPU driving one queue.
 */
public final class DriverSplitQueue implements AutoCloseable {
    /** Entries of each chain's private indirect table. */
    public static final int INDIRECT_CAPACITY = 64;

    private final GuestMemoryImage memory;
    private final int index;
    private final int size;
    private final long descOffset;
    private final long availOffset;
    private final long usedOffset;
    private final UnsafeBuffer desc;
    private final UnsafeBuffer avail;
    private final UnsafeBuffer used;
    private final EventFd kick = EventFd.create();
    private final EventFd call = EventFd.create();
    private final Epoll callWaiter = new Epoll(1);

    private final ArrayDeque<Integer> freeDescriptors = new ArrayDeque<>();
    /** Descriptors each head holds in the table (to free on completion), and its indirect table if any. */
    private final int[] chainLength;
    private final long[] indirectTable;
    private boolean eventIdx;
    private int availIdx;
    private int lastUsedIdx;
    private long kicks;

    /** A buffer to chain: guest physical address, length, and whether the device writes it. */
    public record Segment(long gpa, int len, boolean writable) {
        public static Segment readable(final long gpa, final int len) {
            return new Segment(gpa, len, false);
        }

        public static Segment writable(final long gpa, final int len) {
            return new Segment(gpa, len, true);
        }
    }

    /** A used ring entry: the head the device returns and the bytes it wrote. */
    public record Used(int id, int len) {
    }

    public DriverSplitQueue(final GuestMemoryImage memory, final int index, final int size) {
        if (!SplitRingLayout.isPowerOfTwo(size) || size > SplitRingLayout.MAX_QUEUE_SIZE) {
            throw new IllegalArgumentException("queue size " + size);
        }
        this.memory = memory;
        this.index = index;
        this.size = size;
        descOffset = memory.allocate(SplitRingLayout.descTableSize(size), SplitRingLayout.DESC_ALIGN);
        availOffset = memory.allocate(SplitRingLayout.availRingSize(size), SplitRingLayout.AVAIL_ALIGN);
        usedOffset = memory.allocate(SplitRingLayout.usedRingSize(size), SplitRingLayout.USED_ALIGN);
        desc = new UnsafeBuffer(memory.address(descOffset), (int) SplitRingLayout.descTableSize(size));
        avail = new UnsafeBuffer(memory.address(availOffset), (int) SplitRingLayout.availRingSize(size));
        used = new UnsafeBuffer(memory.address(usedOffset), (int) SplitRingLayout.usedRingSize(size));
        chainLength = new int[size];
        indirectTable = new long[size];
        java.util.Arrays.fill(indirectTable, -1);
        for (int i = 0; i < size; i++) {
            freeDescriptors.add(i);
        }
        callWaiter.add(call.fd(), 0);
    }

    public int index() {
        return index;
    }

    public int size() {
        return size;
    }

    public long descUva() {
        return memory.uva(descOffset);
    }

    public long availUva() {
        return memory.uva(availOffset);
    }

    public long usedUva() {
        return memory.uva(usedOffset);
    }

    public EventFd kickFd() {
        return kick;
    }

    public EventFd callFd() {
        return call;
    }

    /** Use VIRTIO_F_EVENT_IDX rules for kicks (avail_event) and for {@link #enableCalls()} (used_event). */
    public void setEventIdx(final boolean on) {
        eventIdx = on;
    }

    public int freeDescriptorCount() {
        return freeDescriptors.size();
    }

    /** Chains the driver made available and the device has not returned yet. */
    public int inFlight() {
        return (availIdx - lastUsedIdx) & 0xFFFF;
    }

    public long kicksSent() {
        return kicks;
    }

    // ---------------------------------------------------------------------------------------------
    // Adding buffers

    /** Whether a chain of {@code segments} buffers fits now (one descriptor if indirect). */
    public boolean canAdd(final int segments, final boolean indirect) {
        return freeDescriptors.size() >= (indirect ? 1 : segments);
    }

    /**
     * Put a chain in the descriptor table and in the next avail slot; not visible to the device until
     * {@link #publish()}. Readable segments must come before writable ones (the spec's rule; the device
     * checks it).
     *
     * @return the head descriptor index
     */
    public int add(final List<Segment> segments, final boolean indirect) {
        if (segments.isEmpty() || !canAdd(segments.size(), indirect)) {
            throw new IllegalStateException("no room for a chain of " + segments.size() + " in queue " + index);
        }
        final int head;
        if (indirect) {
            head = freeDescriptors.poll();
            if (segments.size() > INDIRECT_CAPACITY) {
                throw new IllegalArgumentException("indirect chain of " + segments.size());
            }
            if (indirectTable[head] < 0) {
                indirectTable[head] = memory.allocate((long) DESC_SIZE * INDIRECT_CAPACITY, SplitRingLayout.DESC_ALIGN);
            }
            final UnsafeBuffer table = new UnsafeBuffer(memory.address(indirectTable[head]), DESC_SIZE * INDIRECT_CAPACITY);
            for (int i = 0; i < segments.size(); i++) {
                final boolean last = i == segments.size() - 1;
                writeDescriptor(table, i, segments.get(i), last ? 0 : DESC_F_NEXT, last ? 0 : i + 1);
            }
            writeDescriptor(desc, head, memory.gpa(indirectTable[head]), DESC_SIZE * segments.size(), DESC_F_INDIRECT, 0);
            chainLength[head] = 1;
        } else {
            final int[] ids = new int[segments.size()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = freeDescriptors.poll();
            }
            for (int i = 0; i < ids.length; i++) {
                final boolean last = i == ids.length - 1;
                writeDescriptor(desc, ids[i], segments.get(i), last ? 0 : DESC_F_NEXT, last ? 0 : ids[i + 1]);
            }
            head = ids[0];
            chainLength[head] = ids.length;
        }
        pushAvail(head);
        return head;
    }

    private static void writeDescriptor(final UnsafeBuffer table, final int i, final Segment s, final int flags, final int next) {
        writeDescriptor(table, i, s.gpa(), s.len(), flags | (s.writable() ? DESC_F_WRITE : 0), next);
    }

    private static void writeDescriptor(final UnsafeBuffer table, final int i, final long addr, final int len,
                                        final int flags, final int next) {
        final int at = i * DESC_SIZE;
        table.putLong(at + DESC_ADDR, addr);
        table.putInt(at + DESC_LEN, len);
        table.putShort(at + DESC_FLAGS, (short) flags);
        table.putShort(at + DESC_NEXT, (short) next);
    }

    /**
     * Write descriptor {@code i} of the table exactly as given, bypassing all bookkeeping: for malformed
     * chains in tests. Pair with {@link #pushAvail(int)}.
     */
    public void writeRawDescriptor(final int i, final long addr, final int len, final int flags, final int next) {
        freeDescriptors.remove(i);
        writeDescriptor(desc, i, addr, len, flags, next);
    }

    /** Put {@code head} in the next avail slot (not yet published). */
    public void pushAvail(final int head) {
        avail.putShort(AVAIL_RING + 2 * (availIdx & (size - 1)), (short) head);
        availIdx = (availIdx + 1) & 0xFFFF;
    }

    /** Force the shadow avail index (e.g. to start a ring at a given base, or to publish a bogus jump). */
    public void setAvailIdx(final int idx) {
        availIdx = idx & 0xFFFF;
    }

    /** Start both shadow indexes at {@code base} (a ring set up with SET_VRING_BASE = base). */
    public void resetIndexes(final int base) {
        availIdx = base & 0xFFFF;
        lastUsedIdx = base & 0xFFFF;
        avail.putShortVolatile(AVAIL_IDX, (short) base);
        used.putShortVolatile(USED_IDX, (short) base);
    }

    public int availIdx() {
        return availIdx;
    }

    /**
     * Make the added chains visible (release store of avail->idx) and kick the device if it asked for
     * notifications. Returns whether it kicked.
     */
    public boolean publish() {
        final int old = avail.getShort(AVAIL_IDX) & 0xFFFF;
        avail.putShortVolatile(AVAIL_IDX, (short) availIdx); // release: ring entries and descriptors first
        VarHandle.fullFence(); // our idx store before reading the device's suppression state (StoreLoad)
        final boolean notify;
        if (eventIdx) {
            final int availEvent = used.getShortVolatile(SplitRingLayout.availEventOffset(size)) & 0xFFFF;
            notify = SplitRingLayout.needEvent(availEvent, availIdx, old);
        } else {
            notify = (used.getShortVolatile(USED_FLAGS) & USED_F_NO_NOTIFY) == 0;
        }
        if (notify) {
            kick();
        }
        return notify;
    }

    public void kick() {
        kick.signal();
        kicks++;
    }

    // ---------------------------------------------------------------------------------------------
    // Used ring

    /** used->idx as the device last published it (acquire load). */
    public int usedIdx() {
        return used.getShortVolatile(USED_IDX) & 0xFFFF;
    }

    public int lastUsedIdx() {
        return lastUsedIdx;
    }

    /** The next used entry, or null if the device has not returned one; frees the chain's descriptors. */
    public Used pollUsed() {
        if (usedIdx() == lastUsedIdx) {
            return null;
        }
        final int at = USED_RING + USED_ELEM_SIZE * (lastUsedIdx & (size - 1));
        final int id = used.getInt(at);
        final int len = used.getInt(at + 4);
        lastUsedIdx = (lastUsedIdx + 1) & 0xFFFF;
        if (id < 0 || id >= size || chainLength[id] == 0) {
            throw new IllegalStateException("device returned unknown head " + id + " on queue " + index);
        }
        freeChain(id);
        return new Used(id, len);
    }

    private void freeChain(final int head) {
        int d = head;
        for (int i = 0; i < chainLength[head]; i++) {
            final int next = desc.getShort(d * DESC_SIZE + DESC_NEXT) & 0xFFFF;
            freeDescriptors.add(d);
            d = next;
        }
        chainLength[head] = 0;
    }

    // ---------------------------------------------------------------------------------------------
    // Notification suppression and calls

    /** EVENT_IDX: ask for a call when used->idx moves past {@code idx} (the avail ring's used_event). */
    public void setUsedEvent(final int idx) {
        avail.putShortVolatile(SplitRingLayout.usedEventOffset(size), (short) idx);
    }

    /** Without EVENT_IDX: VIRTQ_AVAIL_F_NO_INTERRUPT on or off. */
    public void setNoInterrupt(final boolean on) {
        avail.putShortVolatile(AVAIL_FLAGS, (short) (on ? AVAIL_F_NO_INTERRUPT : 0));
    }

    /** avail_event as the device last wrote it (EVENT_IDX). */
    public int availEvent() {
        return used.getShortVolatile(SplitRingLayout.availEventOffset(size)) & 0xFFFF;
    }

    public int usedFlags() {
        return used.getShortVolatile(USED_FLAGS) & 0xFFFF;
    }

    /**
     * Ask for a call on the next used entry; returns true if entries arrived meanwhile (then no call is
     * guaranteed for them, so the caller must look at the ring before waiting).
     */
    public boolean enableCalls() {
        if (eventIdx) {
            setUsedEvent(lastUsedIdx);
        } else {
            setNoInterrupt(false);
        }
        VarHandle.fullFence();
        return usedIdx() != lastUsedIdx;
    }

    /** Wait until the call eventfd fires; returns the number of calls collected (0 on timeout). */
    public long awaitCall(final Duration timeout) {
        if (callWaiter.await((int) Math.max(1, timeout.toMillis())) == 0) {
            return 0;
        }
        return call.drain();
    }

    /** Calls signalled since the last drain, without waiting. */
    public long drainCalls() {
        return call.drain();
    }

    @Override
    public void close() {
        callWaiter.close();
        kick.close();
        call.close();
    }
}
