package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** vhost-user message header: request u32, flags u32, size u32, little-endian (12 bytes). */
class VhostUserHeaderTest {

    @Test
    void headerIsTwelveBytesWithFieldsAtZeroFourEight() {
        assertEquals(12, VhostUserHeader.LENGTH);
        assertEquals(12, new VhostUserHeader().wrap(guarded(12), AT).encodedLength());
        assertEquals(0, VhostUserHeader.REQUEST_OFFSET);
        assertEquals(4, VhostUserHeader.FLAGS_OFFSET);
        assertEquals(8, VhostUserHeader.SIZE_OFFSET);
    }

    @Test
    void flagBitsMatchTheSpec() {
        // Lower 2 bits: version, currently 1. Bit 2: reply. Bit 3: need_reply.
        assertEquals(0x3, VhostUserHeader.VERSION_MASK);
        assertEquals(0x1, VhostUserHeader.VERSION);
        assertEquals(0x4, VhostUserHeader.FLAG_REPLY);
        assertEquals(0x8, VhostUserHeader.FLAG_NEED_REPLY);
    }

    @Test
    void encodesSetVringAddrRequestAskingForAReply() {
        final UnsafeBuffer buffer = guarded(12);
        final VhostUserHeader msg = new VhostUserHeader().wrap(buffer, AT);
        msg
            .request(9)
            .flags(0x1 | 0x8)
            .size(40);

        assertLayout(bytes(
            0x09, 0x00, 0x00, 0x00,
            0x09, 0x00, 0x00, 0x00,
            0x28, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void encodesMultiByteValuesLittleEndian() {
        final UnsafeBuffer buffer = guarded(12);
        final VhostUserHeader msg = new VhostUserHeader().wrap(buffer, AT);
        msg
            .request(0x0403_0201)
            .flags(0x0807_0605)
            .size(0x0C0B_0A09);

        assertLayout(bytes(
            0x01, 0x02, 0x03, 0x04,
            0x05, 0x06, 0x07, 0x08,
            0x09, 0x0A, 0x0B, 0x0C), buffer);
    }

    @Test
    void decodesAReplyHeader() {
        final VhostUserHeader header = new VhostUserHeader().wrap(holding(bytes(
            0x0F, 0x00, 0x00, 0x00,
            0x05, 0x00, 0x00, 0x00,
            0x08, 0x00, 0x00, 0x00)), AT);

        assertEquals(15, header.request());
        assertEquals(5, header.flags());
        assertEquals(8L, header.size());
        assertEquals(1, header.version());
        assertTrue(header.isReply());
        assertFalse(header.needsReply());
    }

    @Test
    void decodesNeedReplyWithoutReply() {
        final VhostUserHeader header = new VhostUserHeader().wrap(holding(bytes(
            0x05, 0x00, 0x00, 0x00,
            0x09, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00)), AT);

        assertEquals(1, header.version());
        assertFalse(header.isReply());
        assertTrue(header.needsReply());
    }

    @Test
    void decodesSizeWithTopBitSetAsUnsigned() {
        final VhostUserHeader header = new VhostUserHeader().wrap(holding(bytes(
            0x01, 0x00, 0x00, 0x80,
            0xFE, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0xFF, 0xFF)), AT);

        assertEquals(0x8000_0001L, Integer.toUnsignedLong(header.request()));
        assertEquals(0xFFFF_FFFEL, Integer.toUnsignedLong(header.flags()));
        assertEquals(4_294_967_295L, header.size());
        assertEquals(2, header.version());
        assertTrue(header.isReply());
        assertTrue(header.needsReply());
    }

    @Test
    void versionIgnoresOtherFlagBits() {
        final VhostUserHeader header = new VhostUserHeader().wrap(holding(bytes(
            0x01, 0x00, 0x00, 0x00,
            0xFD, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00)), AT);

        assertEquals(1, header.version());
    }
}
