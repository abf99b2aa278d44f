package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.concat;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Memory region description (guest address, size, user address, mmap offset: u64 each, 32 bytes), the
 * multiple-regions payload of SET_MEM_TABLE (nregions u32, padding u32, up to 8 regions) and the single-region
 * payload of ADD_MEM_REG / REM_MEM_REG (u64 padding, one region: 40 bytes).
 */
class MemoryRegionMessagesTest {

    private static final byte[] REGION_640K_LOW = bytes(
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // guest address 0
        0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00,  // size 0xA0000
        0x00, 0x00, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00,  // user address 0x7F0000000000
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00); // mmap offset 0

    private static final byte[] REGION_ABOVE_1M = bytes(
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,  // guest address 0x100000
        0x00, 0x00, 0xF0, 0x7F, 0x00, 0x00, 0x00, 0x00,  // size 0x7FF00000
        0x00, 0x00, 0x10, 0x00, 0x00, 0x7F, 0x00, 0x00,  // user address 0x7F0000100000
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00); // mmap offset 0x100000

    @Test
    void sizesMatchTheSpec() {
        assertEquals(32, MemoryRegionMessage.LENGTH);
        assertEquals(8, MemoryTableMessage.HEADER_LENGTH);
        assertEquals(8, MemoryTableMessage.MAX_REGIONS);
        assertEquals(40, SingleMemoryRegionMessage.LENGTH);
        assertEquals(8, MemoryTableMessage.lengthFor(0));
        assertEquals(40, MemoryTableMessage.lengthFor(1));
        assertEquals(264, MemoryTableMessage.lengthFor(8));
    }

    @Test
    void encodesOneRegion() {
        final UnsafeBuffer buffer = guarded(32);
        final MemoryRegionMessage region = new MemoryRegionMessage().wrap(buffer, AT);
        region.guestPhysAddr(0x0000_0001_0000_0000L)
            .memorySize(0x8000_0000L)
            .userAddr(0x0000_7F12_3456_0000L)
            .mmapOffset(0x1000L);

        assertEquals(32, region.encodedLength());
        assertLayout(bytes(
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x56, 0x34, 0x12, 0x7F, 0x00, 0x00,
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void decodesOneRegionWithTopBitsSet() {
        final MemoryRegionMessage region = new MemoryRegionMessage().wrap(holding(bytes(
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)), AT);

        assertEquals(0x8000_0000_0000_0000L, region.guestPhysAddr());
        assertEquals(-1L, region.memorySize());
        assertEquals(1L, region.userAddr());
        assertEquals(2L, region.mmapOffset());
    }

    @Test
    void encodesTableOfTwoRegionsWithZeroPadding() {
        final UnsafeBuffer buffer = guarded(72);
        final MemoryTableMessage table = new MemoryTableMessage().wrap(buffer, AT);
        table.nregions(2);
        table.region(0).guestPhysAddr(0).memorySize(0xA0000L).userAddr(0x7F00_0000_0000L).mmapOffset(0);
        table.region(1).guestPhysAddr(0x10_0000L).memorySize(0x7FF0_0000L)
            .userAddr(0x7F00_0010_0000L).mmapOffset(0x10_0000L);

        assertEquals(72, table.encodedLength());
        assertLayout(concat(
            bytes(0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
            REGION_640K_LOW,
            REGION_ABOVE_1M), buffer);
    }

    @Test
    void decodesTableOfTwoRegions() {
        final MemoryTableMessage table = new MemoryTableMessage().wrap(holding(concat(
            bytes(0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
            REGION_640K_LOW,
            REGION_ABOVE_1M)), AT);

        assertEquals(2L, table.nregions());
        assertEquals(72, table.encodedLength());
        assertEquals(0L, table.region(0).guestPhysAddr());
        assertEquals(0xA0000L, table.region(0).memorySize());
        assertEquals(0x7F00_0000_0000L, table.region(0).userAddr());
        assertEquals(0L, table.region(0).mmapOffset());
        assertEquals(0x10_0000L, table.region(1).guestPhysAddr());
        assertEquals(0x7FF0_0000L, table.region(1).memorySize());
        assertEquals(0x7F00_0010_0000L, table.region(1).userAddr());
        assertEquals(0x10_0000L, table.region(1).mmapOffset());
    }

    @Test
    void hostileRegionCountIsUnsignedAndLengthIsCappedAtEightRegions() {
        final MemoryTableMessage table = new MemoryTableMessage().wrap(holding(bytes(
            0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00)), AT);

        assertEquals(4_294_967_295L, table.nregions());
        assertEquals(8 + 8 * 32, table.encodedLength());
    }

    @Test
    void encodesSingleRegionAfterEightBytesOfPadding() {
        final UnsafeBuffer buffer = guarded(40);
        final SingleMemoryRegionMessage msg = new SingleMemoryRegionMessage().wrap(buffer, AT);
        msg.clear();
        msg.region().guestPhysAddr(0x10_0000L).memorySize(0x7FF0_0000L)
            .userAddr(0x7F00_0010_0000L).mmapOffset(0x10_0000L);

        assertEquals(40, msg.encodedLength());
        assertLayout(concat(bytes(0, 0, 0, 0, 0, 0, 0, 0), REGION_ABOVE_1M), buffer);
    }

    @Test
    void decodesSingleRegion() {
        final SingleMemoryRegionMessage msg = new SingleMemoryRegionMessage().wrap(holding(concat(
            bytes(0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE), REGION_640K_LOW)), AT);

        assertEquals(0L, msg.region().guestPhysAddr());
        assertEquals(0xA0000L, msg.region().memorySize());
        assertEquals(0x7F00_0000_0000L, msg.region().userAddr());
        assertEquals(0L, msg.region().mmapOffset());
    }
}
