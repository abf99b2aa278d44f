package dev.vhostnet.bench.latency;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Facts about the machine and the build for result files: load, CPU time, versions, git commit. */
public final class Machine {
    /** Online CPUs of the machine (not of this thread's affinity mask, which the benchmark narrows). */
    public static final int CPUS = countCpus();

    private Machine() {
    }

    private static int countCpus() {
        try {
            return (int) Math.max(1, Files.readAllLines(Path.of("/proc/stat")).stream().filter(l -> l.matches("cpu\\d+ .*")).count());
        } catch (final IOException e) {
            return Runtime.getRuntime().availableProcessors();
        }
    }

    /** /proc/loadavg's 1, 5 and 15 minute averages. */
    public static double[] loadAverage() {
        try {
            final String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return new double[] {Double.parseDouble(f[0]), Double.parseDouble(f[1]), Double.parseDouble(f[2])};
        } catch (final IOException | RuntimeException e) {
            return new double[] {-1, -1, -1};
        }
    }

    public static String loadAverageText() {
        final double[] l = loadAverage();
        return String.format("%.2f %.2f %.2f", l[0], l[1], l[2]);
    }

    /** Machine-wide CPU jiffies from /proc/stat: {busy, total}. */
    public static long[] cpuJiffies() {
        try {
            final String line = Files.readAllLines(Path.of("/proc/stat")).get(0);
            final String[] f = line.trim().split("\\s+");
            long total = 0;
            for (int i = 1; i < Math.min(f.length, 9); i++) { // user nice system idle iowait irq softirq steal
                total += Long.parseLong(f[i]);
            }
            final long idle = Long.parseLong(f[4]) + Long.parseLong(f[5]);
            return new long[] {total - idle, total};
        } catch (final IOException | RuntimeException e) {
            return new long[] {0, 0};
        }
    }

    /** Busy CPUs (0..nproc) between two {@link #cpuJiffies()} snapshots. */
    public static double busyCpus(final long[] before, final long[] after) {
        final long total = after[1] - before[1];
        if (total <= 0) {
            return -1;
        }
        return (double) (after[0] - before[0]) / total * CPUS;
    }

    public static Map<String, Object> describe() {
        final Map<String, Object> m = new LinkedHashMap<>();
        m.put("host", run(List.of("hostname")));
        m.put("kernel", run(List.of("uname", "-r")));
        m.put("cpus", CPUS);
        m.put("cpu_model", cpuModel());
        m.put("java", System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"));
        m.put("dpdk", run(List.of("dpkg-query", "-W", "-f=${Version}", "dpdk")));
        m.put("git_commit", run(List.of("git", "rev-parse", "HEAD")));
        m.put("git_dirty", !run(List.of("git", "status", "--porcelain", "--untracked-files=no")).isEmpty());
        return m;
    }

    private static String cpuModel() {
        try {
            return Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                .map(l -> l.substring(l.indexOf(':') + 1).trim()).findFirst().orElse("?");
        } catch (final IOException e) {
            return "?";
        }
    }

    /** stdout of a short command, trimmed; "" if it fails. */
    public static String run(final List<String> cmd) {
        try {
            final Process p = new ProcessBuilder(cmd).redirectErrorStream(false)
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            final String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) {
                p.destroyForcibly();
                return "";
            }
            return out;
        } catch (final IOException e) {
            return "";
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
            return "";
        }
    }
}
