package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import java.nio.ByteOrder;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Packed virtqueue: descriptors of 16 bytes (addr le64, len le32, id le16, flags le16; AVAIL is flag bit 7,
 * USED bit 15) and event suppression structures of 4 bytes (off_wrap le16: offset in bits 0-14, wrap counter
 * in bit 15; flags le16: 0 enable, 1 disable, 2 desc).
 */
class PackedRingLayoutTest {

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    @Test
    void descriptorLayoutMatchesTheSpec() {
        assertEquals(16, PackedRingLayout.DESC_SIZE);
        assertEquals(0, PackedRingLayout.DESC_ADDR);
        assertEquals(8, PackedRingLayout.DESC_LEN);
        assertEquals(12, PackedRingLayout.DESC_ID);
        assertEquals(14, PackedRingLayout.DESC_FLAGS);
        assertEquals(0x0001, PackedRingLayout.DESC_F_NEXT);
        assertEquals(0x0002, PackedRingLayout.DESC_F_WRITE);
        assertEquals(0x0004, PackedRingLayout.DESC_F_INDIRECT);
        assertEquals(0x0080, PackedRingLayout.DESC_F_AVAIL);
        assertEquals(0x8000, PackedRingLayout.DESC_F_USED);
        assertEquals(32768, PackedRingLayout.MAX_QUEUE_SIZE);
    }

    @Test
    void availableWriteDescriptorWrittenAtTheConstantOffsetsIsByteExact() {
        // Driver makes descriptor available in the first lap (wrap counter 1): AVAIL=1, USED=0.
        final UnsafeBuffer buffer = guarded(16);
        buffer.putLong(AT + PackedRingLayout.DESC_ADDR, 0x0000_0000_8000_0000L, LE);
        buffer.putInt(AT + PackedRingLayout.DESC_LEN, 0x0001_0000, LE);
        buffer.putShort(AT + PackedRingLayout.DESC_ID, (short) 0x1234, LE);
        buffer.putShort(AT + PackedRingLayout.DESC_FLAGS,
            (short) (PackedRingLayout.DESC_F_AVAIL | PackedRingLayout.DESC_F_WRITE), LE);

        assertLayout(bytes(
            0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x01, 0x00,
            0x34, 0x12,
            0x82, 0x00), buffer);
    }

    @Test
    void usedDescriptorFlagsAreByteExact() {
        // Device marks it used in the first lap: AVAIL=1 and USED=1.
        final UnsafeBuffer buffer = guarded(2);
        buffer.putShort(AT, (short) (PackedRingLayout.DESC_F_AVAIL | PackedRingLayout.DESC_F_USED), LE);

        assertLayout(bytes(0x80, 0x80), buffer);
    }

    @Test
    void eventSuppressionLayoutMatchesTheSpec() {
        assertEquals(4, PackedRingLayout.EVENT_SIZE);
        assertEquals(0, PackedRingLayout.EVENT_OFF_WRAP);
        assertEquals(2, PackedRingLayout.EVENT_FLAGS);
        assertEquals(0, PackedRingLayout.EVENT_FLAGS_ENABLE);
        assertEquals(1, PackedRingLayout.EVENT_FLAGS_DISABLE);
        assertEquals(2, PackedRingLayout.EVENT_FLAGS_DESC);
        assertEquals(15, PackedRingLayout.EVENT_WRAP_BIT);
    }

    @Test
    void eventSuppressionWrittenAtTheConstantOffsetsIsByteExact() {
        // Notify at descriptor 0x123 of the lap with wrap counter 1.
        final UnsafeBuffer buffer = guarded(4);
        buffer.putShort(AT + PackedRingLayout.EVENT_OFF_WRAP,
            (short) (0x123 | (1 << PackedRingLayout.EVENT_WRAP_BIT)), LE);
        buffer.putShort(AT + PackedRingLayout.EVENT_FLAGS, (short) PackedRingLayout.EVENT_FLAGS_DESC, LE);

        assertLayout(bytes(0x23, 0x81, 0x02, 0x00), buffer);
    }

    @Test
    void ringSizeIsSixteenBytesPerDescriptor() {
        assertEquals(16L, PackedRingLayout.ringSize(1));
        assertEquals(4096L, PackedRingLayout.ringSize(256));
        assertEquals(524_288L, PackedRingLayout.ringSize(32768));
    }
}
