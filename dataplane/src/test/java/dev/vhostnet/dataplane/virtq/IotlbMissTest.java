package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.Iotlb;
import dev.vhostnet.dataplane.memory.IotlbMissSink;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.testing.DriverPackedRing;
import dev.vhostnet.dataplane.testing.DriverRing;
import dev.vhostnet.dataplane.testing.TestGuest;
import dev.vhostnet.dataplane.testing.TestMemory;
import dev.vhostnet.spec.IotlbMessage;
import org.agrona.concurrent.CachedNanoClock;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.vhostnet.spec.SplitRingLayout.DESC_F_INDIRECT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_NEXT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * How a queue behind a device IOTLB asks for translations. The test plays the front-end: it records the
 * misses the queue sends and answers (or not) with IOTLB updates, stepping a controllable clock. QEMU
 * answers a miss only when the guest has the address mapped, so nothing here may wait for an answer that
 * might never come.
 */
class IotlbMissTest {
    private static final long MEM = 1 << 20;
    private static final long GPA = 0x1_0000_0000L;
    private static final long UVA = 0x7f00_0000_0000L;
    private static final long IOVA = 0xfff0_0000L; // top-down below 4 GiB, as Linux allocates
    private static final long PAGE = 4096;
    private static final long MS = 1_000_000L;
    private static final int BUF = 0x10000;

    private TestMemory backing;
    private GuestMemory memory;
    private final Iotlb tlb = new Iotlb();
    private final CachedNanoClock clock = new CachedNanoClock();
    private final List<Long> misses = new ArrayList<>();
    private final IotlbMissSink sink = new IotlbMissSink() {
        @Override
        public void miss(final long iova, final int perm) {
            misses.add(iova);
        }

        @Override
        public void accessFailed(final long iova, final int perm) {
            throw new AssertionError("no access failure expected at 0x" + Long.toHexString(iova));
        }
    };
    private final DescriptorChain chain = new DescriptorChain(8);
    private DriverRing txRing;
    private final EventFd err = EventFd.create();

    @BeforeEach
    void setUp() {
        backing = new TestMemory(MEM);
        memory = GuestMemory.of(List.of(backing.region(GPA, UVA, 0, MEM)));
        clock.update(0);
    }

    @AfterEach
    void tearDown() {
        memory.close();
        backing.close();
        err.close();
    }

    private static long iova(final long offset) {
        return IOVA + offset;
    }

    /** Map the page holding {@code offset} (as QEMU answers a miss: one 4 KiB page, read-write). */
    private void mapPage(final long offset) {
        final long page = offset & ~(PAGE - 1);
        assertTrue(tlb.update(iova(page), PAGE, UVA + page, IotlbMessage.PERM_RW));
    }

    private void at(final long nanos) {
        clock.update(nanos);
    }

    private SplitVirtqueue splitQueue(final int size, final DriverRing ring) {
        final SplitVirtqueue q = new SplitVirtqueue(1, new QueueCounters());
        q.setIotlb(tlb, sink);
        q.setTranslationClock(clock);
        q.setFeatures(false, true);
        q.setErr(err);
        q.setEnabled(true);
        final QueueError started = q.start(memory, size, IOVA + ringOffset(ring.descUva()),
            IOVA + ringOffset(ring.availUva()), IOVA + ringOffset(ring.usedUva()), 0);
        assertTrue(started == QueueError.NONE || started == QueueError.IOTLB_MISS, started.toString());
        return q;
    }

    private static long ringOffset(final long uva) {
        return uva - UVA;
    }

    /** A split ring of 8 with its three parts in pages 0..2, all mapped; one TX chain at BUF offered. */
    private SplitVirtqueue txQueueWithOneChain() {
        txRing = new DriverRing(backing, 8, IOVA, UVA, 0, 0x1000, 0x2000);
        final DriverRing ring = txRing;
        mapPage(0);
        mapPage(0x1000);
        mapPage(0x2000);
        final SplitVirtqueue q = splitQueue(8, ring);
        ring.desc(0, iova(BUF), 100, 0, 0).offer(0);
        return q;
    }

    @Test
    void aMissIsAskedAgainAtOnceWhenTheAnswerWasInvalidatedInsideTheDedupWindow() {
        final SplitVirtqueue q = txQueueWithOneChain();
        assertEquals(1, q.available());
        assertFalse(q.pop(chain), "buffer not mapped yet");
        assertEquals(List.of(iova(BUF)), misses);

        at(1 * MS);
        assertEquals(0, q.available(), "parked: nothing changed since the miss");
        // An update for some other page wakes the queue, but the request for BUF is still outstanding.
        mapPage(0x5000);
        at(2 * MS);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain));
        assertEquals(1, misses.size(), "de-duplicated while outstanding");
        // Invalidations of other pages (constant in strict mode) are no reason to ask again either: a late
        // duplicate for a page the guest has unmapped since only makes QEMU log a translation fault.
        tlb.invalidate(iova(0x5000), PAGE);
        at(2 * MS + 1);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain));
        assertEquals(1, misses.size(), "still outstanding after an unrelated invalidation");
        // Nor is a full flush (lazy mode) that covers the page before the answer came: the answer is on its
        // way, and a duplicate QEMU handles after the guest unmapped the page again would fault.
        tlb.invalidate(0, 0);
        mapPage(0);
        mapPage(0x1000);
        mapPage(0x2000); // the rings, asked for again in the real thing
        at(2 * MS + 2);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain));
        assertEquals(1, misses.size(), "still outstanding after a flush that came before the answer");

        // The front-end answers, and the guest unmaps the page again before the queue gets to use it: the
        // invalidation arrives within the de-dup window. Suppressing the second request would park the queue
        // forever (the front-end has nothing more to send).
        mapPage(BUF);
        at(3 * MS);
        tlb.invalidate(iova(BUF), PAGE);
        at(4 * MS);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain));
        assertEquals(List.of(iova(BUF), iova(BUF)), misses, "asked again at once, inside the window");

        mapPage(BUF);
        at(5 * MS);
        assertEquals(1, q.available());
        assertTrue(q.pop(chain));
        assertEquals(QueueError.NONE, q.error());
    }

    @Test
    void anUnansweredMissIsAskedAgainPeriodicallyWithoutAnyIotlbChange() {
        final SplitVirtqueue q = txQueueWithOneChain();
        q.available();
        assertFalse(q.pop(chain));
        assertEquals(1, misses.size());
        at(TranslationWait.REASK_NANOS - 1);
        assertEquals(0, q.available(), "parked until the re-ask is due");
        at(TranslationWait.REASK_NANOS);
        assertEquals(1, q.available(), "walked again although nothing changed");
        assertFalse(q.pop(chain));
        assertEquals(List.of(iova(BUF), iova(BUF)), misses);
        // Now the guest maps it (e.g. the first request raced its mapping): the answer to the re-ask gets through.
        mapPage(BUF);
        assertEquals(1, q.available());
        assertTrue(q.pop(chain));
    }

    @Test
    void aTranslationThatNeverComesFailsTheQueueCleanlyAfterTheBound() {
        final SplitVirtqueue q = txQueueWithOneChain();
        q.available();
        assertFalse(q.pop(chain));
        for (long t = TranslationWait.REASK_NANOS; t < TranslationWait.GIVE_UP_NANOS; t += 100 * MS) {
            at(t);
            if (q.available() > 0) {
                assertFalse(q.pop(chain));
            }
            assertEquals(QueueError.NONE, q.error(), "still waiting at " + t / MS + " ms");
        }
        assertTrue(misses.size() > 2 && misses.size() < 30, "re-asked, not flooded: " + misses.size());
        at(TranslationWait.GIVE_UP_NANOS);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain));
        assertEquals(QueueError.IOTLB_TIMEOUT, q.error());
        assertEquals(1, err.drain(), "error eventfd signalled");
        assertEquals(0, q.available(), "a failed queue offers nothing");
    }

    @Test
    void progressRestartsTheBound() {
        final SplitVirtqueue q = txQueueWithOneChain();
        q.available();
        assertFalse(q.pop(chain));
        at(TranslationWait.GIVE_UP_NANOS - MS);
        mapPage(BUF);
        assertEquals(1, q.available());
        assertTrue(q.pop(chain), "answered just in time");
        q.addUsed(chain, 0);
        q.publishUsed();
        // A later miss gets the whole bound again.
        txRing.desc(1, iova(BUF + 0x8000), 100, 0, 0).offer(1);
        at(TranslationWait.GIVE_UP_NANOS + MS);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain));
        assertEquals(QueueError.NONE, q.error());
        assertEquals(iova(BUF + 0x8000), misses.get(misses.size() - 1));
    }

    @Test
    void timeNobodyWalkedTheQueueIsNotCountedAgainstANewTranslation() {
        final SplitVirtqueue q = txQueueWithOneChain();
        q.available();
        assertFalse(q.pop(chain));
        mapPage(BUF); // answered at once, but the queue is not walked for a long time
        txRing.desc(1, iova(BUF + 0x8000), 100, 0, 0).offer(1);
        at(10 * TranslationWait.GIVE_UP_NANOS);
        assertTrue(q.available() > 0);
        assertTrue(q.pop(chain), "the first chain's translation had arrived");
        assertEquals(1, q.available());
        assertFalse(q.pop(chain), "the second chain's page is missing");
        assertEquals(QueueError.NONE, q.error(), "a new translation gets the whole bound");
        assertEquals(List.of(iova(BUF), iova(BUF + 0x8000)), misses);
    }

    @Test
    void everyMissingPageOfAChainIsAskedForInOneRoundTrip() {
        final DriverRing ring = new DriverRing(backing, 8, IOVA, UVA, 0, 0x1000, 0x2000);
        mapPage(0);
        mapPage(0x1000);
        mapPage(0x2000);
        final SplitVirtqueue q = splitQueue(8, ring);
        // A frame over three descriptors, its second buffer spanning two pages: four pages, none mapped.
        ring.desc(0, iova(BUF), 100, DESC_F_NEXT, 1)
            .desc(1, iova(BUF + 0x1800), 0x1000, DESC_F_NEXT, 2)
            .desc(2, iova(BUF + 0x4000), 100, 0, 0)
            .offer(0);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain));
        assertEquals(List.of(iova(BUF), iova(BUF + 0x1800), iova(BUF + 0x2000), iova(BUF + 0x4000)), misses,
            "all at once, not one per round trip");
        assertEquals(0, q.available(), "parked");
        mapPage(BUF);
        mapPage(BUF + 0x1000);
        mapPage(BUF + 0x2000);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain), "the last page is still on its way");
        assertEquals(4, misses.size(), "and not asked for twice");
        mapPage(BUF + 0x4000);
        assertEquals(1, q.available());
        assertTrue(q.pop(chain));
        assertEquals(100 + 0x1000 + 100, chain.readBytes());
    }

    @Test
    void theChainsAvailableAfterAMissingOneAreAskedForInTheSameRoundTrip() {
        final DriverRing ring = new DriverRing(backing, 8, IOVA, UVA, 0, 0x1000, 0x2000);
        mapPage(0);
        mapPage(0x1000);
        mapPage(0x2000);
        final SplitVirtqueue q = splitQueue(8, ring);
        for (int i = 0; i < 4; i++) {
            ring.desc(i, iova(BUF + i * 0x1000), 100, 0, 0).offer(i);
        }
        assertEquals(4, q.available());
        assertFalse(q.pop(chain));
        assertEquals(List.of(iova(BUF), iova(BUF + 0x1000), iova(BUF + 0x2000), iova(BUF + 0x3000)), misses);
        for (int i = 0; i < 4; i++) {
            mapPage(BUF + i * 0x1000);
        }
        for (int i = 0; i < 4; i++) {
            assertTrue(q.available() > 0);
            assertTrue(q.pop(chain), "chain " + i + " without another round trip");
            assertEquals(i, chain.head());
        }
        assertEquals(4, misses.size());
    }

    @Test
    void packedChainsAfterAMissingOneAreAskedForInTheSameRoundTrip() {
        try (TestGuest guest = new TestGuest(MEM)) {
            final DriverPackedRing ring = new DriverPackedRing(guest, 8);
            final long buffers = guest.alloc(8 * PAGE, 4096);
            // IOVA = IOVA base + guest offset; the ring's pages are mapped, the buffers' are not.
            for (long page = 0; page < buffers; page += PAGE) {
                assertTrue(tlb.update(iova(page), PAGE, guest.uva(page), IotlbMessage.PERM_RW));
            }
            final PackedVirtqueue q = new PackedVirtqueue(1, new QueueCounters());
            q.setIotlb(tlb, sink);
            q.setTranslationClock(clock);
            q.setFeatures(false, true);
            q.setEnabled(true);
            assertEquals(QueueError.NONE, q.start(guest.memory, 8, iova(ring.ringOffset), iova(ring.driverEventOffset),
                iova(ring.deviceEventOffset), 0x8000));
            for (int i = 0; i < 3; i++) {
                ring.add(i, new long[] {iova(buffers + i * PAGE), iova(buffers + i * PAGE + 2048)},
                    new int[] {64, 64}, new boolean[] {false, false});
            }
            assertEquals(1, q.available());
            assertFalse(q.pop(chain));
            assertEquals(List.of(iova(buffers), iova(buffers + PAGE), iova(buffers + 2 * PAGE)), misses);
            for (int i = 0; i < 3; i++) {
                assertTrue(tlb.update(iova(buffers + i * PAGE), PAGE, guest.uva(buffers + i * PAGE), IotlbMessage.PERM_RW));
            }
            for (int i = 0; i < 3; i++) {
                assertEquals(1, q.available());
                assertTrue(q.pop(chain), "chain " + i + " without another round trip");
                assertEquals(128, chain.readBytes());
            }
            assertEquals(3, misses.size());
        }
    }

    @Test
    void aSplitDescriptorTableSpanningTwoPagesAsksForTheSecondPage() {
        // 256 descriptors = 4 KiB from the middle of page 0: the table spans pages 0 and 1.
        final DriverRing ring = new DriverRing(backing, 256, IOVA, UVA, 0x800, 0x2000, 0x3000);
        mapPage(0x800);
        mapPage(0x2000);
        mapPage(0x3000);
        final SplitVirtqueue q = splitQueue(256, ring);
        assertEquals(List.of(iova(0x1000)), misses, "the first missing byte, not the table's start");
        mapPage(0x1000);
        ring.desc(0, iova(BUF), 64, 0, 0).offer(0);
        mapPage(BUF);
        assertEquals(1, q.available(), "rings resolved once the second page arrived");
        assertTrue(q.pop(chain));
    }

    @Test
    void anIndirectTableSpanningTwoPagesAsksForTheSecondPage() {
        final DriverRing ring = new DriverRing(backing, 8, IOVA, UVA, 0, 0x1000, 0x2000);
        mapPage(0);
        mapPage(0x1000);
        mapPage(0x2000);
        final SplitVirtqueue q = splitQueue(8, ring);
        final int table = 0x4f80; // 16 entries = 256 bytes: 0x4f80..0x507f
        for (int i = 0; i < 16; i++) {
            ring.descAt(table, i, iova(BUF + i * 64), 64, i < 15 ? DESC_F_NEXT : 0, i + 1);
        }
        ring.desc(0, iova(table), 16 * 16, DESC_F_INDIRECT, 0).offer(0);
        mapPage(table);
        mapPage(BUF);
        assertEquals(1, q.available());
        assertFalse(q.pop(chain));
        assertEquals(List.of(iova(0x5000)), misses, "the table's second page");
        mapPage(0x5000);
        assertEquals(1, q.available());
        assertTrue(q.pop(chain));
        assertEquals(16 * 64, chain.readBytes());
    }

    @Test
    void aPackedDescriptorRingSpanningTwoPagesAsksForTheSecondPage() {
        final PackedVirtqueue q = new PackedVirtqueue(1, new QueueCounters());
        q.setIotlb(tlb, sink);
        q.setTranslationClock(clock);
        q.setFeatures(false, true);
        q.setEnabled(true);
        mapPage(0x800);
        mapPage(0x2000);
        final long ring = iova(0x800); // 256 * 16 bytes from the middle of page 0
        assertEquals(QueueError.IOTLB_MISS, q.start(memory, 256, ring, iova(0x2000), iova(0x2004),
            0x8000)); // position 0, wrap counter 1
        assertEquals(List.of(iova(0x1000)), misses);
        mapPage(0x1000);
        assertEquals(0, q.available(), "resolved, nothing offered");
        assertEquals(QueueError.NONE, q.error());
        assertEquals(1, misses.size());
    }
}
