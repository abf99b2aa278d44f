package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Virtio device config space payload (GET/SET_CONFIG): offset u32, size u32, flags u32, then size bytes. */
class ConfigMessageTest {

    @Test
    void headerIsTwelveBytesAndConfigSpaceAtMost256() {
        assertEquals(12, ConfigMessage.HEADER_LENGTH);
        assertEquals(256, ConfigMessage.MAX_CONFIG_SIZE);
        assertEquals(1, ConfigMessage.F_MIGRATION);
    }

    @Test
    void encodesLiveMigrationWriteOfStatusField() {
        final UnsafeBuffer buffer = guarded(14);
        final ConfigMessage msg = new ConfigMessage().wrap(buffer, AT);
        msg.configOffset(6).size(2).flags(1);
        buffer.putBytes(msg.payloadOffset(), bytes(0x01, 0x00));

        assertEquals(AT + 12, msg.payloadOffset());
        assertEquals(14, msg.encodedLength());
        assertLayout(bytes(
            0x06, 0x00, 0x00, 0x00,
            0x02, 0x00, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00,
            0x01, 0x00), buffer);
    }

    @Test
    void decodesGetConfigRequestForWholeNetConfig() {
        final ConfigMessage msg = new ConfigMessage().wrap(holding(bytes(
            0x00, 0x00, 0x00, 0x00,
            0x18, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00)), AT);

        assertEquals(0L, msg.configOffset());
        assertEquals(24L, msg.size());
        assertEquals(0L, msg.flags());
        assertEquals(12 + 24, msg.encodedLength());
    }

    @Test
    void decodesUnsignedFieldsAndCapsTheLength() {
        final ConfigMessage msg = new ConfigMessage().wrap(holding(bytes(
            0xFF, 0xFF, 0xFF, 0xFF,
            0x00, 0x00, 0x00, 0x80,
            0xFE, 0xFF, 0xFF, 0xFF)), AT);

        assertEquals(4_294_967_295L, msg.configOffset());
        assertEquals(2_147_483_648L, msg.size());
        assertEquals(4_294_967_294L, msg.flags());
        assertEquals(12 + 256, msg.encodedLength());
    }
}
