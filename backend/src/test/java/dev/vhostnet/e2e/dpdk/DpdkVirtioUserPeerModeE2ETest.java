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
 * own counters must fit between what the front-end sent and received, over the interop matrix of ring
 * format, in_order, mergeable buffers, queue pairs and frame size. A configuration whose features the
 * back-end did not take fails (virtio_user would fall back silently).
 */
@Tag("e2e")
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class DpdkVirtioUserPeerModeE2ETest extends DpdkLoopE2ESupport {

    static Stream<VirtioUserLoop> loops() {
        // The interop matrix: split, packed, in_order, mergeable buffers, two queue pairs, 64 B and 1518 B frames.
        return Stream.of(VirtioUserLoop.split64(), VirtioUserLoop.mrg1518(), VirtioUserLoop.packed64(),
            VirtioUserLoop.split64().withInOrder(true), VirtioUserLoop.packed64().withInOrder(true),
            VirtioUserLoop.mrg1518().withQueues(2), VirtioUserLoop.packed64().withQueues(2));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("loops")
    void peerModeForwardsBothWaysWithConsistentCounts(VirtioUserLoop loop) throws Exception {
        final String[] args = loop.queues() > 1 ? new String[] {"--queues", String.valueOf(loop.queues())} : new String[0];
        LoopOutcome outcome = runLoop(sockets -> BackendUnderTest.start(sockets, STARTUP, args), loop);
        assertTrue(outcome.backEnd().isPresent(), "back-end printed per-queue counters at exit that the harness"
                + " could read (see BackendCounterParser)");
    }
}
