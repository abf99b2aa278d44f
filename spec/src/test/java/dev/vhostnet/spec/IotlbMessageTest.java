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
 * struct vhost_iotlb_msg: iova u64, size u64, uaddr u64, perm u8, type u8, then 6 bytes of tail padding from
 * the struct's 8-byte alignment: 32 bytes on the wire.
 */
class IotlbMessageTest {

    @Test
    void isThirtyTwoBytesWithPadding() {
        assertEquals(32, IotlbMessage.LENGTH);
        assertEquals(32, new IotlbMessage().wrap(guarded(32), AT).encodedLength());
    }

    @Test
    void typeAndPermissionValuesMatchTheSpec() {
        assertEquals(1, IotlbMessage.TYPE_MISS);
        assertEquals(2, IotlbMessage.TYPE_UPDATE);
        assertEquals(3, IotlbMessage.TYPE_INVALIDATE);
        assertEquals(4, IotlbMessage.TYPE_ACCESS_FAIL);
        assertEquals(5, IotlbMessage.TYPE_BATCH_BEGIN);
        assertEquals(6, IotlbMessage.TYPE_BATCH_END);
        assertEquals(0, IotlbMessage.PERM_NONE);
        assertEquals(1, IotlbMessage.PERM_RO);
        assertEquals(2, IotlbMessage.PERM_WO);
        assertEquals(3, IotlbMessage.PERM_RW);
    }

    @Test
    void encodesUpdateWithZeroedPadding() {
        final UnsafeBuffer buffer = guarded(32);
        final IotlbMessage msg = new IotlbMessage().wrap(buffer, AT);
        msg.clear();
        msg.iova(0x8000_1000L).size(0x1000L).userAddr(0x0000_7F00_DEAD_0000L).perm(3).type(2);

        assertLayout(bytes(
            0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0xAD, 0xDE, 0x00, 0x7F, 0x00, 0x00,
            0x03, 0x02,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void decodesMissWithUnsignedBytes() {
        final IotlbMessage msg = new IotlbMessage().wrap(holding(bytes(
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x81, 0xF1,
            0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC)), AT);

        assertEquals(-1L, msg.iova());
        assertEquals(0x8000_0000_0000_0000L, msg.size());
        assertEquals(1L, msg.userAddr());
        assertEquals(0x81, msg.perm());
        assertEquals(0xF1, msg.type());
    }
}
