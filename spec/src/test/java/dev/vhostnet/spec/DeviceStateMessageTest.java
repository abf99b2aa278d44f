package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Device state transfer parameters (SET_DEVICE_STATE_FD): direction u32, phase u32 (8 bytes). */
class DeviceStateMessageTest {

    @Test
    void isEightBytesAndEnumsMatchTheSpec() {
        assertEquals(8, DeviceStateMessage.LENGTH);
        assertEquals(8, new DeviceStateMessage().wrap(guarded(8), AT).encodedLength());
        assertEquals(0, DeviceStateMessage.DIRECTION_SAVE);
        assertEquals(1, DeviceStateMessage.DIRECTION_LOAD);
        assertEquals(0, DeviceStateMessage.PHASE_STOPPED);
    }

    @Test
    void encodesLoadWhileStopped() {
        final UnsafeBuffer buffer = guarded(8);
        final DeviceStateMessage msg = new DeviceStateMessage().wrap(buffer, AT);
        msg.direction(1).phase(0);

        assertLayout(bytes(
            0x01, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void decodesUnsigned() {
        final DeviceStateMessage msg = new DeviceStateMessage().wrap(holding(bytes(
            0xFF, 0xFF, 0xFF, 0xFF,
            0x02, 0x00, 0x00, 0x80)), AT);

        assertEquals(4_294_967_295L, msg.direction());
        assertEquals(0x8000_0002L, msg.phase());
    }
}
