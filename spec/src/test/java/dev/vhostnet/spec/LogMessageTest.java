package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Log description (SET_LOG_BASE): log size u64, log offset u64 (16 bytes). */
class LogMessageTest {

    @Test
    void isSixteenBytes() {
        assertEquals(16, LogMessage.LENGTH);
        assertEquals(16, new LogMessage().wrap(guarded(16), AT).encodedLength());
    }

    @Test
    void encodesSizeThenOffset() {
        final UnsafeBuffer buffer = guarded(16);
        final LogMessage msg = new LogMessage().wrap(buffer, AT);
        msg.mmapSize(0x4_0000L).mmapOffset(0x1000L);

        assertLayout(bytes(
            0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void decodesSizeThenOffset() {
        final LogMessage msg = new LogMessage().wrap(holding(bytes(
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01)), AT);

        assertEquals(0x8000_0000_0000_0000L, msg.mmapSize());
        assertEquals(0x0102_0304_0506_0708L, msg.mmapOffset());
    }
}
