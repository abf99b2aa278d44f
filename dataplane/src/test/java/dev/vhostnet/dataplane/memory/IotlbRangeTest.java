package dev.vhostnet.dataplane.memory;

import dev.vhostnet.dataplane.testing.TestGuest;
import dev.vhostnet.spec.IotlbMessage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Device IOTLB ranges are unsigned 64-bit. QEMU crops a full device-IOTLB flush to each IOMMU notifier
 * section; for the section above the MSI window it sends size 2^64 - 0xfef00000 (negative as a Java long),
 * and for a section covering everything it would send 2^64, i.e. 0. Both mean "to the end".
 */
class IotlbRangeTest {
    private static final long PAGE = 4096;
    private static final long LOW = 0x1000_0000L;         // below the MSI window (QEMU's lower section)
    private static final long HIGH = 0xfffe_0000L;        // where Linux allocates IOVAs: top-down below 4 GiB
    private static final long SECTION = 0xfef0_0000L;     // start of QEMU's upper notifier section

    private final TestGuest guest = new TestGuest(1 << 20);
    private final Iotlb tlb = new Iotlb();

    @AfterEach
    void tearDown() {
        guest.close();
    }

    private void map(final long iova, final long offset) {
        assertTrue(tlb.update(iova, PAGE, guest.uva(offset), IotlbMessage.PERM_RW));
    }

    private boolean mapped(final long iova) {
        return tlb.translate(iova, 1, IotlbMessage.PERM_RO, guest.memory) >= 0;
    }

    @Test
    void aSizeNegativeAsASignedLongInvalidatesToTheEnd() {
        map(LOW, 0);
        map(HIGH, PAGE);
        map(HIGH + PAGE, 2 * PAGE);
        final long size = -SECTION; // 2^64 - 0xfef00000, what QEMU 7.2 sends for the upper section
        assertTrue(size < 0, "negative as a Java long");
        tlb.invalidate(SECTION, size);
        assertFalse(mapped(HIGH), "invalidated");
        assertFalse(mapped(HIGH + PAGE), "invalidated");
        assertTrue(mapped(LOW), "below the range: kept");
        assertEquals(1, tlb.size());
    }

    @Test
    void sizeZeroMeansToTheEndOfTheIovaSpace() {
        map(LOW, 0);
        map(HIGH, PAGE);
        tlb.invalidate(LOW + PAGE, 0);
        assertFalse(mapped(HIGH));
        assertTrue(mapped(LOW));
        tlb.invalidate(0, 0); // 2^64 bytes from 0: everything
        assertEquals(0, tlb.size());
    }

    @Test
    void aRangeRunningPastTheTopIsClampedNotIgnored() {
        final long top = -PAGE; // 0xffff_ffff_ffff_f000, the last page
        map(top, 0);
        map(top - PAGE, PAGE);
        tlb.invalidate(top - PAGE + 16, 3 * PAGE); // end wraps past 2^64 - 1
        assertFalse(mapped(top));
        assertFalse(mapped(top - PAGE + 16));
        assertTrue(mapped(top - PAGE), "the bytes before the range stay mapped");
        assertEquals(guest.uva(PAGE), guestUvaOf(top - PAGE));
    }

    @Test
    void anInvalidationInsideOneEntrySplitsIt() {
        assertTrue(tlb.update(LOW, 4 * PAGE, guest.uva(0), IotlbMessage.PERM_RW));
        tlb.invalidate(LOW + PAGE, PAGE);
        assertEquals(2, tlb.size());
        assertTrue(mapped(LOW));
        assertFalse(mapped(LOW + PAGE));
        assertTrue(mapped(LOW + 2 * PAGE));
        assertEquals(guest.uva(2 * PAGE), guestUvaOf(LOW + 2 * PAGE), "the right part keeps its offset");
        assertEquals(PAGE, contiguous(LOW), "the left part ends at the hole");
    }

    @Test
    void anInvalidationAcrossSeveralEntriesKeepsBothEnds() {
        for (int i = 0; i < 6; i++) {
            map(LOW + i * PAGE, i * PAGE);
        }
        tlb.invalidate(LOW + PAGE + 100, 3 * PAGE);
        assertEquals(4, tlb.size()); // page 0, [page 1 up to +100), [from page 4 + 100), page 5
        assertTrue(mapped(LOW + PAGE + 99));
        assertFalse(mapped(LOW + PAGE + 100));
        assertFalse(mapped(LOW + 4 * PAGE + 99));
        assertTrue(mapped(LOW + 4 * PAGE + 100));
        assertEquals(guest.uva(4 * PAGE + 100), guestUvaOf(LOW + 4 * PAGE + 100));
        assertTrue(mapped(LOW + 5 * PAGE));
    }

    @Test
    void updateSizesAreUnsignedButMustNotWrap() {
        assertFalse(tlb.update(LOW, 0, guest.uva(0), IotlbMessage.PERM_RW), "empty");
        assertFalse(tlb.update(-PAGE, 2 * PAGE, guest.uva(0), IotlbMessage.PERM_RW), "wraps past 2^64");
        // 2^63 bytes and more are a valid size (negative as a long), as long as nothing wraps.
        assertTrue(tlb.update(0, Long.MIN_VALUE, guest.uva(0), IotlbMessage.PERM_RW));
        assertEquals(1, tlb.size());
        // A translation inside a huge entry is bounded by the asked length and the memory region, never by
        // the entry's size read as a negative number.
        assertEquals(guest.memory.uvaToHost(guest.uva(0), 1), tlb.translate(0, 64, IotlbMessage.PERM_RO, guest.memory));
        assertEquals(64, tlb.lastContiguous());
        assertEquals(1 << 20, contiguous(0), "up to the end of the guest's only region");
    }

    @Test
    void aMissOnALaterPageReportsTheFirstMissingByte() {
        map(HIGH, 0);
        assertEquals(Iotlb.MISS, tlb.translateContiguous(HIGH + 2048, 4096, IotlbMessage.PERM_RO, guest.memory));
        assertEquals(HIGH + PAGE, tlb.lastFault(), "the second page is what is missing, not the range's start");
    }

    @Test
    void aRequestIsOutstandingUntilAnUpdateCoversItWhateverIsInvalidatedMeanwhile() {
        assertFalse(tlb.outstanding(HIGH + 8));
        tlb.requested(HIGH + 8);
        assertTrue(tlb.outstanding(HIGH), "per page");
        tlb.invalidate(0, 0); // a full flush before the answer: the answer is still on its way
        assertTrue(tlb.outstanding(HIGH));
        map(LOW, 0);
        assertTrue(tlb.outstanding(HIGH), "an update for another page");
        map(HIGH, PAGE);
        assertFalse(tlb.outstanding(HIGH), "answered");
        for (int i = 0; i < 300; i++) {
            tlb.requested(LOW + i * PAGE); // bounded: the oldest requests are forgotten
        }
        assertTrue(tlb.outstanding(LOW + 299 * PAGE));
        assertFalse(tlb.outstanding(LOW));
    }

    private long guestUvaOf(final long iova) {
        final long host = tlb.translate(iova, 1, IotlbMessage.PERM_RO, guest.memory);
        return guest.uva(host - guest.memory.uvaToHost(guest.uva(0), 1));
    }

    private long contiguous(final long iova) {
        tlb.translate(iova, Long.MAX_VALUE, IotlbMessage.PERM_RO, guest.memory);
        return tlb.lastContiguous();
    }
}
