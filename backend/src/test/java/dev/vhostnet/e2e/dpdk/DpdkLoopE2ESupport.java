package dev.vhostnet.e2e.dpdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;

/**
 * The scenario both DPDK end-to-end tests share: start a back-end and the virtio_user io loop, let
 * traffic flow for a few seconds, check it is still flowing, stop everything and check the counts.
 */
abstract class DpdkLoopE2ESupport {
    static final Duration STARTUP = Duration.ofSeconds(60);
    /** How long traffic must keep flowing once the first packets are through. */
    static final Duration FLOW = Duration.ofSeconds(4);
    /**
     * Per direction: 150 times the 64 packets injected, so the loop really kept going; low enough that a
     * loaded CI machine (where a 1518-byte loop was seen at ~20 kpps) does not fail a working back-end.
     */
    static final long MIN_PACKETS = 10_000;

    /**
     * Runs the scenario. A back-end that does not take a requested feature (virtio_user would quietly fall
     * back, e.g. to a split ring) fails the test: see the missing-features check below.
     */
    LoopOutcome runLoop(LoopSession.BackEndStarter starter, VirtioUserLoop loop) throws Exception {
        try (LoopSession session = LoopSession.start(starter, loop, STARTUP)) {
            Testpmd frontEnd = session.frontEnd();
            session.awaitTraffic(1, STARTUP);
            long flowStart = System.nanoTime();
            long flowEnd = flowStart + FLOW.toNanos();
            frontEnd.awaitSnapshotAfter(0, flowEnd, FLOW.plusSeconds(30));
            frontEnd.awaitSnapshotAfter(1, flowEnd, Duration.ofSeconds(30));

            TestpmdStats stats = frontEnd.stats();
            long lastPpsA = stats.latest(0).orElseThrow().rxPps();
            long lastPpsB = stats.latest(1).orElseThrow().rxPps();
            System.out.printf("%s via %s: A->B %.3f Mpps, B->A %.3f Mpps over %s; logs %s, %s%n", loop.name(),
                    session.backEnd().name(), stats.rxRate(1, flowStart, Long.MAX_VALUE) / 1e6,
                    stats.rxRate(0, flowStart, Long.MAX_VALUE) / 1e6, FLOW, frontEnd.log(), session.backEnd().log());

            LoopOutcome outcome = session.finish();
            System.out.printf("front-end %s, back-end %s, negotiated features %s%n", outcome.frontEnd(),
                    outcome.backEnd(), outcome.negotiatedFeatures().stream().map(Long::toHexString).toList());
            // Checked after stopping so the logs are complete whatever the verdict.
            assertTrue(lastPpsA > 0 && lastPpsB > 0, "traffic stopped flowing before the end (last Rx-pps A "
                    + lastPpsA + ", B " + lastPpsB + "); front-end log " + frontEnd.log());
            assertEquals(2, outcome.negotiatedFeatures().size(), "negotiated features of both virtio ports");
            assertEquals("", loop.missingFeatures(outcome.negotiatedFeatures()), "features asked for but not negotiated");
            assertEquals(List.of(), outcome.problems(MIN_PACKETS), "loop consistency; logs " + frontEnd.log()
                    + ", " + session.backEnd().log());
            return outcome;
        }
    }
}
