package dev.vhostnet.backend;

import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;

/** What this back-end offers a front-end, and the device identity (MAC, MTU) it reports. */
public final class NetDeviceConfig {
    /**
     * Virtio features offered: only what the dataplane implements. Split and packed rings, both completed
     * in order; the usual offloads, passed through to the peer or done in software when it lacks them.
     * UFO is not offered: it is deprecated and the software fallback would have to fragment IP.
     */
    public static final long BASE_FEATURES =
        VirtioFeature.bit(VirtioFeature.VERSION_1)
            | VirtioFeature.bit(VirtioFeature.RING_INDIRECT_DESC)
            | VirtioFeature.bit(VirtioFeature.RING_EVENT_IDX)
            | VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)
            | VirtioFeature.bit(VirtioFeature.RING_PACKED)
            | VirtioFeature.bit(VirtioFeature.IN_ORDER)
            | VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF)
            | VirtioFeature.bit(VirtioNetFeature.CSUM)
            | VirtioFeature.bit(VirtioNetFeature.GUEST_CSUM)
            | VirtioFeature.bit(VirtioNetFeature.HOST_TSO4)
            | VirtioFeature.bit(VirtioNetFeature.HOST_TSO6)
            | VirtioFeature.bit(VirtioNetFeature.HOST_ECN)
            | VirtioFeature.bit(VirtioNetFeature.GUEST_TSO4)
            | VirtioFeature.bit(VirtioNetFeature.GUEST_TSO6)
            | VirtioFeature.bit(VirtioNetFeature.GUEST_ECN)
            | VirtioFeature.bit(VirtioNetFeature.HOST_USO)
            | VirtioFeature.bit(VirtioNetFeature.GUEST_USO4)
            | VirtioFeature.bit(VirtioNetFeature.GUEST_USO6)
            | VirtioFeature.bit(VirtioNetFeature.MTU)
            | VirtioFeature.bit(VirtioNetFeature.STATUS)
            | VirtioFeature.bit(VirtioNetFeature.GUEST_ANNOUNCE)
            | VirtioFeature.bit(VirtioFeature.VHOST_F_LOG_ALL)
            | VirtioFeature.bit(VirtioFeature.ACCESS_PLATFORM);

    /** Kept for callers that only need the single-queue set. */
    public static final long OFFERED_FEATURES = BASE_FEATURES;

    /** Protocol features offered. */
    public static final long OFFERED_PROTOCOL_FEATURES =
        ProtocolFeature.bit(ProtocolFeature.MQ)
            | ProtocolFeature.bit(ProtocolFeature.LOG_SHMFD)
            | ProtocolFeature.bit(ProtocolFeature.BACKEND_REQ)
            | ProtocolFeature.bit(ProtocolFeature.RARP)
            | ProtocolFeature.bit(ProtocolFeature.REPLY_ACK)
            | ProtocolFeature.bit(ProtocolFeature.MTU)
            | ProtocolFeature.bit(ProtocolFeature.CONFIG)
            | ProtocolFeature.bit(ProtocolFeature.RESET_DEVICE)
            | ProtocolFeature.bit(ProtocolFeature.CONFIGURE_MEM_SLOTS)
            | ProtocolFeature.bit(ProtocolFeature.STATUS)
            | ProtocolFeature.bit(ProtocolFeature.INFLIGHT_SHMFD);

    /** Memory slots reported by GET_MAX_MEM_SLOTS (regions added one by one with ADD_MEM_REG). */
    public static final int MAX_MEM_SLOTS = 32;
    public static final int DEFAULT_MTU = 1500;

    private final byte[] mac;
    private final int queuePairs;
    private final int mtu;

    public NetDeviceConfig(final byte[] mac) {
        this(mac, 1, DEFAULT_MTU);
    }

    public NetDeviceConfig(final byte[] mac, final int queuePairs, final int mtu) {
        if (mac.length != 6) {
            throw new IllegalArgumentException("MAC must be 6 bytes");
        }
        if (queuePairs < 1 || queuePairs > 128) {
            throw new IllegalArgumentException("queue pairs must be 1..128");
        }
        if (mtu < 68 || mtu > 65535) {
            throw new IllegalArgumentException("MTU must be 68..65535");
        }
        this.mac = mac.clone();
        this.queuePairs = queuePairs;
        this.mtu = mtu;
    }

    /** Features offered to the front-end: VIRTIO_NET_F_MQ only when there is more than one pair. */
    public long offeredFeatures() {
        return BASE_FEATURES | (queuePairs > 1 ? VirtioFeature.bit(VirtioNetFeature.MQ) : 0);
    }

    public int queuePairs() {
        return queuePairs;
    }

    public int mtu() {
        return mtu;
    }

    public byte[] mac() {
        return mac.clone();
    }

    /** A locally administered unicast MAC derived from a name (e.g. the socket path): stable across restarts. */
    public static byte[] macFor(final String name) {
        final int h = name.hashCode();
        return new byte[] {0x52, 0x54, 0x00, (byte) (h >>> 16), (byte) (h >>> 8), (byte) h};
    }

    public static byte[] parseMac(final String text) {
        final String[] parts = text.split(":");
        if (parts.length != 6) {
            throw new IllegalArgumentException("bad MAC address: " + text);
        }
        final byte[] mac = new byte[6];
        for (int i = 0; i < 6; i++) {
            mac[i] = (byte) Integer.parseInt(parts[i], 16);
        }
        if ((mac[0] & 1) != 0) {
            throw new IllegalArgumentException("MAC address must be unicast: " + text);
        }
        return mac;
    }

    public static String formatMac(final byte[] mac) {
        return String.format("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    }
}
