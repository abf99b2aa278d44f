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
 * struct vhost_vring_addr: index u32, flags u32, desc_user_addr u64, used_user_addr u64, avail_user_addr u64,
 * log_guest_addr u64 (40 bytes). Note the order: used comes before avail.
 */
class VringAddrMessageTest {

    @Test
    void isFortyBytes() {
        assertEquals(40, VringAddrMessage.LENGTH);
        assertEquals(40, new VringAddrMessage().wrap(guarded(40), AT).encodedLength());
    }

    @Test
    void logFlagIsBitZero() {
        assertEquals(1, VringAddrMessage.F_LOG);
    }

    @Test
    void encodesAllFieldsInSpecOrder() {
        final UnsafeBuffer buffer = guarded(40);
        final VringAddrMessage msg = new VringAddrMessage().wrap(buffer, AT);
        msg
            .index(2)
            .flags(1)
            .descUserAddr(0x0000_7F00_0000_1000L)
            .usedUserAddr(0x0000_7F00_0000_3000L)
            .availUserAddr(0x0000_7F00_0000_2000L)
            .logGuestAddr(0x0000_0000_1234_5000L);

        assertLayout(bytes(
            0x02, 0x00, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00,
            0x00, 0x10, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00,
            0x00, 0x30, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00,
            0x00, 0x20, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00,
            0x00, 0x50, 0x34, 0x12, 0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void decodesEachFieldFromItsOffset() {
        final VringAddrMessage msg = new VringAddrMessage().wrap(holding(bytes(
            0xFF, 0xFF, 0xFF, 0xFF,
            0x00, 0x00, 0x00, 0x80,
            0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x33, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80)), AT);

        assertEquals(4_294_967_295L, msg.index());
        assertEquals(2_147_483_648L, msg.flags());
        assertEquals(0x11L, msg.descUserAddr());
        assertEquals(0x22L, msg.usedUserAddr());
        assertEquals(0x33L, msg.availUserAddr());
        assertEquals(0x8000_0000_0000_0000L, msg.logGuestAddr());
    }
}
