package dev.vhostnet.bench.e2e;

import java.time.Duration;

/**
 * Waits for the machine to be idle before a run. The benchmark needs both cores to itself; on a shared
 * machine (builds, other test suites) starting a run into someone else's load only produces a run
 * that has to be thrown away.
 */
final class QuietMachine {
    private static final Duration SAMPLE = Duration.ofSeconds(2);

    private QuietMachine() {
    }

    /**
     * Returns true once a {@link #SAMPLE}-long interval shows less than {@code maxForeignCores} of CPU
     * used by others, false if that did not happen within {@code timeout}.
     */
    static boolean await(Duration timeout, double maxForeignCores) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        do {
            CpuNoise noise = CpuNoise.start();
            Thread.sleep(SAMPLE.toMillis());
            if (noise.foreignCores() < maxForeignCores) {
                return true;
            }
        } while (System.nanoTime() < deadline);
        return false;
    }
}
