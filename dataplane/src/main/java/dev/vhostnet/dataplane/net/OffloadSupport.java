package dev.vhostnet.dataplane.net;

import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;

/** Which offloaded frames a receiving driver accepts, from its negotiated features. Immutable. */
public final class OffloadSupport {
    public static final OffloadSupport NONE = new OffloadSupport(0);

    private final long features;

    private OffloadSupport(final long features) {
        this.features = features;
    }

    public static OffloadSupport receiverOf(final long features) {
        return features == 0 ? NONE : new OffloadSupport(features);
    }

    /** The driver accepts frames whose checksum is still to be completed (VIRTIO_NET_HDR_F_NEEDS_CSUM). */
    public boolean partialChecksum() {
        return has(VirtioNetFeature.GUEST_CSUM);
    }

    public boolean tso4() {
        return has(VirtioNetFeature.GUEST_TSO4);
    }

    public boolean tso6() {
        return has(VirtioNetFeature.GUEST_TSO6);
    }

    public boolean ecn() {
        return has(VirtioNetFeature.GUEST_ECN);
    }

    public boolean ufo() {
        return has(VirtioNetFeature.GUEST_UFO);
    }

    public boolean uso4() {
        return has(VirtioNetFeature.GUEST_USO4);
    }

    public boolean uso6() {
        return has(VirtioNetFeature.GUEST_USO6);
    }

    private boolean has(final int bit) {
        return VirtioFeature.has(features, bit);
    }
}
