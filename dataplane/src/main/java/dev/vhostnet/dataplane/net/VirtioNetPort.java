package dev.vhostnet.dataplane.net;

import dev.vhostnet.dataplane.virtq.SplitVirtqueue;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import dev.vhostnet.spec.VirtioNetHeader;

/**
 * One virtio-net device as the dataplane sees it: its receive queue (index 0, the guest's RX, which we
 * fill) and its transmit queue (index 1, which we drain), and the negotiated features that shape frames.
 * Lives for the whole process; a front-end connecting, negotiating and disconnecting only changes its state.
 */
public final class VirtioNetPort {
    public static final int RX = 0;
    public static final int TX = 1;
    public static final int QUEUES = 2;

    private final String name;
    private final SplitVirtqueue[] queues = new SplitVirtqueue[QUEUES];
    private long features;
    private int headerLength = VirtioNetHeader.LEGACY_LENGTH;
    private boolean mergeable;

    public VirtioNetPort(final String name) {
        this.name = name;
        for (int i = 0; i < QUEUES; i++) {
            queues[i] = new SplitVirtqueue(i);
        }
    }

    public String name() {
        return name;
    }

    public SplitVirtqueue queue(final int i) {
        return queues[i];
    }

    public SplitVirtqueue rx() {
        return queues[RX];
    }

    public SplitVirtqueue tx() {
        return queues[TX];
    }

    public int queueCount() {
        return QUEUES;
    }

    /** Apply negotiated virtio features (dataplane thread). */
    public void setFeatures(final long features) {
        this.features = features;
        this.headerLength = VirtioNetHeader.lengthFor(features);
        this.mergeable = VirtioFeature.has(features, VirtioNetFeature.MRG_RXBUF);
        final boolean eventIdx = VirtioFeature.has(features, VirtioFeature.RING_EVENT_IDX);
        final boolean indirect = VirtioFeature.has(features, VirtioFeature.RING_INDIRECT_DESC);
        for (final SplitVirtqueue q : queues) {
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

    /** Whether packets can be delivered to this port now. */
    public boolean canReceive() {
        return queues[RX].isRunning();
    }
}
