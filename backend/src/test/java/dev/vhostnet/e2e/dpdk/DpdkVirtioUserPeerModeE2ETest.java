package dev.vhostnet.e2e.dpdk;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Our back-end in peer mode with DPDK's virtio_user as the front-end on both sockets: packets the
 * front-end sends on A must arrive on B and vice versa, for as long as the loop runs, and the back-end's
 * own counters must fit between what the front-end sent and received. Configurations whose features
 * the back-end does not offer yet (packed rings) are skipped, not failed.
 */
@Tag("e2e")
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class DpdkVirtioUserPeerModeE2ETest extends DpdkLoopE2ESupport {

    static Stream<VirtioUserLoop> loops() {
        return Stream.of(VirtioUserLoop.split64(), VirtioUserLoop.mrg1518(), VirtioUserLoop.packed64());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("loops")
    void peerModeForwardsBothWaysWithConsistentCounts(VirtioUserLoop loop) throws Exception {
        LoopOutcome outcome = runLoop(sockets -> BackendUnderTest.start(sockets, STARTUP), loop, true);
        assertTrue(outcome.backEnd().isPresent(), "back-end printed per-queue counters at exit that the harness"
                + " could read (see BackendCounterParser)");
    }
}
