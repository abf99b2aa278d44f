package dev.vhostnet.spec;

/**
 * {@code struct virtio_net_config}: mac[6], status u16, max_virtqueue_pairs u16, mtu u16, speed u32,
 * duplex u8, rss_max_key_size u8, rss_max_indirection_table_length u16, supported_hash_types u32 (24 bytes).
 */
public final class VirtioNetConfig extends Flyweight {
    public static final int LENGTH = 24;
    public static final int MAC_OFFSET = 0;
    public static final int STATUS_OFFSET = 6;
    public static final int MAX_VIRTQUEUE_PAIRS_OFFSET = 8;
    public static final int MTU_OFFSET = 10;
    public static final int SPEED_OFFSET = 12;
    public static final int DUPLEX_OFFSET = 16;
    public static final int RSS_MAX_KEY_SIZE_OFFSET = 17;
    public static final int RSS_MAX_INDIRECTION_TABLE_LENGTH_OFFSET = 18;
    public static final int SUPPORTED_HASH_TYPES_OFFSET = 20;

    public static final long SPEED_UNKNOWN = 0xFFFF_FFFFL;
    public static final int DUPLEX_HALF = 0;
    public static final int DUPLEX_FULL = 1;
    public static final int DUPLEX_UNKNOWN = 0xFF;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int macByte(final int i) {
        return u8(MAC_OFFSET + i);
    }

    public VirtioNetConfig mac(final byte[] mac) {
        buffer.putBytes(offset + MAC_OFFSET, mac, 0, 6);
        return this;
    }

    public int status() {
        return u16(STATUS_OFFSET);
    }

    public VirtioNetConfig status(final int v) {
        u16(STATUS_OFFSET, v);
        return this;
    }

    public int maxVirtqueuePairs() {
        return u16(MAX_VIRTQUEUE_PAIRS_OFFSET);
    }

    public VirtioNetConfig maxVirtqueuePairs(final int v) {
        u16(MAX_VIRTQUEUE_PAIRS_OFFSET, v);
        return this;
    }

    public int mtu() {
        return u16(MTU_OFFSET);
    }

    public VirtioNetConfig mtu(final int v) {
        u16(MTU_OFFSET, v);
        return this;
    }

    public long speed() {
        return u32(SPEED_OFFSET);
    }

    public VirtioNetConfig speed(final long v) {
        u32(SPEED_OFFSET, v);
        return this;
    }

    public int duplex() {
        return u8(DUPLEX_OFFSET);
    }

    public VirtioNetConfig duplex(final int v) {
        u8(DUPLEX_OFFSET, v);
        return this;
    }

    public int rssMaxKeySize() {
        return u8(RSS_MAX_KEY_SIZE_OFFSET);
    }

    public VirtioNetConfig rssMaxKeySize(final int v) {
        u8(RSS_MAX_KEY_SIZE_OFFSET, v);
        return this;
    }

    public int rssMaxIndirectionTableLength() {
        return u16(RSS_MAX_INDIRECTION_TABLE_LENGTH_OFFSET);
    }

    public VirtioNetConfig rssMaxIndirectionTableLength(final int v) {
        u16(RSS_MAX_INDIRECTION_TABLE_LENGTH_OFFSET, v);
        return this;
    }

    public long supportedHashTypes() {
        return u32(SUPPORTED_HASH_TYPES_OFFSET);
    }

    public VirtioNetConfig supportedHashTypes(final long v) {
        u32(SUPPORTED_HASH_TYPES_OFFSET, v);
        return this;
    }
}
