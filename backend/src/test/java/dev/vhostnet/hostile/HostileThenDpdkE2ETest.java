package dev.vhostnet.hostile;

import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.e2e.dpdk.BackEndCounters;
import dev.vhostnet.e2e.dpdk.LoopOutcome;
import dev.vhostnet.e2e.dpdk.Testpmd;
import dev.vhostnet.e2e.dpdk.TestpmdStats;
import dev.vhostnet.e2e.dpdk.VirtioUserLoop;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real front-end after the abuse: every hostile case of {@link HostileCases} (all categories: headers, fds,
 * memory tables, vring setup, live descriptor abuse, memfd truncation and other faults, disconnect floods) runs
 * against ONE in-process back-end, each followed by the usual health and leak check; then DPDK's testpmd
 * connects a virtio_user pair to both sockets of that same back-end and forwards in io mode. Frames must flow
 * both ways for the whole window, the counts must be consistent (front-end sent >= back-end took >= back-end
 * delivered >= front-end received, nothing duplicated, at most the injected packets in flight), and once
 * testpmd has gone the back-end holds nothing more than before the attacks.
 *
 * <p>{@code -Dhostile.only=TEXT} narrows the attacks as in {@link HostileFrontendTest} (then not every category
 * is required to have run).
 */
@Tag("e2e")
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class HostileThenDpdkE2ETest {
    private static final Duration STARTUP = Duration.ofSeconds(60);
    /** How long traffic must keep flowing once the first packets are through. */
    private static final Duration FLOW = Duration.ofSeconds(5);
    /**
     * Per direction. Low against the Mpps the back-end forwards when it has a core of its own, because here it
     * shares the test JVM with the attacks' leftovers and a busy two-core machine (0.005 to 0.3 Mpps seen at load
     * averages of 8 to 12); still far above the 64 packets --tx-first injects, so each circulated many times.
     */
    private static final long MIN_PACKETS = 1_000;

    @TempDir
    Path dir;

    @Test
    void dpdkVirtioUserForwardsThroughTheAttackedBackEnd() throws Exception {
        final String only = System.getProperty("hostile.only", "");
        final Map<String, Integer> ran = new LinkedHashMap<>();
        // ALLOW: DPDK's virtio_user memory (memfd_create("nohuge", 0)) cannot be sealed against shrinking.
        try (Arena arena = new Arena(dir, UnsealedMemory.ALLOW)) {
            final long attacksStart = System.nanoTime();
            for (final Map.Entry<String, List<HostileCases.Case>> category : HostileCases.byCategory().entrySet()) {
                int n = 0;
                for (final HostileCases.Case c : category.getValue()) {
                    if (!c.name().contains(only)) {
                        continue;
                    }
                    try {
                        c.attack().run(arena);
                        arena.assertHealthy(c.name());
                    } catch (final Throwable t) {
                        throw new AssertionError("hostile case '" + c.name() + "' (" + category.getKey() + "): " + t, t);
                    }
                    n++;
                }
                ran.put(category.getKey(), n);
            }
            System.out.printf("hostile cases against the back-end before DPDK: %s (%d in all, %.1f s)%n", ran,
                ran.values().stream().mapToInt(Integer::intValue).sum(), (System.nanoTime() - attacksStart) / 1e9);
            if (only.isEmpty()) {
                ran.forEach((category, n) -> assertTrue(n > 0, "no hostile case ran in category " + category));
            }

            arena.releaseB();
            final long[] before = counters(arena);
            final long errorsBefore = errors(arena);
            final VirtioUserLoop loop = VirtioUserLoop.split64();
            final Testpmd frontEnd = loop.start(arena.socket(Arena.PORT_A), arena.socket(Arena.PORT_B));
            final LoopOutcome outcome;
            final long lastPpsA;
            final long lastPpsB;
            try {
                frontEnd.awaitForwarding(STARTUP);
                frontEnd.awaitReceived(1, STARTUP, 0, 1);
                final long flowStart = System.nanoTime();
                final long flowEnd = flowStart + FLOW.toNanos();
                frontEnd.awaitSnapshotAfter(0, flowEnd, FLOW.plusSeconds(30));
                frontEnd.awaitSnapshotAfter(1, flowEnd, Duration.ofSeconds(30));
                final TestpmdStats stats = frontEnd.stats();
                lastPpsA = stats.latest(0).orElseThrow().rxPps();
                lastPpsB = stats.latest(1).orElseThrow().rxPps();
                System.out.printf("DPDK %s through the attacked back-end: A->B %.3f Mpps, B->A %.3f Mpps over %s;"
                        + " testpmd log %s%n", loop.name(), stats.rxRate(1, flowStart, Long.MAX_VALUE) / 1e6,
                    stats.rxRate(0, flowStart, Long.MAX_VALUE) / 1e6, FLOW, frontEnd.log());
                final int exit = frontEnd.stop();
                // The back-end's counts are final once both ports have stopped (testpmd disconnected).
                arena.awaitPortStopped(Arena.PORT_A);
                arena.awaitPortStopped(Arena.PORT_B);
                final long[] after = counters(arena);
                final BackEndCounters backEnd = new BackEndCounters(after[0] - before[0], after[1] - before[1],
                    after[2] - before[2], after[3] - before[3]);
                outcome = new LoopOutcome(stats.forwardStats(), exit, Optional.of(backEnd), stats.negotiatedFeatures(),
                    loop.injectedPackets());
            } finally {
                frontEnd.close();
            }
            System.out.printf("front-end %s, back-end %s, exit code %d%n", outcome.frontEnd(), outcome.backEnd().get(),
                outcome.frontEndExitCode());
            assertTrue(lastPpsA > 0 && lastPpsB > 0, "traffic stopped flowing before the end (last Rx-pps A "
                + lastPpsA + ", B " + lastPpsB + "); testpmd log " + frontEnd.log());
            assertEquals(2, outcome.negotiatedFeatures().size(), "negotiated features of both virtio ports");
            assertEquals(List.of(), outcome.problems(MIN_PACKETS), "loop consistency; testpmd log " + frontEnd.log());
            assertEquals(errorsBefore, errors(arena), "queue errors counted during the DPDK loop");
            arena.assertNoLeaks("the DPDK loop");
        }
    }

    /** Taken from A (forwarded + dropped), delivered to B, taken from B, delivered to A. */
    private static long[] counters(final Arena arena) {
        return new long[] {taken(arena, Arena.PORT_A), arena.backend().counter(Arena.PORT_B, 0, QueueCounters.PACKETS),
            taken(arena, Arena.PORT_B), arena.backend().counter(Arena.PORT_A, 0, QueueCounters.PACKETS)};
    }

    private static long errors(final Arena arena) {
        long errors = 0;
        for (final int port : new int[] {Arena.PORT_A, Arena.PORT_B}) {
            for (int q = 0; q < 2; q++) {
                errors += arena.backend().counter(port, q, QueueCounters.ERRORS);
            }
        }
        return errors;
    }

    private static long taken(final Arena arena, final int port) {
        return arena.backend().counter(port, 1, QueueCounters.PACKETS) + arena.backend().counter(port, 1, QueueCounters.DROPS);
    }
}
