package dev.vhostnet.dataplane.net;

import dev.vhostnet.dataplane.virtq.PackedVirtqueue;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.SplitVirtqueue;
import dev.vhostnet.dataplane.virtq.Virtqueue;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import dev.vhostnet.spec.VirtioNetHeader;

/**
 * One virtio-net device as the dataplane sees it: its queue pairs (queue 2i is pair i's receive queue,
 * which we fill; 2i+1 its transmit queue, which we drain) and the negotiated features that shape frames.
 * Lives for the whole process; a front-end connecting, negotiating and disconnecting only changes its state.
 * Each queue index has a split and a packed implementation sharing one set of counters; the negotiated
 * ring format picks which one is active.
 */
public final class VirtioNetPort {
    private final String name;
    private final int maxPairs;
    private final SplitVirtqueue[] split;
    private final PackedVirtqueue[] packed;
    private final Virtqueue[] active;
    private long features;
    private int headerLength = VirtioNetHeader.LEGACY_LENGTH;
    private boolean mergeable;
    private boolean packedRings;
    private OffloadSupport receiverOffloads = OffloadSupport.NONE;
    /** vhost-pci ring lease (spec/VHOST-PCI.md §9.3): when leased, rings are walked only before the deadline. */
    private volatile boolean leased;
    private volatile long leaseDeadlineNanos;

    public VirtioNetPort(final String name) {
        this(name, 1);
    }

    public VirtioNetPort(final String name, final int maxPairs) {
        if (maxPairs < 1 || maxPairs > 128) {
            throw new IllegalArgumentException("queue pairs must be 1..128");
        }
        this.name = name;
        this.maxPairs = maxPairs;
        final int n = 2 * maxPairs;
        split = new SplitVirtqueue[n];
        packed = new PackedVirtqueue[n];
        active = new Virtqueue[n];
        for (int i = 0; i < n; i++) {
            final QueueCounters counters = new QueueCounters();
            split[i] = new SplitVirtqueue(i, counters);
            packed[i] = new PackedVirtqueue(i, counters);
            active[i] = split[i];
        }
    }

    public String name() {
        return name;
    }

    public Virtqueue queue(final int i) {
        return active[i];
    }

    public Virtqueue rx(final int pair) {
        return active[2 * pair];
    }

    public Virtqueue tx(final int pair) {
        return active[2 * pair + 1];
    }

    /** Pair 0's queues (single-queue devices). */
    public Virtqueue rx() {
        return active[0];
    }

    public Virtqueue tx() {
        return active[1];
    }

    public int queueCount() {
        return active.length;
    }

    public int maxPairs() {
        return maxPairs;
    }

    /** Apply negotiated virtio features (dataplane thread; rings are stopped while features change). */
    public void setFeatures(final long features) {
        this.features = features;
        this.headerLength = VirtioNetHeader.lengthFor(features);
        this.mergeable = VirtioFeature.has(features, VirtioNetFeature.MRG_RXBUF);
        this.receiverOffloads = OffloadSupport.receiverOf(features);
        final boolean wantPacked = VirtioFeature.has(features, VirtioFeature.RING_PACKED);
        if (wantPacked != packedRings) {
            for (int i = 0; i < active.length; i++) {
                final Virtqueue next = wantPacked ? packed[i] : split[i];
                active[i].transferTo(next);
                active[i].reset();
                active[i] = next;
            }
            packedRings = wantPacked;
        }
        final boolean eventIdx = VirtioFeature.has(features, VirtioFeature.RING_EVENT_IDX);
        final boolean indirect = VirtioFeature.has(features, VirtioFeature.RING_INDIRECT_DESC);
        for (final Virtqueue q : active) {
            q.setFeatures(eventIdx, indirect);
        }
    }

    public long features() {
        return features;
    }

    public int headerLength() {
        return headerLength;
    }

    public boolean mergeable() {
        return mergeable;
    }

    public boolean packedRings() {
        return packedRings;
    }

    /** Offloads this port's driver accepts on receive (GUEST_CSUM, GUEST_TSO4, ...). */
    public OffloadSupport receiverOffloads() {
        return receiverOffloads;
    }

    /**
     * Walk this port's rings only under a lease (true) until {@code deadlineNanos} (System.nanoTime), or
     * without one (false). Used for rings of another process's guest (vhost-pci device side).
     */
    public void setLease(final boolean required, final long deadlineNanos) {
        this.leaseDeadlineNanos = deadlineNanos;
        this.leased = required;
    }

    /** Whether the dataplane may touch this port's rings now (no lease required, or the lease runs). */
    public boolean leaseValid() {
        return !leased || System.nanoTime() - leaseDeadlineNanos < 0;
    }

    /** Whether packets can be delivered to pair {@code pair} now. */
    public boolean canReceive(final int pair) {
        return active[2 * pair].isRunning();
    }

    public boolean canReceive() {
        return canReceive(0);
    }

    /** Number of pairs whose transmit queue is running (a prefix, as for receive). */
    public int transmittingPairs() {
        int n = 0;
        while (n < maxPairs && active[2 * n + 1].isRunning()) {
            n++;
        }
        return n;
    }

    /** Number of pairs whose receive queue is running, counted from pair 0 (the driver enables a prefix). */
    public int receivingPairs() {
        int n = 0;
        while (n < maxPairs && active[2 * n].isRunning()) {
            n++;
        }
        return n;
    }
}
