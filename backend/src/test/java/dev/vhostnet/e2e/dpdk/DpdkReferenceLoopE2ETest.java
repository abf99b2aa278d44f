package dev.vhostnet.e2e.dpdk;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The harness against DPDK's vhost PMD, the reference back-end. Passing here means the harness (process
 * control, stats parsing, consistency rules) is sound, so a failure of the peer-mode test with the
 * same rules points at our back-end.
 */
@Tag("e2e")
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class DpdkReferenceLoopE2ETest extends DpdkLoopE2ESupport {

    static Stream<VirtioUserLoop> loops() {
        return Stream.of(VirtioUserLoop.split64(), VirtioUserLoop.packed64(), VirtioUserLoop.mrg1518());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("loops")
    void referenceForwardsBothWaysWithConsistentCounts(VirtioUserLoop loop) throws Exception {
        LoopOutcome outcome = runLoop(sockets -> DpdkVhostReference.start(sockets, loop.queues(), STARTUP), loop);
        assertTrue(outcome.backEnd().isPresent(), "reference printed its forward statistics");
    }
}
