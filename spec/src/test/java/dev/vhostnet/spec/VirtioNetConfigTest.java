package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * struct virtio_net_config: mac[6] @0, status le16 @6, max_virtqueue_pairs le16 @8, mtu le16 @10, speed le32
 * @12, duplex u8 @16, rss_max_key_size u8 @17, rss_max_indirection_table_length le16 @18, supported_hash_types
 * le32 @20 (24 bytes).
 */
class VirtioNetConfigTest {

    @Test
    void fieldOffsetsMatchTheSpec() {
        assertEquals(0, VirtioNetConfig.MAC_OFFSET);
        assertEquals(6, VirtioNetConfig.STATUS_OFFSET);
        assertEquals(8, VirtioNetConfig.MAX_VIRTQUEUE_PAIRS_OFFSET);
        assertEquals(10, VirtioNetConfig.MTU_OFFSET);
        assertEquals(12, VirtioNetConfig.SPEED_OFFSET);
        assertEquals(16, VirtioNetConfig.DUPLEX_OFFSET);
        assertEquals(17, VirtioNetConfig.RSS_MAX_KEY_SIZE_OFFSET);
        assertEquals(18, VirtioNetConfig.RSS_MAX_INDIRECTION_TABLE_LENGTH_OFFSET);
        assertEquals(20, VirtioNetConfig.SUPPORTED_HASH_TYPES_OFFSET);
        assertEquals(24, VirtioNetConfig.LENGTH);
        assertEquals(24, new VirtioNetConfig().wrap(guarded(24), AT).encodedLength());
    }

    @Test
    void speedAndDuplexValuesMatchTheSpec() {
        assertEquals(0xFFFF_FFFFL, VirtioNetConfig.SPEED_UNKNOWN);
        assertEquals(0x00, VirtioNetConfig.DUPLEX_HALF);
        assertEquals(0x01, VirtioNetConfig.DUPLEX_FULL);
        assertEquals(0xFF, VirtioNetConfig.DUPLEX_UNKNOWN);
    }

    @Test
    void encodesAFullConfig() {
        final UnsafeBuffer buffer = guarded(24);
        final VirtioNetConfig msg = new VirtioNetConfig().wrap(buffer, AT);
        msg
            .mac(bytes(0x52, 0x54, 0x00, 0x12, 0x34, 0x56))
            .status(1)
            .maxVirtqueuePairs(4)
            .mtu(1500)
            .speed(10_000)
            .duplex(1)
            .rssMaxKeySize(40)
            .rssMaxIndirectionTableLength(128)
            .supportedHashTypes(0x1FF);

        assertLayout(bytes(
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
            0x01, 0x00,
            0x04, 0x00,
            0xDC, 0x05,
            0x10, 0x27, 0x00, 0x00,
            0x01,
            0x28,
            0x80, 0x00,
            0xFF, 0x01, 0x00, 0x00), buffer);
    }

    @Test
    void decodesEveryFieldUnsigned() {
        final VirtioNetConfig cfg = new VirtioNetConfig().wrap(holding(bytes(
            0xFE, 0x01, 0x02, 0x03, 0x04, 0x85,
            0xFF, 0xFF,
            0x00, 0x80,
            0xFF, 0xFF,
            0xFF, 0xFF, 0xFF, 0xFF,
            0xFF,
            0xFF,
            0x01, 0x80,
            0x00, 0x00, 0x00, 0x80)), AT);

        assertEquals(0xFE, cfg.macByte(0));
        assertEquals(0x01, cfg.macByte(1));
        assertEquals(0x04, cfg.macByte(4));
        assertEquals(0x85, cfg.macByte(5));
        assertEquals(65535, cfg.status());
        assertEquals(32768, cfg.maxVirtqueuePairs());
        assertEquals(65535, cfg.mtu());
        assertEquals(VirtioNetConfig.SPEED_UNKNOWN, cfg.speed());
        assertEquals(4_294_967_295L, cfg.speed());
        assertEquals(255, cfg.duplex());
        assertEquals(255, cfg.rssMaxKeySize());
        assertEquals(0x8001, cfg.rssMaxIndirectionTableLength());
        assertEquals(2_147_483_648L, cfg.supportedHashTypes());
    }
}
