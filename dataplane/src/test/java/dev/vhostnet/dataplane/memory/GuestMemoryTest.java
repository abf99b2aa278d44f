package dev.vhostnet.dataplane.memory;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.testing.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.vhostnet.dataplane.memory.GuestMemory.UNMAPPED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Address translation at the edges: region ends, 2^64 wrap-around, adjacent regions, table changes. */
class GuestMemoryTest {
    private static final long SIZE = 64 * 1024;
    private static final long GPA = 0x1_0000_0000L;
    private static final long UVA = 0x7f00_0000_0000L;

    private TestMemory backing;

    @BeforeEach
    void createBacking() {
        backing = new TestMemory(4 * SIZE);
    }

    @AfterEach
    void closeBacking() {
        backing.close();
    }

    @Test
    void rangesEndingExactlyAtTheRegionEndAreMappedOneByteMoreIsNot() {
        try (GuestMemory m = GuestMemory.of(List.of(backing.region(GPA, UVA, 0, SIZE)))) {
            final long host = m.regions().get(0).hostAddr();
            assertEquals(host, m.gpaToHost(GPA, SIZE), "the whole region");
            assertEquals(host + SIZE - 16, m.gpaToHost(GPA + SIZE - 16, 16));
            assertEquals(UNMAPPED, m.gpaToHost(GPA + SIZE - 16, 17));
            assertEquals(UNMAPPED, m.gpaToHost(GPA + SIZE, 1), "first byte after the region");
            assertEquals(UNMAPPED, m.gpaToHost(GPA - 1, 2), "starts one byte before");
            assertEquals(host + SIZE - 1, m.gpaToHost(GPA + SIZE - 1, 0), "empty range at the last byte");
            assertEquals(host + 8, m.uvaToHost(UVA + 8, SIZE - 8));
            assertEquals(UNMAPPED, m.uvaToHost(UVA + 8, SIZE - 7));
            assertEquals(UNMAPPED, m.gpaToHost(UVA, 1), "a user address is not a guest address");
            assertEquals(UNMAPPED, m.uvaToHost(GPA, 1), "and the other way round");
            assertEquals(GPA + 100, m.uvaToGpa(UVA + 100));
            assertEquals(-1, m.uvaToGpa(UVA + SIZE));
        }
    }

    @Test
    void hugeLengthsAndAddressesNear2To64DoNotWrapIntoARegion() {
        final long top = -SIZE; // region [2^64 - SIZE, 2^64)
        try (GuestMemory m = GuestMemory.of(List.of(backing.region(top, -2 * SIZE, 0, SIZE)))) {
            final long host = m.regions().get(0).hostAddr();
            assertEquals(host + SIZE - 16, m.gpaToHost(-16L, 16), "the last 16 bytes of the address space");
            assertEquals(UNMAPPED, m.gpaToHost(-16L, 17), "one byte past 2^64");
            assertEquals(UNMAPPED, m.gpaToHost(-1L, 2));
            assertEquals(UNMAPPED, m.gpaToHost(top, -1L), "length 2^64 - 1");
            assertEquals(UNMAPPED, m.gpaToHost(top, Long.MIN_VALUE));
            assertEquals(UNMAPPED, m.gpaToHost(0, 1), "address 0 is not 2^64");
            assertEquals(UNMAPPED, m.uvaToHost(-2 * SIZE + 8, -8L), "len wraps the user range to its start");
        }
        try (GuestMemory m = GuestMemory.of(List.of(backing.region(GPA, UVA, 0, SIZE)))) {
            // gpa + len overflows to a small number inside the region for a naive "gpa + len <= end" check.
            assertEquals(UNMAPPED, m.gpaToHost(GPA + 16, -16L));
            assertEquals(UNMAPPED, m.gpaToHost(GPA + 16, Long.MAX_VALUE));
            assertEquals(0, m.contiguousBytes(GPA + SIZE));
            assertEquals(SIZE - 10, m.contiguousBytes(GPA + 10));
        }
    }

    @Test
    void aRangeStraddlingTwoAdjacentRegionsIsNotOneMapping() {
        final GuestRegion low = backing.region(GPA, UVA, 0, SIZE);
        final GuestRegion high = backing.region(GPA + SIZE, UVA + SIZE, 2 * SIZE, SIZE); // other fd offset
        try (GuestMemory m = GuestMemory.of(List.of(low, high))) {
            assertEquals(UNMAPPED, m.gpaToHost(GPA + SIZE - 8, 16), "no single host range covers it");
            assertEquals(low.hostAddr() + SIZE - 8, m.gpaToHostStart(GPA + SIZE - 8));
            assertEquals(8, m.contiguousBytes(GPA + SIZE - 8));
            assertEquals(high.hostAddr(), m.gpaToHost(GPA + SIZE, 16));
            // Both mappings see the bytes the driver wrote at the matching fd offsets.
            backing.buffer().putLong((int) (2 * SIZE), 0x1122334455667788L);
            assertEquals(0x1122334455667788L, org.agrona.UnsafeAccess.UNSAFE.getLong(m.gpaToHost(GPA + SIZE, 8)));
        }
    }

    @Test
    void overlappingRegionsAreRefusedAndTheirFdsClosed() {
        final GuestRegion a = backing.region(GPA, UVA, 0, SIZE);
        final GuestRegion b = backing.region(GPA + SIZE - 4096, UVA + 2 * SIZE, SIZE, SIZE);
        assertThrows(InvalidMemoryException.class, () -> GuestMemory.of(List.of(a, b)));
        a.close();
        b.close();
        assertFalse(FileDescriptors.isOpen(a.fd()));
        // Touching is not overlapping.
        try (GuestMemory m = GuestMemory.of(List.of(backing.region(GPA, UVA, 0, SIZE),
            backing.region(GPA + SIZE, UVA + SIZE, SIZE, SIZE)))) {
            assertEquals(2, m.regionCount());
        }
    }

    @Test
    void impossibleRegionsAreRefusedAndTheFdIsClosed() {
        final long[][] bad = {
            {GPA, 0, UVA, 0},                   // empty
            {GPA, 8 * SIZE, UVA, 0},            // beyond the end of the fd
            {GPA, SIZE, UVA, 4 * SIZE - 4096},  // offset + size beyond the fd
            {-4096, SIZE, UVA, 0},              // gpa range wraps
            {GPA, SIZE, -4096, 0},              // uva range wraps
            {GPA, SIZE, UVA, -4096},            // negative offset
        };
        final int fd = MemFd.create("bad-regions", 4 * SIZE);
        try {
            for (final long[] r : bad) {
                final int dup = FileDescriptors.dup(fd);
                assertThrows(InvalidMemoryException.class, () -> GuestRegion.map(r[0], r[1], r[2], r[3], dup, UnsealedMemory.REFUSE),
                    java.util.Arrays.toString(r));
                assertFalse(FileDescriptors.isOpen(dup), "fd closed on failure");
            }
        } finally {
            FileDescriptors.closeQuietly(fd);
        }
    }

    @Test
    void regionsSharedBetweenTablesStayMappedUntilTheLastTableCloses() {
        final GuestMemory first = GuestMemory.of(List.of(backing.region(GPA, UVA, 0, SIZE)));
        final GuestRegion kept = first.regions().get(0);
        final GuestMemory second = first.withRegion(backing.region(GPA + SIZE, UVA + SIZE, SIZE, SIZE));
        first.close();
        assertTrue(FileDescriptors.isOpen(kept.fd()), "still used by the second table");
        assertNotEquals(UNMAPPED, second.gpaToHost(GPA, SIZE));
        final GuestMemory third = second.withoutRegion(GPA, SIZE, UVA);
        assertNull(second.withoutRegion(GPA, SIZE, UVA + 1), "REM_MEM_REG must match gpa, size and uva");
        second.close();
        assertFalse(FileDescriptors.isOpen(kept.fd()), "removed and no table left: unmapped and closed");
        assertEquals(UNMAPPED, third.gpaToHost(GPA, 1));
        assertNotEquals(UNMAPPED, third.gpaToHost(GPA + SIZE, SIZE));
        assertThrows(InvalidMemoryException.class,
            () -> third.withRegion(backing.region(GPA + SIZE + 4096, UVA, 0, 4096)), "overlap on ADD_MEM_REG");
        third.close();
    }
}
