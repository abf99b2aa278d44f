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

/** Vring area description (VRING_HOST_NOTIFIER_MSG): u64 index + flags, size u64, offset u64 (24 bytes). */
class VringAreaMessageTest {

    @Test
    void isTwentyFourBytes() {
        assertEquals(24, VringAreaMessage.LENGTH);
        assertEquals(24, new VringAreaMessage().wrap(guarded(24), AT).encodedLength());
        assertEquals(0xFFL, VringAreaMessage.INDEX_MASK);
        assertEquals(0x100L, VringAreaMessage.NOFD_FLAG);
    }

    @Test
    void encodesQueueThreeWithoutFd() {
        final UnsafeBuffer buffer = guarded(24);
        final VringAreaMessage msg = new VringAreaMessage().wrap(buffer, AT);
        msg.indexAndFlags(0x103L).size(0x1000L).areaOffset(0x3000L);

        assertLayout(bytes(
            0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void decodesIndexFlagsSizeAndOffset() {
        final VringAreaMessage msg = new VringAreaMessage().wrap(holding(bytes(
            0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
            0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)), AT);

        assertEquals(255, msg.queueIndex());
        assertFalse(msg.noFd());
        assertEquals(0x8000_0000_0000_0000L, msg.size());
        assertEquals(0x2000L, msg.areaOffset());
    }

    @Test
    void noFdIsBitEightOnly() {
        final VringAreaMessage msg = new VringAreaMessage().wrap(holding(bytes(
            0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)), AT);

        assertEquals(5, msg.queueIndex());
        assertTrue(msg.noFd());
    }
}
