package dev.vhostnet.bench.e2e;

import dev.vhostnet.e2e.dpdk.LoopOutcome;
import dev.vhostnet.e2e.dpdk.LoopSession;
import dev.vhostnet.e2e.dpdk.Testpmd;
import dev.vhostnet.e2e.dpdk.TestpmdStats;
import dev.vhostnet.e2e.dpdk.VirtioUserLoop;
import java.time.Duration;
import java.util.List;

/**
 * Measures one run: start the contender and the virtio_user loop, let it warm up (JIT, page faults on
 * first touch of guest memory, caches), then take the receive rate on both front-end ports over the
 * measurement window from testpmd's cumulative counters.
 */
final class LoopMeasurement {
    static final Duration STARTUP = Duration.ofSeconds(60);
    /** A run whose loop carried fewer packets than this per direction is not a measurement. */
    private static final long MIN_PACKETS = 10_000;

    private final VirtioUserLoop loop;
    private final Duration warmup;
    private final Duration window;

    LoopMeasurement(VirtioUserLoop loop, Duration warmup, Duration window) {
        this.loop = loop;
        this.warmup = warmup;
        this.window = window;
    }

    RunResult run(RunResult.Side side, Contender contender, int round) {
        try (LoopSession session = LoopSession.start(contender.starter(loop.queues(), STARTUP), loop, STARTUP)) {
            Testpmd frontEnd = session.frontEnd();
            TestpmdStats stats = frontEnd.stats();
            List<Long> features = stats.negotiatedFeatures();
            String missing = loop.missingFeatures(features);
            if (!missing.isEmpty()) {
                // virtio_user fell back to what the back-end offers; measuring would mislabel the result.
                return RunResult.skipped(side, contender, round, features, contender.label() + " did not negotiate "
                        + missing);
            }
            session.awaitTraffic(1, STARTUP);
            long from = System.nanoTime() + warmup.toNanos();
            long to = from + window.toNanos();
            frontEnd.awaitSnapshotAfter(0, from, warmup.plusSeconds(30));
            CpuNoise noise = CpuNoise.start();
            frontEnd.awaitSnapshotAfter(0, to, window.plusSeconds(30));
            frontEnd.awaitSnapshotAfter(1, to, Duration.ofSeconds(30));
            double foreign = noise.foreignCores();
            double aToB = stats.rxRate(1, from, Long.MAX_VALUE);
            double bToA = stats.rxRate(0, from, Long.MAX_VALUE);

            LoopOutcome outcome = session.finish();
            List<String> problems = outcome.problems(MIN_PACKETS);
            String note = outcome.backEnd().isPresent() ? "" : contender.label() + " reported no counters";
            return new RunResult(side, contender, round, RunResult.Status.OK, aToB, bToA, features, foreign, problems,
                    note);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return RunResult.failed(side, contender, round, "interrupted");
        } catch (Exception e) {
            return RunResult.failed(side, contender, round, firstLines(String.valueOf(e.getMessage()), 12));
        }
    }

    private static String firstLines(String text, int n) {
        return String.join("\n", text.lines().limit(n).toList());
    }
}
