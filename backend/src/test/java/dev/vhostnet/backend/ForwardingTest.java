package dev.vhostnet.backend;

import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.frontend.VirtioNetDriver.Options;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.time.Duration;

import static dev.vhostnet.frontend.VirtioNetDriver.RX;
import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Peer mode: what guest A transmits, guest B receives, byte for byte, and the other way round. */
class ForwardingTest {
    private static final Duration WAIT = Duration.ofSeconds(5);

    @TempDir
    Path dir;
    private InProcessBackend backend;

    @BeforeEach
    void startBackend() throws Exception {
        backend = InProcessBackend.peered(dir);
    }

    @AfterEach
    void stopBackend() {
        backend.close();
    }

    @Test
    void framesCrossInBothDirectionsIntactAndCounted() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            a.postRxBuffers(32, 2048);
            b.postRxBuffers(32, 2048);
            final int n = 20;
            long bytesAtoB = 0;
            long bytesBtoA = 0;
            for (int i = 0; i < n; i++) {
                final byte[] ab = Frames.frame(60 + i * 50, i);
                final byte[] ba = Frames.frame(InProcessBackend.MAC_A, InProcessBackend.MAC_B, 1514 - i * 30, 1000 + i);
                a.send(ab);
                b.send(ba);
                assertArrayEquals(ab, b.receive(WAIT), "A->B frame " + i);
                assertArrayEquals(ba, a.receive(WAIT), "B->A frame " + i);
                bytesAtoB += ab.length;
                bytesBtoA += ba.length;
            }
            assertTrue(a.awaitTxDone(WAIT) && b.awaitTxDone(WAIT), "every TX buffer returned");
            backend.awaitCounter(0, TX, QueueCounters.PACKETS, n);
            backend.awaitCounter(0, TX, QueueCounters.BYTES, bytesAtoB);
            backend.awaitCounter(1, RX, QueueCounters.PACKETS, n);
            backend.awaitCounter(1, RX, QueueCounters.BYTES, bytesAtoB);
            backend.awaitCounter(1, TX, QueueCounters.PACKETS, n);
            backend.awaitCounter(0, RX, QueueCounters.BYTES, bytesBtoA);
            assertEquals(0, backend.txDrops(0) + backend.txDrops(1));
            assertEquals(0, backend.counter(0, TX, QueueCounters.ERRORS) + backend.counter(1, RX, QueueCounters.ERRORS));
        }
    }

    @ParameterizedTest(name = "mergeable={0} eventIdx={1} indirect={2}")
    @CsvSource({"true,true,true", "true,false,false", "false,true,false", "false,false,true"})
    void everyFeatureCombinationForwards(final boolean mergeable, final boolean eventIdx, final boolean indirect)
        throws Exception {
        final Options o = Options.defaults().mergeable(mergeable).eventIdx(eventIdx).indirect(indirect);
        try (VirtioNetDriver a = backend.start(0, o); VirtioNetDriver b = backend.start(1, o)) {
            assertEquals(mergeable, b.mergeable());
            assertEquals(eventIdx, a.eventIdx());
            b.postRxBuffers(64, 2048, indirect ? 2 : 1, indirect);
            // More frames than a burst and than the ring, so indexes and used entries keep turning over.
            for (int i = 0; i < 300; i++) {
                if (b.rxPosted() < 16) {
                    b.postRxBuffers(48, 2048, indirect ? 2 : 1, indirect);
                }
                final byte[] f = Frames.frame(64 + (i * 37) % 1400, i);
                a.send(f, 1 + i % 3, indirect && i % 2 == 0);
                assertArrayEquals(f, b.receive(WAIT), "frame " + i);
            }
            backend.awaitCounter(1, RX, QueueCounters.PACKETS, 300);
        }
    }

    @Test
    void mergeableSpreadsALargeFrameOverSeveralBuffers() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(16, 1024);
            final byte[] big = Frames.frame(9000, 7);
            a.send(big, 5, false);
            final VirtioNetDriver.RxFrame f = b.receiveFrame(WAIT);
            assertNotNull(f);
            // 9000 + 12 header bytes in 1024-byte buffers.
            assertEquals((9000 + VirtioNetDriver.HEADER_LENGTH + 1023) / 1024, f.numBuffers());
            assertArrayEquals(big, f.payload());
        }
    }

    @Test
    void nonMergeableDropsAFrameLargerThanOneBufferAndDeliversTheNext() throws Exception {
        final Options o = Options.defaults().mergeable(false);
        try (VirtioNetDriver a = backend.start(0, o); VirtioNetDriver b = backend.start(1, o)) {
            b.postRxBuffers(8, 1024);
            a.send(Frames.frame(3000, 1));
            final byte[] small = Frames.frame(500, 2);
            a.send(small);
            final VirtioNetDriver.RxFrame f = b.receiveFrame(WAIT);
            assertNotNull(f);
            assertEquals(1, f.numBuffers());
            assertArrayEquals(small, f.payload(), "the oversized frame must not arrive, even truncated");
            backend.awaitCounter(0, TX, QueueCounters.DROPS, 1);
            assertEquals(8 - 1, b.rxPosted(), "the dropped frame consumed no RX buffer");
        }
    }

    @Test
    void nonMergeableFillsAChainOfSeveralWritableDescriptors() throws Exception {
        final Options o = Options.defaults().mergeable(false);
        try (VirtioNetDriver a = backend.start(0, o); VirtioNetDriver b = backend.start(1, o)) {
            b.postRxBuffers(4, 9100, 7, false);
            final byte[] jumbo = Frames.frame(9000, 3);
            a.send(jumbo, 4, true);
            final VirtioNetDriver.RxFrame f = b.receiveFrame(WAIT);
            assertNotNull(f);
            assertEquals(1, f.numBuffers());
            assertArrayEquals(jumbo, f.payload());
        }
    }

    @Test
    void droppedAndCountedWhenThePeerIsAbsent() throws Exception {
        try (VirtioNetDriver a = backend.start(0)) {
            for (int i = 0; i < 5; i++) {
                a.send(Frames.frame(100, i));
            }
            assertTrue(a.awaitTxDone(WAIT), "TX buffers come back even though nobody receives");
            backend.awaitCounter(0, TX, QueueCounters.DROPS, 5);
            backend.awaitCounter(0, TX, QueueCounters.PACKETS, 0);
        }
    }

    @Test
    void droppedAndCountedWhenThePeerHasNoRxBuffers() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            a.send(Frames.frame(100, 1));
            a.send(Frames.frame(100, 2));
            assertTrue(a.awaitTxDone(WAIT));
            backend.awaitCounter(0, TX, QueueCounters.DROPS, 2);
            // Buffers posted afterwards get the next frame, not the dropped ones.
            b.postRxBuffers(4, 2048);
            final byte[] third = Frames.frame(100, 3);
            a.send(third);
            assertArrayEquals(third, b.receive(WAIT));
            assertNull(b.receive(Duration.ofMillis(50)), "dropped frames never show up later");
        }
    }
}
