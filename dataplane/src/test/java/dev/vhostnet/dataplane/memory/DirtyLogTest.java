package dev.vhostnet.dataplane.memory;

import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.testing.TestMemory;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The dirty bitmap: exact pages marked across word boundaries, marks repeated on set bits, misses counted. */
class DirtyLogTest {
    private static final long LOG_BYTES = 64;

    @Test
    void aRangeMarksExactlyItsPagesAcrossWordBoundaries() {
        try (DirtyLog log = DirtyLog.map(MemFd.create("log", LOG_BYTES), LOG_BYTES, 0, UnsealedMemory.REFUSE)) {
            // Pages 30..97: spans bits of four 32-bit words, partially at both ends.
            log.mark(30L << DirtyLog.PAGE_SHIFT | 123, (97L - 30) * 4096 + 1);
            for (long p = 0; p < LOG_BYTES * 8; p++) {
                assertEquals(p >= 30 && p <= 97, log.isDirty(p), "page " + p);
            }
        }
    }

    @Test
    void markingAPageWhoseBitIsSetStillMarksItAfterTheFrontEndTookTheBit() {
        try (DirtyLog log = DirtyLog.map(MemFd.create("log", LOG_BYTES), LOG_BYTES, 0, UnsealedMemory.REFUSE)) {
            log.mark(5 * 4096, 1);
            assertTrue(log.isDirty(5));
            log.clearForTest(5);
            assertFalse(log.isDirty(5));
            log.mark(5 * 4096 + 8, 8);
            assertTrue(log.isDirty(5), "a later write marks the page again");
        }
    }

    @Test
    void pagesBeyondTheLogAreIgnoredAndCounted() {
        try (DirtyLog log = DirtyLog.map(MemFd.create("log", 1), 1, 0, UnsealedMemory.REFUSE)) {
            log.mark(6 * 4096, 3 * 4096); // pages 6, 7 in the log; 8 beyond it
            assertTrue(log.isDirty(6) && log.isDirty(7));
            assertEquals(1, log.pagesNotLogged());
        }
    }

    @Test
    void aWriteOutsideEveryRegionIsCountedNotDropped() {
        try (TestMemory backing = new TestMemory(8192);
             GuestMemory m = GuestMemory.of(List.of(backing.region(0x10000, 0x7f0000000000L, 0, 8192)));
             DirtyLog log = DirtyLog.map(MemFd.create("log", LOG_BYTES), LOG_BYTES, 0, UnsealedMemory.REFUSE)) {
            final long host = m.gpaToHost(0x10000, 8192);
            m.logWrite(log, host + 4096, 4096 + 100); // the last 100 bytes lie outside the region
            assertTrue(log.isDirty(0x11));
            assertEquals(100, log.bytesOutsideRegions());
        }
    }
}
