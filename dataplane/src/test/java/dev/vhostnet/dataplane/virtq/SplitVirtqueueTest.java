package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.testing.DriverRing;
import dev.vhostnet.dataplane.testing.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.vhostnet.spec.SplitRingLayout.AVAIL_F_NO_INTERRUPT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_INDIRECT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_NEXT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_WRITE;
import static dev.vhostnet.spec.SplitRingLayout.USED_F_NO_NOTIFY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The device side of a split ring against rings a driver laid out in a memfd. */
class SplitVirtqueueTest {
    private static final int SIZE = 8;
    private static final long MEM = 1 << 20;
    private static final long GPA = 0x1_0000_0000L;
    private static final long UVA = 0x7f00_0000_0000L;
    private static final int DESC = 0x0;
    private static final int AVAIL = 0x1000;
    private static final int USED = 0x2000;
    private static final int TABLE = 0x3000; // an indirect table
    private static final int BUF = 0x10000;  // buffers from here

    private TestMemory backing;
    private GuestMemory memory;
    private DriverRing ring;
    private SplitVirtqueue q;
    private final DescriptorChain chain = new DescriptorChain(4);
    private final EventFd call = EventFd.create();
    private final EventFd err = EventFd.create();

    @BeforeEach
    void setUp() {
        backing = new TestMemory(MEM);
        memory = GuestMemory.of(List.of(backing.region(GPA, UVA, 0, MEM)));
        ring = new DriverRing(backing, SIZE, GPA, UVA, DESC, AVAIL, USED);
        q = new SplitVirtqueue(0, new QueueCounters());
    }

    @AfterEach
    void tearDown() {
        memory.close();
        backing.close();
        call.close();
        err.close();
    }

    private void start(final boolean eventIdx, final boolean indirect, final int base) {
        ring.startAt(base);
        q.setFeatures(eventIdx, indirect);
        q.setCall(call);
        q.setErr(err);
        assertEquals(QueueError.NONE, q.start(memory, SIZE, ring.descUva(), ring.availUva(), ring.usedUva(), base));
        q.setEnabled(true);
        assertTrue(q.isRunning());
    }

    private void start() {
        start(false, true, 0);
    }

    private long host(final long offset) {
        return memory.regions().get(0).hostAddr() + offset;
    }

    private static long gpa(final long offset) {
        return GPA + offset;
    }

    /** Pop the next chain, expecting the queue to break with {@code why} and signal the error fd. */
    private void assertBreaks(final QueueError why) {
        if (q.available() > 0) {
            assertFalse(q.pop(chain));
        }
        assertEquals(why, q.error());
        assertFalse(q.isRunning());
        assertEquals(0, q.available(), "a broken queue offers nothing");
        assertEquals(1, err.drain(), "error fd signalled once");
        assertEquals(1, q.counters().get(QueueCounters.ERRORS));
    }

    @Test
    void chainOfReadableThenWritableDescriptors() {
        start();
        ring.desc(5, gpa(BUF), 12, DESC_F_NEXT, 2)
            .desc(2, gpa(BUF + 0x100), 100, DESC_F_NEXT, 7)
            .desc(7, gpa(BUF + 0x1000), 2048, DESC_F_WRITE, 0)
            .offer(5);
        assertEquals(1, q.available());
        assertTrue(q.pop(chain));
        assertEquals(5, chain.head());
        assertEquals(2, chain.readCount());
        assertEquals(host(BUF), chain.readAddr(0));
        assertEquals(100, chain.readLen(1));
        assertEquals(112, chain.readBytes());
        assertEquals(1, chain.writeCount());
        assertEquals(host(BUF + 0x1000), chain.writeAddr(0));
        assertEquals(2048, chain.writeBytes());
        assertEquals(0, q.available());
    }

    @Test
    void indirectTable() {
        start();
        ring.descAt(TABLE, 0, gpa(BUF), 12, DESC_F_NEXT, 2)
            .descAt(TABLE, 2, gpa(BUF + 64), 50, DESC_F_NEXT, 1)
            .descAt(TABLE, 1, gpa(BUF + 0x800), 1000, DESC_F_WRITE, 0)
            .desc(3, gpa(TABLE), 3 * 16, DESC_F_INDIRECT, 0)
            .offer(3);
        assertTrue(q.pop(chain));
        assertEquals(3, chain.head());
        assertEquals(2, chain.readCount());
        assertEquals(host(BUF + 64), chain.readAddr(1));
        assertEquals(1, chain.writeCount());
        assertEquals(1000, chain.writeLen(0));
    }

    @Test
    void indirectWithoutTheFeatureBreaksTheQueue() {
        start(false, false, 0);
        ring.descAt(TABLE, 0, gpa(BUF), 12, 0, 0).desc(0, gpa(TABLE), 16, DESC_F_INDIRECT, 0).offer(0);
        assertBreaks(QueueError.INDIRECT_NOT_NEGOTIATED);
    }

    @Test
    void availIndexJumpingMoreThanTheQueueSize() {
        start();
        ring.setAvailIdx(SIZE + 1);
        assertEquals(0, q.available());
        assertBreaks(QueueError.AVAIL_IDX_JUMP);
    }

    @Test
    void availIndexMovingExactlyTheQueueSizeIsFine() {
        start();
        ring.setAvailIdx(SIZE);
        assertEquals(SIZE, q.available());
    }

    @Test
    void headOutOfRange() {
        start();
        ring.offer(SIZE);
        assertBreaks(QueueError.HEAD_OUT_OF_RANGE);
    }

    @Test
    void nextOutOfRange() {
        start();
        ring.desc(0, gpa(BUF), 10, DESC_F_NEXT, SIZE).offer(0);
        assertBreaks(QueueError.NEXT_OUT_OF_RANGE);
    }

    @Test
    void nextOutOfRangeInsideAnIndirectTable() {
        start();
        ring.descAt(TABLE, 0, gpa(BUF), 10, DESC_F_NEXT, 2).desc(0, gpa(TABLE), 32, DESC_F_INDIRECT, 0).offer(0);
        assertBreaks(QueueError.NEXT_OUT_OF_RANGE);
    }

    @Test
    void loopInTheDescriptorTable() {
        start();
        ring.desc(0, gpa(BUF), 10, DESC_F_NEXT, 1).desc(1, gpa(BUF), 10, DESC_F_NEXT, 0).offer(0);
        assertBreaks(QueueError.CHAIN_TOO_LONG);
    }

    @Test
    void loopInsideAnIndirectTable() {
        start();
        ring.descAt(TABLE, 0, gpa(BUF), 10, DESC_F_NEXT, 1).descAt(TABLE, 1, gpa(BUF), 10, DESC_F_NEXT, 0)
            .desc(0, gpa(TABLE), 32, DESC_F_INDIRECT, 0).offer(0);
        assertBreaks(QueueError.CHAIN_TOO_LONG);
    }

    @Test
    void nestedIndirect() {
        start();
        ring.descAt(TABLE, 0, gpa(TABLE), 16, DESC_F_INDIRECT, 0).desc(0, gpa(TABLE), 16, DESC_F_INDIRECT, 0).offer(0);
        assertBreaks(QueueError.NESTED_INDIRECT);
    }

    @Test
    void indirectWithNext() {
        start();
        ring.descAt(TABLE, 0, gpa(BUF), 10, 0, 0).desc(0, gpa(TABLE), 16, DESC_F_INDIRECT | DESC_F_NEXT, 1)
            .desc(1, gpa(BUF), 10, 0, 0).offer(0);
        assertBreaks(QueueError.INDIRECT_WITH_NEXT);
    }

    @Test
    void indirectTableOfZeroLength() {
        start();
        ring.desc(0, gpa(TABLE), 0, DESC_F_INDIRECT, 0).offer(0);
        assertBreaks(QueueError.BAD_INDIRECT_SIZE);
    }

    @Test
    void indirectTableNotAMultipleOf16() {
        start();
        ring.desc(0, gpa(TABLE), 24, DESC_F_INDIRECT, 0).offer(0);
        assertBreaks(QueueError.BAD_INDIRECT_SIZE);
    }

    @Test
    void indirectTableLargerThanAnyQueue() {
        start();
        ring.desc(0, gpa(TABLE), 16 * 32768 + 16, DESC_F_INDIRECT, 0).offer(0);
        assertBreaks(QueueError.BAD_INDIRECT_SIZE);
    }

    @Test
    void indirectTableOutsideGuestMemory() {
        start();
        ring.desc(0, gpa(MEM - 16), 32, DESC_F_INDIRECT, 0).offer(0);
        assertBreaks(QueueError.INDIRECT_UNMAPPED);
    }

    @Test
    void bufferOutsideGuestMemory() {
        start();
        ring.desc(0, gpa(MEM - 100), 101, 0, 0).offer(0);
        assertBreaks(QueueError.BUFFER_UNMAPPED);
    }

    @Test
    void bufferWhoseEndWrapsPast2To64() {
        start();
        ring.desc(0, -16L, 32, 0, 0).offer(0);
        assertBreaks(QueueError.BUFFER_UNMAPPED);
    }

    @Test
    void bufferAtAUserAddressInsteadOfAGuestAddress() {
        start();
        ring.desc(0, UVA + BUF, 10, 0, 0).offer(0);
        assertBreaks(QueueError.BUFFER_UNMAPPED);
    }

    @Test
    void readableAfterWritable() {
        start();
        ring.desc(0, gpa(BUF), 10, DESC_F_WRITE | DESC_F_NEXT, 1).desc(1, gpa(BUF + 64), 10, 0, 0).offer(0);
        assertBreaks(QueueError.READABLE_AFTER_WRITABLE);
    }

    @Test
    void ringOutsideMemoryCannotStart() {
        ring.startAt(0);
        q.setErr(err);
        assertEquals(QueueError.RING_UNMAPPED, q.start(memory, SIZE, UVA + MEM - 64, ring.availUva(), ring.usedUva(), 0));
        assertFalse(q.isRunning());
        assertEquals(QueueError.RING_UNMAPPED, q.start(memory, SIZE, GPA + DESC, ring.availUva(), ring.usedUva(), 0),
            "ring addresses are user addresses, not guest physical ones");
    }

    @Test
    void aBufferStraddlingTwoAdjacentRegionsBecomesTwoSegments() {
        memory.close();
        final GuestRegion low = backing.region(GPA, UVA, 0, MEM / 2);
        final GuestRegion high = backing.region(GPA + MEM / 2, UVA + MEM / 2, MEM / 2, MEM / 2);
        memory = GuestMemory.of(List.of(low, high));
        start();
        ring.desc(0, gpa(MEM / 2 - 10), 30, DESC_F_WRITE, 0).offer(0);
        assertTrue(q.pop(chain));
        assertEquals(2, chain.writeCount());
        assertEquals(low.hostAddr() + MEM / 2 - 10, chain.writeAddr(0));
        assertEquals(10, chain.writeLen(0));
        assertEquals(high.hostAddr(), chain.writeAddr(1));
        assertEquals(20, chain.writeLen(1));
        assertEquals(30, chain.writeBytes());
    }

    @Test
    void indexesWrapAround16Bits() {
        start(false, true, 65533);
        for (int i = 0; i < 6; i++) {
            ring.desc(i, gpa(BUF + i * 64), 64, DESC_F_WRITE, 0).offer(i);
        }
        assertEquals(6, q.available());
        for (int i = 0; i < 6; i++) {
            assertTrue(q.pop(chain));
            assertEquals(i, chain.head());
            q.addUsed(chain.head(), 10 + i);
        }
        q.publishUsed();
        assertEquals(3, ring.usedIdx(), "65533 + 6 wraps to 3");
        assertEquals(3, q.lastAvailIdx());
        for (int i = 0; i < 6; i++) {
            assertEquals(i, ring.usedId(65533 + i));
            assertEquals(10 + i, ring.usedLen(65533 + i));
        }
        assertEquals(3, q.stop(), "GET_VRING_BASE value after the wrap");
    }

    @Test
    void rewindGivesBackChainsAndUsedEntriesNotYetPublished() {
        start();
        ring.desc(0, gpa(BUF), 64, DESC_F_WRITE, 0).offer(0).desc(1, gpa(BUF + 64), 64, DESC_F_WRITE, 0).offer(1);
        final long mark = q.mark();
        assertTrue(q.pop(chain));
        q.addUsed(chain.head(), 64);
        q.rewind(mark);
        assertEquals(2, q.available());
        q.publishUsed();
        assertEquals(0, ring.usedIdx(), "nothing was published");
    }

    @Test
    void stopPublishesPendingUsedEntriesAndStartTrustsTheUsedIndexInMemory() {
        start();
        ring.desc(0, gpa(BUF), 64, 0, 0).offer(0);
        assertTrue(q.pop(chain));
        q.addUsed(0, 0);
        assertEquals(1, q.stop());
        assertEquals(1, ring.usedIdx());
        // A reconnecting front-end says base 1; the used index in its memory (1) is where we continue.
        ring.desc(1, gpa(BUF), 64, 0, 0).offer(1);
        assertEquals(QueueError.NONE, q.start(memory, SIZE, ring.descUva(), ring.availUva(), ring.usedUva(), 1));
        assertTrue(q.pop(chain));
        q.addUsed(chain.head(), 0);
        q.publishUsed();
        assertEquals(2, ring.usedIdx());
        assertEquals(1, ring.usedId(1));
    }

    /** Offer, consume and publish one chain; returns the calls signalled by that publish. */
    private long completeOne(final int id) {
        ring.desc(id, gpa(BUF), 64, 0, 0).offer(id);
        assertTrue(q.pop(chain));
        q.addUsed(chain.head(), 0);
        q.publishUsed();
        return call.drain();
    }

    @Test
    void eventIdxInterruptsOnlyWhenUsedIdxPassesUsedEvent() {
        start(true, true, 0);
        ring.setUsedEvent(5);
        assertEquals(1, completeOne(0), "first decision after start always interrupts");
        assertEquals(0, completeOne(1), "used 1 -> 2, event 5");
        assertEquals(0, completeOne(2));
        assertEquals(0, completeOne(3));
        assertEquals(0, completeOne(4), "used 4 -> 5: not past 5 yet");
        assertEquals(1, completeOne(5), "used 5 -> 6 crosses used_event 5");
        ring.setUsedEvent(6);
        assertEquals(1, completeOne(6));
        assertEquals(3, q.counters().get(QueueCounters.CALLS));
    }

    @Test
    void eventIdxBatchCrossingUsedEventInterruptsOnce() {
        start(true, true, 0);
        completeOne(0);
        ring.setUsedEvent(2);
        for (int i = 1; i <= 4; i++) {
            ring.desc(i, gpa(BUF), 64, 0, 0).offer(i);
        }
        for (int i = 1; i <= 4; i++) {
            assertTrue(q.pop(chain));
            q.addUsed(chain.head(), 0);
        }
        q.publishUsed(); // 1 -> 5 in one store
        assertEquals(1, call.drain());
    }

    @Test
    void noInterruptFlagWithoutEventIdx() {
        start(false, true, 0);
        ring.setAvailFlags(AVAIL_F_NO_INTERRUPT);
        assertEquals(0, completeOne(0));
        assertEquals(0, completeOne(1));
        ring.setAvailFlags(0);
        assertEquals(1, completeOne(2));
        ring.setUsedEvent(100); // ignored without EVENT_IDX
        assertEquals(1, completeOne(3));
    }

    @Test
    void kickSuppressionWithAndWithoutEventIdx() {
        start(false, true, 0);
        q.disableKicks();
        assertEquals(USED_F_NO_NOTIFY, ring.usedFlags() & USED_F_NO_NOTIFY);
        assertFalse(q.enableKicks());
        assertEquals(0, ring.usedFlags() & USED_F_NO_NOTIFY);
        ring.desc(0, gpa(BUF), 64, 0, 0).offer(0);
        q.disableKicks();
        assertTrue(q.enableKicks(), "a buffer that arrived meanwhile must be reported, or the dataplane sleeps on it");

        q.reset();
        ring.setAvailIdx(0);
        start(true, true, 0);
        ring.desc(0, gpa(BUF), 64, 0, 0).offer(0).offer(0);
        assertTrue(q.pop(chain));
        assertTrue(q.enableKicks(), "one more is pending");
        assertEquals(1, ring.availEvent(), "avail_event = next index the device will read");
    }

    @Test
    void nothingIsProcessedWhileDisabled() {
        start();
        q.setEnabled(false);
        ring.desc(0, gpa(BUF), 64, 0, 0).offer(0);
        assertEquals(0, q.available());
        q.setEnabled(true);
        assertEquals(1, q.available());
    }

    @Test
    void remapToATableWithoutTheRingBreaksTheQueue() {
        start();
        try (GuestMemory elsewhere = GuestMemory.of(List.of(backing.region(GPA + MEM, UVA + MEM, 0, MEM)))) {
            assertEquals(QueueError.RING_UNMAPPED, q.remap(elsewhere));
        }
    }
}
