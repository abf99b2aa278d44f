package dev.vhostnet.backend;

import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;

/** What this back-end offers a front-end, and the device identity (MAC, MTU) it reports. */
public final class NetDeviceConfig {
    /** Virtio features offered: only what the dataplane implements. */
    public static final long OFFERED_FEATURES =
        VirtioFeature.bit(VirtioFeature.VERSION_1)
            | VirtioFeature.bit(VirtioFeature.RING_INDIRECT_DESC)
            | VirtioFeature.bit(VirtioFeature.RING_EVENT_IDX)
            | VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)
            | VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF);

    /** Protocol features offered. */
    public static final long OFFERED_PROTOCOL_FEATURES =
        ProtocolFeature.bit(ProtocolFeature.MQ)
            | ProtocolFeature.bit(ProtocolFeature.RARP)
            | ProtocolFeature.bit(ProtocolFeature.REPLY_ACK)
            | ProtocolFeature.bit(ProtocolFeature.MTU)
            | ProtocolFeature.bit(ProtocolFeature.CONFIG)
            | ProtocolFeature.bit(ProtocolFeature.RESET_DEVICE)
            | ProtocolFeature.bit(ProtocolFeature.CONFIGURE_MEM_SLOTS)
            | ProtocolFeature.bit(ProtocolFeature.STATUS);

    public static final int QUEUE_PAIRS = 1;
    /** Memory slots reported by GET_MAX_MEM_SLOTS (regions added one by one with ADD_MEM_REG). */
    public static final int MAX_MEM_SLOTS = 32;
    public static final int DEFAULT_MTU = 1500;

    private final byte[] mac;

    public NetDeviceConfig(final byte[] mac) {
        if (mac.length != 6) {
            throw new IllegalArgumentException("MAC must be 6 bytes");
        }
        this.mac = mac.clone();
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
