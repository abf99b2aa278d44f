package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Vring state description: index u32, num u32 (8 bytes). */
class VringStateMessageTest {

    @Test
    void isEightBytes() {
        assertEquals(8, VringStateMessage.LENGTH);
        assertEquals(8, new VringStateMessage().wrap(guarded(8), AT).encodedLength());
    }

    @Test
    void encodesSetVringNum() {
        final UnsafeBuffer buffer = guarded(8);
        final VringStateMessage msg = new VringStateMessage().wrap(buffer, AT);
        msg.index(1).num(256);

        assertLayout(bytes(
            0x01, 0x00, 0x00, 0x00,
            0x00, 0x01, 0x00, 0x00), buffer);
    }

    @Test
    void decodesUnsignedValues() {
        final VringStateMessage msg = new VringStateMessage().wrap(holding(bytes(
            0xFE, 0xFF, 0xFF, 0xFF,
            0x00, 0x80, 0x00, 0x80)), AT);

        assertEquals(4_294_967_294L, msg.index());
        assertEquals(0x8000_8000L, msg.num());
    }

    @Test
    void packedRingBaseCarriesTwoIndicesAndTwoWrapCounters() {
        // vhost-user: bits 0-14 avail index, bit 15 avail wrap, bits 16-30 used index, bit 31 used wrap.
        assertEquals(15, PackedRingLayout.BASE_WRAP_BIT);
        final VringStateMessage msg = new VringStateMessage().wrap(holding(bytes(
            0x00, 0x00, 0x00, 0x00,
            0x05, 0x80, 0x03, 0x00)), AT);

        final long num = msg.num();
        assertEquals(5L, num & 0x7FFF);
        assertEquals(1L, (num >>> PackedRingLayout.BASE_WRAP_BIT) & 1);
        assertEquals(3L, (num >>> 16) & 0x7FFF);
        assertEquals(0L, (num >>> (16 + PackedRingLayout.BASE_WRAP_BIT)) & 1);
    }
}
