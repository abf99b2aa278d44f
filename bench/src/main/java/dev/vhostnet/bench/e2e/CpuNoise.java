package dev.vhostnet.bench.e2e;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * CPU time spent on this machine by anything other than the benchmark and its children (other jobs,
 * hypervisor steal) during a measurement window. Both cores are busy-polled, so any foreign work
 * directly costs packets; a run with noticeable noise is flagged rather than silently averaged in.
 */
final class CpuNoise {
    /** USER_HZ, the unit of /proc/stat; 100 on every Linux architecture this runs on. */
    private static final double TICKS_PER_SECOND = 100.0;

    private final long startBusyTicks;
    private final long startOursNanos;
    private final long startNanos;

    private CpuNoise(long busyTicks, long oursNanos, long nanos) {
        this.startBusyTicks = busyTicks;
        this.startOursNanos = oursNanos;
        this.startNanos = nanos;
    }

    static CpuNoise start() {
        return new CpuNoise(busyTicks(), oursNanos(), System.nanoTime());
    }

    /** Foreign CPU since {@link #start}, in cores (0.05 = 5% of one core on average). NaN if unreadable. */
    double foreignCores() {
        long busy = busyTicks();
        if (busy < 0 || startBusyTicks < 0) {
            return Double.NaN;
        }
        double busySeconds = (busy - startBusyTicks) / TICKS_PER_SECOND;
        double oursSeconds = (oursNanos() - startOursNanos) / 1e9;
        double wallSeconds = (System.nanoTime() - startNanos) / 1e9;
        return Math.max(0, busySeconds - oursSeconds) / wallSeconds;
    }

    /** Non-idle ticks of all CPUs from the first line of /proc/stat (steal included, iowait not). */
    private static long busyTicks() {
        try {
            String[] f = Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
            // cpu user nice system idle iowait irq softirq steal ...
            return Long.parseLong(f[1]) + Long.parseLong(f[2]) + Long.parseLong(f[3]) + Long.parseLong(f[6])
                    + Long.parseLong(f[7]) + Long.parseLong(f[8]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** CPU time of this JVM and all its live descendants (testpmd, the back-end JVM). */
    private static long oursNanos() {
        ProcessHandle self = ProcessHandle.current();
        long total = cpu(self);
        total += self.descendants().mapToLong(CpuNoise::cpu).sum();
        return total;
    }

    private static long cpu(ProcessHandle p) {
        return p.info().totalCpuDuration().map(Duration::toNanos).orElse(0L);
    }
}
