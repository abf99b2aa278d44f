package dev.vhostnet.backend;

import dev.vhostnet.frontend.VirtioNetDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;

import static dev.vhostnet.frontend.VirtioNetDriver.RX;
import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * QEMU 7.2 stops a vhost-user device (VM stop, end of a live migration) with SET_STATUS(0) and only then
 * GET_VRING_BASE per ring, keeping the answers as last_avail_idx. Status 0 resets the device, but the
 * positions the rings had reached must still be what GET_VRING_BASE reports.
 */
class StatusZeroKeepsRingPositionsTest {
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final int FRAMES = 5;

    @Test
    void getVringBaseAfterStatusZeroReportsWhereTheRingsStopped(@TempDir final Path dir) throws Exception {
        try (InProcessBackend backend = InProcessBackend.peered(dir);
             VirtioNetDriver a = backend.start(0);
             VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(FRAMES, 2048);
            for (int i = 0; i < FRAMES; i++) {
                final byte[] frame = Frames.frame(100, i);
                a.send(frame);
                assertArrayEquals(frame, b.receive(WAIT));
            }
            assertTrue(a.awaitTxDone(WAIT));

            a.frontend().setStatus(0);
            b.frontend().setStatus(0);
            assertFalse(backend.queue(0, TX).isStarted(), "status 0 still stops the rings");
            assertEquals(0, backend.port(0).features(), "status 0 still resets the features");
            assertEquals(FRAMES, a.frontend().getVringBase(TX), "sender's TX position");
            assertEquals(FRAMES, b.frontend().getVringBase(RX), "receiver's RX position");
            assertEquals(0, a.frontend().getVringBase(RX), "a ring that never moved");
        }
    }
}
