package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteOrder;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Split virtqueue: descriptor table (16 bytes each: addr le64, len le32, flags le16, next le16), available ring
 * (flags, idx, ring[N] le16, used_event: 6 + 2N bytes, align 2) and used ring (flags, idx, ring[N] of
 * {id le32, len le32}, avail_event: 6 + 8N bytes, align 4).
 */
class SplitRingLayoutTest {

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    @Test
    void descriptorLayoutMatchesTheSpec() {
        assertEquals(16, SplitRingLayout.DESC_SIZE);
        assertEquals(0, SplitRingLayout.DESC_ADDR);
        assertEquals(8, SplitRingLayout.DESC_LEN);
        assertEquals(12, SplitRingLayout.DESC_FLAGS);
        assertEquals(14, SplitRingLayout.DESC_NEXT);
        assertEquals(1, SplitRingLayout.DESC_F_NEXT);
        assertEquals(2, SplitRingLayout.DESC_F_WRITE);
        assertEquals(4, SplitRingLayout.DESC_F_INDIRECT);
    }

    @Test
    void descriptorWrittenAtTheConstantOffsetsIsByteExact() {
        final UnsafeBuffer buffer = guarded(16);
        buffer.putLong(AT + SplitRingLayout.DESC_ADDR, 0x0000_0001_2345_6000L, LE);
        buffer.putInt(AT + SplitRingLayout.DESC_LEN, 1526, LE);
        buffer.putShort(AT + SplitRingLayout.DESC_FLAGS, (short) (SplitRingLayout.DESC_F_NEXT | SplitRingLayout.DESC_F_WRITE), LE);
        buffer.putShort(AT + SplitRingLayout.DESC_NEXT, (short) 0x8001, LE);

        assertLayout(bytes(
            0x00, 0x60, 0x45, 0x23, 0x01, 0x00, 0x00, 0x00,
            0xF6, 0x05, 0x00, 0x00,
            0x03, 0x00,
            0x01, 0x80), buffer);
    }

    @Test
    void availAndUsedRingLayoutMatchesTheSpec() {
        assertEquals(0, SplitRingLayout.AVAIL_FLAGS);
        assertEquals(2, SplitRingLayout.AVAIL_IDX);
        assertEquals(4, SplitRingLayout.AVAIL_RING);
        assertEquals(1, SplitRingLayout.AVAIL_F_NO_INTERRUPT);
        assertEquals(0, SplitRingLayout.USED_FLAGS);
        assertEquals(2, SplitRingLayout.USED_IDX);
        assertEquals(4, SplitRingLayout.USED_RING);
        assertEquals(8, SplitRingLayout.USED_ELEM_SIZE);
        assertEquals(0, SplitRingLayout.USED_ELEM_ID);
        assertEquals(4, SplitRingLayout.USED_ELEM_LEN);
        assertEquals(1, SplitRingLayout.USED_F_NO_NOTIFY);
        assertEquals(16, SplitRingLayout.DESC_ALIGN);
        assertEquals(2, SplitRingLayout.AVAIL_ALIGN);
        assertEquals(4, SplitRingLayout.USED_ALIGN);
        assertEquals(32768, SplitRingLayout.MAX_QUEUE_SIZE);
    }

    @ParameterizedTest(name = "queue size {0}")
    @CsvSource({
        // N,     desc,    avail, used,   used_event@avail, avail_event@used
        "1,       16,      8,     14,     6,                12",
        "256,     4096,    518,   2054,   516,              2052",
        "1024,    16384,   2054,  8198,   2052,             8196",
        "32768,   524288,  65542, 262150, 65540,            262148",
    })
    void sizesAndEventOffsets(final int n, final long desc, final long avail, final long used,
                              final int usedEvent, final int availEvent) {
        assertEquals(desc, SplitRingLayout.descTableSize(n));
        assertEquals(avail, SplitRingLayout.availRingSize(n));
        assertEquals(used, SplitRingLayout.usedRingSize(n));
        assertEquals(usedEvent, SplitRingLayout.usedEventOffset(n));
        assertEquals(availEvent, SplitRingLayout.availEventOffset(n));
    }

    @ParameterizedTest(name = "event={0} new={1} old={2} -> {3}")
    @CsvSource({
        // first buffer after event 0
        "0,     1,     0,     true",
        // index reaches event but does not pass it: event means 'notify once idx passes event'
        "5,     5,     4,     false",
        "5,     6,     5,     true",
        // batch crossing the event
        "5,     10,    5,     true",
        "5,     10,    3,     true",
        // event already passed before old
        "5,     10,    6,     false",
        // nothing new
        "7,     7,     7,     false",
        "0,     0,     0,     false",
        // wrap-around at 65535 -> 0
        "65535, 0,     65535, true",
        "65535, 0,     65534, true",
        "65534, 1,     65533, true",
        "0,     1,     65535, true",
        "2,     1,     65533, false",
        "65535, 65535, 65534, false",
        // event far ahead (driver not interested yet)
        "100,   10,    5,     false",
    })
    void needEvent(final int event, final int newIdx, final int oldIdx, final boolean expected) {
        assertEquals(expected, SplitRingLayout.needEvent(event, newIdx, oldIdx));
    }

    @Test
    void needEventAcceptsFreeRunningIndicesBeyondSixteenBits() {
        // Only the low 16 bits matter: 0x10000 is 0, 0x1FFFF is 65535.
        assertTrue(SplitRingLayout.needEvent(0x1FFFF, 0x10000, 0xFFFF));
        assertFalse(SplitRingLayout.needEvent(0x10005, 0x5, 0x4));
    }

    @Test
    void powerOfTwo() {
        assertTrue(SplitRingLayout.isPowerOfTwo(1));
        assertTrue(SplitRingLayout.isPowerOfTwo(256));
        assertTrue(SplitRingLayout.isPowerOfTwo(32768));
        assertFalse(SplitRingLayout.isPowerOfTwo(0));
        assertFalse(SplitRingLayout.isPowerOfTwo(3));
        assertFalse(SplitRingLayout.isPowerOfTwo(255));
        assertFalse(SplitRingLayout.isPowerOfTwo(-256));
    }
}
