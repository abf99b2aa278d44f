package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The single u64 payload, including the vring index / invalid-fd encoding of SET_VRING_KICK/CALL/ERR. */
class U64MessageTest {

    @Test
    void isEightBytes() {
        assertEquals(8, U64Message.LENGTH);
        assertEquals(8, new U64Message().wrap(guarded(8), AT).encodedLength());
    }

    @Test
    void encodesLittleEndian() {
        final UnsafeBuffer buffer = guarded(8);
        final U64Message msg = new U64Message().wrap(buffer, AT);
        msg.value(0x0102_0304_0506_0708L);

        assertLayout(bytes(0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01), buffer);
    }

    @Test
    void decodesTopBitSet() {
        final U64Message msg = new U64Message().wrap(holding(bytes(
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80)), AT);

        assertEquals(0x8000_0000_0000_0001L, msg.value());
    }

    @Test
    void vringIndexIsBitsZeroToSevenAndNoFdIsBitEight() {
        assertEquals(0xFFL, U64Message.VRING_INDEX_MASK);
        assertEquals(0x100L, U64Message.VRING_NOFD_FLAG);

        // SET_VRING_CALL for queue 3 with no fd: 0x103.
        final U64Message msg = new U64Message().wrap(holding(bytes(
            0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)), AT);
        assertEquals(3L, msg.value() & U64Message.VRING_INDEX_MASK);
        assertEquals(0x100L, msg.value() & U64Message.VRING_NOFD_FLAG);
    }
}
