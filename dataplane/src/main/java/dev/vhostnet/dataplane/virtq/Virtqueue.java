package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.GuestMemory;
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

    /** Forget everything (disconnect, reset); fds must have been detached by the caller. */
    public void reset() {
        started = false;
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
        call = null;
        kick = null;
        err = null;
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

    /** The memory table the rings were last resolved against. */
    public final GuestMemory memory() {
        return memory;
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

    /** Ask the guest not to kick: we are polling. */
    public abstract void disableKicks();

    /** Ask the guest to kick on its next buffer; true if buffers arrived meanwhile (do not sleep). */
    public abstract boolean enableKicks();
}
