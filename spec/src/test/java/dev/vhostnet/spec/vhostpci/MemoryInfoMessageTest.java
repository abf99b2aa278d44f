package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.MemoryRegionMessage;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.vhostpci.Bytes.AT;
import static dev.vhostnet.spec.vhostpci.Bytes.assertLayout;
import static dev.vhostnet.spec.vhostpci.Bytes.bytes;
import static dev.vhostnet.spec.vhostpci.Bytes.concat;
import static dev.vhostnet.spec.vhostpci.Bytes.guarded;
import static dev.vhostnet.spec.vhostpci.Bytes.holding;
import static dev.vhostnet.spec.vhostpci.Bytes.le64;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** MEMORY_INFO: op u16, reserved u16, nregions u32, regions of 32 bytes (gpa, size, user addr, mmap offset). */
class MemoryInfoMessageTest {
    static final byte[] LOW_640K = bytes(
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   // gpa 0
        0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00,   // size 0xA0000
        0x00, 0x00, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00,   // user addr 0x7F0000000000
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);  // mmap offset 0
    static final byte[] ABOVE_1M = bytes(
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,   // gpa 0x100000
        0x00, 0x00, 0xF0, 0x7F, 0x00, 0x00, 0x00, 0x00,   // size 0x7FF00000
        0x00, 0x00, 0x10, 0x00, 0x00, 0x7F, 0x00, 0x00,   // user addr 0x7F0000100000
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00);  // mmap offset 0x100000

    @Test
    void sizes() {
        assertEquals(8, MemoryInfoMessage.HEADER_LENGTH);
        assertEquals(32, MemoryInfoMessage.REGION_LENGTH);
        assertEquals(40, MemoryInfoMessage.lengthFor(1));
        assertEquals(1032, MemoryInfoMessage.lengthFor(VhostPci.MAX_REGIONS));
        assertEquals(1032, MemoryInfoMessage.MAX_LENGTH);
    }

    @Test
    void encodesAddOfTwoRegions() {
        final UnsafeBuffer buffer = guarded(72);
        final MemoryInfoMessage m = new MemoryInfoMessage().wrap(buffer, AT);
        m.op(VhostPci.OP_ADD).nregions(2);
        m.region(0).guestPhysAddr(0).memorySize(0xA0000).userAddr(0x7F00_0000_0000L).mmapOffset(0);
        m.region(1).guestPhysAddr(0x10_0000).memorySize(0x7FF0_0000L).userAddr(0x7F00_0010_0000L).mmapOffset(0x10_0000);
        assertEquals(72, m.encodedLength());
        assertEquals(2, m.expectedFds());
        assertLayout(concat(bytes(0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00), LOW_640K, ABOVE_1M), buffer);
    }

    @Test
    void decodesDelWithoutFds() {
        final MemoryInfoMessage m = new MemoryInfoMessage().wrap(holding(concat(
            bytes(0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00), ABOVE_1M)), AT);
        assertEquals(VhostPci.OP_DEL, m.op());
        assertEquals(1, m.nregions());
        assertEquals(0, m.expectedFds());
        final MemoryRegionMessage r = m.region(0);
        assertEquals(0x10_0000, r.guestPhysAddr());
        assertEquals(0x7FF0_0000L, r.memorySize());
        assertEquals(0x7F00_0010_0000L, r.userAddr());
        assertEquals(0x10_0000, r.mmapOffset());
    }

    @Test
    void encodesTheLargestMessage() {
        final UnsafeBuffer buffer = guarded(MemoryInfoMessage.MAX_LENGTH);
        final MemoryInfoMessage m = new MemoryInfoMessage().wrap(buffer, AT);
        m.op(VhostPci.OP_ADD).nregions(VhostPci.MAX_REGIONS);
        final byte[][] parts = new byte[VhostPci.MAX_REGIONS + 1][];
        parts[0] = bytes(0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00);
        for (int i = 0; i < VhostPci.MAX_REGIONS; i++) {
            final long gpa = (long) i << 32;
            m.region(i).guestPhysAddr(gpa).memorySize(0x4000_0000L).userAddr(0x7F00_0000_0000L + gpa)
                .mmapOffset(i * 0x1000L);
            parts[i + 1] = concat(le64(gpa), le64(0x4000_0000L), le64(0x7F00_0000_0000L + gpa), le64(i * 0x1000L));
        }
        assertEquals(1032, m.encodedLength());
        assertEquals(32, m.expectedFds());
        assertLayout(concat(parts), buffer);
        // last region ends exactly at the end of the payload
        assertEquals(31L << 32, m.region(31).guestPhysAddr());
        assertEquals(31 * 0x1000L, m.region(31).mmapOffset());
    }

    @Test
    void aHostileCountDoesNotInflateTheEncodedLength() {
        final MemoryInfoMessage m = new MemoryInfoMessage().wrap(holding(
            bytes(0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF)), AT);
        assertEquals(0xFFFF_FFFFL, m.nregions());
        assertEquals(MemoryInfoMessage.MAX_LENGTH, m.encodedLength());
    }
}
