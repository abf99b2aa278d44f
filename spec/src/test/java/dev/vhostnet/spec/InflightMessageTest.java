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
 * Inflight description (GET/SET_INFLIGHT_FD): mmap size u64, mmap offset u64, num queues u16, queue size u16.
 * The C struct (VhostUserInflight) is 8-byte aligned, so 4 bytes of tail padding follow and the payload is
 * 24 bytes; front-ends check the size against exactly that.
 */
class InflightMessageTest {

    @Test
    void isTwentyFourBytesOnTheWire() {
        assertEquals(24, InflightMessage.LENGTH);
        assertEquals(24, new InflightMessage().wrap(guarded(24), AT).encodedLength());
    }

    @Test
    void encodesReplyWithZeroedTailPadding() {
        final UnsafeBuffer buffer = guarded(24);
        final InflightMessage msg = new InflightMessage().wrap(buffer, AT);
        msg.clear();
        msg.mmapSize(0x2000L).mmapOffset(0).numQueues(2).queueSize(256);

        assertLayout(bytes(
            0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x02, 0x00,
            0x00, 0x01,
            0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void decodesUnsignedQueueCounts() {
        final InflightMessage msg = new InflightMessage().wrap(holding(bytes(
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xFF, 0xFF,
            0x00, 0x80,
            0x00, 0x00, 0x00, 0x00)), AT);

        assertEquals(0x8000_0000_0000_0000L, msg.mmapSize());
        assertEquals(0x1000L, msg.mmapOffset());
        assertEquals(65535, msg.numQueues());
        assertEquals(32768, msg.queueSize());
    }
}
