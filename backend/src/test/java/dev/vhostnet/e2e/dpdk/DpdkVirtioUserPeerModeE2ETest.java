package dev.vhostnet.e2e.dpdk;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Our back-end in peer mode with DPDK's virtio_user as the front-end on both sockets: packets the
 * front-end sends on A must arrive on B and vice versa, for as long as the loop runs, and the back-end's
 * own counters must fit between what the front-end sent and received.
 */
@Tag("e2e")
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class DpdkVirtioUserPeerModeE2ETest extends DpdkLoopE2ESupport {

    @Test
    void peerModeForwardsBothWaysWithConsistentCounts() throws Exception {
        VirtioUserLoop loop = VirtioUserLoop.split64();
        LoopOutcome outcome = runLoop(sockets -> BackendUnderTest.start(sockets, STARTUP), loop);
        assertTrue(outcome.backEnd().isPresent(), "back-end printed per-queue counters at exit that the harness"
                + " could read (see BackendCounterParser)");
    }
}
