package dev.vhostnet.bench.idle;

import dev.vhostnet.bench.latency.BackendUnderTest;
import dev.vhostnet.bench.latency.Json;
import dev.vhostnet.bench.latency.LatencyBenchmark;
import dev.vhostnet.bench.latency.LatencyProbe;
import dev.vhostnet.bench.latency.Machine;
import dev.vhostnet.bench.latency.PolledPort;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import org.HdrHistogram.Histogram;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Our back-end with {@code --poll adaptive} (and, for contrast, {@code --poll busy}): two connected, idle
 * Java front-ends; the back-end process's CPU use over an idle window from /proc (utime+stime), then the
 * wake-up latency (a frame sent after an idle gap, with the kick the sleeping back-end asked for) and the
 * back-to-back latency on the same process.
 */
@Command(name = "idle-cpu", mixinStandardHelpOptions = true,
    description = "Idle CPU and wake-up latency of our back-end with --poll adaptive (vs busy).")
public final class IdleCpuBenchmark implements Callable<Integer> {
    @Option(names = "--modes", split = ",", defaultValue = "adaptive,busy", description = "Poll modes to measure, in order.")
    List<String> modes;

    @Option(names = "--idle-seconds", defaultValue = "30", description = "Idle window for the CPU measurement.")
    int idleSeconds;

    @Option(names = "--settle-seconds", defaultValue = "5", description = "Quiet time before the idle window.")
    int settleSeconds;

    @Option(names = "--warmup", defaultValue = "20000", description = "Back-to-back frames first (JIT warm-up of both sides).")
    int warmup;

    @Option(names = "--wake-samples", defaultValue = "200", description = "Frames sent after an idle gap.")
    int wakeSamples;

    @Option(names = "--gap-ms", defaultValue = "50", description = "Idle gap before each wake-up frame (+ up to 50% random).")
    int gapMillis;

    @Option(names = "--b2b-samples", defaultValue = "20000", description = "Back-to-back frames after the wake-up series.")
    int backToBackSamples;

    @Option(names = "--frame", defaultValue = "64")
    int frame;

    @Option(names = "--measure-cpu", defaultValue = "1")
    int measureCpu;

    @Option(names = "--ours-args", defaultValue = "--cpu-affinity 0", description = "Besides --poll MODE.")
    String oursArgs;

    @Option(names = "--ours-jvm-args", defaultValue = "-XX:+UseSerialGC -Xmx256m")
    String oursJvmArgs;

    @Option(names = "--results", defaultValue = "bench/results")
    Path results;

    @Option(names = "--log-dir", defaultValue = "bench/target/latency-logs")
    Path logDir;

    public static void main(final String[] args) {
        System.exit(new CommandLine(new IdleCpuBenchmark()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        final String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        final String startLoad = Machine.loadAverageText();
        System.out.printf("idle-cpu: modes %s, idle window %d s, %d wake-ups after %d ms gaps; load average %s%n",
            modes, idleSeconds, wakeSamples, gapMillis, startLoad);
        if (measureCpu >= 0) {
            FileDescriptors.pinCurrentThread(measureCpu);
        }
        final Map<String, Object> byMode = new LinkedHashMap<>();
        for (final String mode : modes) {
            byMode.put(mode, measure(mode));
        }
        final String endLoad = Machine.loadAverageText();
        System.out.println();
        System.out.printf("%-9s %12s %14s %12s | %-30s | %-30s%n", "mode", "process cpu", "dataplane cpu", "dp wakeups/s",
            "wake-up p50/p99/max us", "back-to-back p50/p99/max us");
        for (final Map.Entry<String, Object> e : byMode.entrySet()) {
            final Map<?, ?> m = (Map<?, ?>) e.getValue();
            final Map<?, ?> w = (Map<?, ?>) m.get("wakeup_latency");
            final Map<?, ?> b = (Map<?, ?>) m.get("back_to_back_latency");
            System.out.printf("%-9s %11.3f%% %13.3f%% %12.1f | %8.2f %8.2f %10.2f    | %8.2f %8.2f %10.2f%n", e.getKey(),
                100 * (Double) m.get("process_cpu_cores"), 100 * (Double) m.get("dataplane_cpu_cores"),
                (Double) m.get("dataplane_wakeups_per_s"),
                (Double) w.get("p50_us"), (Double) w.get("p99_us"), (Double) w.get("max_us"),
                (Double) b.get("p50_us"), (Double) b.get("p99_us"), (Double) b.get("max_us"));
        }
        System.out.println("load average at start " + startLoad + ", at end " + endLoad);
        final Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("benchmark", "idle-cpu");
        doc.put("timestamp", stamp);
        final Map<String, Object> settings = new LinkedHashMap<>();
        settings.put("idle_seconds", idleSeconds);
        settings.put("settle_seconds", settleSeconds);
        settings.put("warmup", warmup);
        settings.put("wake_samples", wakeSamples);
        settings.put("gap_ms", gapMillis);
        settings.put("b2b_samples", backToBackSamples);
        settings.put("frame", frame);
        settings.put("ours_args", oursArgs);
        settings.put("ours_jvm_args", oursJvmArgs);
        settings.put("clk_tck", ProcCpu.TICKS_PER_SECOND);
        doc.put("settings", settings);
        doc.put("machine", Machine.describe());
        doc.put("load_average_start", startLoad);
        doc.put("load_average_end", endLoad);
        doc.put("modes", byMode);
        Files.createDirectories(results);
        final Path out = results.resolve("idle-" + stamp + ".json");
        Files.writeString(out, Json.write(doc));
        System.out.println("wrote " + out);
        return 0;
    }

    private Map<String, Object> measure(final String mode) throws Exception {
        final Path dir = Files.createTempDirectory("vhnet-idle-");
        final List<String> args = new ArrayList<>(List.of("--poll", mode));
        args.addAll(LatencyBenchmark.split(oursArgs));
        final Map<String, Object> m = new LinkedHashMap<>();
        try (BackendUnderTest b = BackendUnderTest.ours(dir, logDir, LatencyBenchmark.split(oursJvmArgs), args);
             PolledPort a = PolledPort.open("A", b.socketA(), PolledPort.Settings.defaults());
             PolledPort bb = PolledPort.open("B", b.socketB(), PolledPort.Settings.defaults())) {
            final LatencyProbe probe = new LatencyProbe(a, bb, frame);
            if (!probe.awaitPath(20_000)) {
                throw new IllegalStateException("no frame got through; log: " + b.logFile());
            }
            for (int i = 0; i < warmup; i++) {
                probe.once(1_000_000_000L);
            }
            System.out.printf("  %s: pid %d, warmed up; settling %d s, then %d s idle%n", mode, b.pid(), settleSeconds, idleSeconds);
            Thread.sleep(settleSeconds * 1000L);

            // 1. Idle CPU: nothing sent, nothing posted; the front-ends are connected with RX buffers posted.
            final double loadBefore = Machine.loadAverage()[0];
            final ProcCpu.Snapshot s0 = ProcCpu.take(b.pid());
            Thread.sleep(idleSeconds * 1000L);
            final ProcCpu.Snapshot s1 = ProcCpu.take(b.pid());
            final double process = ProcCpu.coreShare(s1.processTicks() - s0.processTicks(), s0, s1);
            final List<Map<String, Object>> threads = new ArrayList<>();
            double dataplane = 0;
            double dpWakeups = 0;
            final double seconds = (s1.nanoTime() - s0.nanoTime()) / 1e9;
            for (final Map.Entry<String, Long> t : s1.threadTicks().entrySet()) {
                final long ticks = t.getValue() - s0.threadTicks().getOrDefault(t.getKey(), 0L);
                final long wakes = s1.threadWakeups().get(t.getKey()) - s0.threadWakeups().getOrDefault(t.getKey(), 0L);
                final double share = ProcCpu.coreShare(ticks, s0, s1);
                if (t.getKey().endsWith(" vhost-dataplane")) {
                    dataplane += share;
                    dpWakeups += wakes / seconds;
                }
                if (ticks > 0 || wakes > seconds) {
                    final Map<String, Object> tm = new LinkedHashMap<>();
                    tm.put("thread", t.getKey());
                    tm.put("cpu_cores", share);
                    tm.put("voluntary_switches_per_s", wakes / seconds);
                    threads.add(tm);
                }
            }
            threads.sort(Comparator.comparingDouble((Map<String, Object> x) -> -(Double) x.get("cpu_cores")));
            m.put("pid", b.pid());
            m.put("idle_seconds", seconds);
            m.put("process_cpu_cores", process);
            m.put("dataplane_cpu_cores", dataplane);
            m.put("dataplane_wakeups_per_s", dpWakeups);
            m.put("load1_during_idle", List.of(loadBefore, Machine.loadAverage()[0]));
            m.put("busiest_threads", threads.subList(0, Math.min(8, threads.size())));
            System.out.printf("  %s: idle process CPU %.3f%% of a core, dataplane thread %.3f%% (%.1f wake-ups/s)%n",
                mode, 100 * process, 100 * dataplane, dpWakeups);

            // 2. Wake-up latency: after each idle gap, one frame (kicking if the device asks for kicks).
            final Histogram wake = new Histogram(60_000_000_000L, 3);
            probe.resetCounters();
            final List<Double> first = new ArrayList<>();
            for (int i = 0; i < wakeSamples; i++) {
                Thread.sleep(gapMillis + ThreadLocalRandom.current().nextInt(Math.max(1, gapMillis / 2)));
                final long ns = probe.once(1_000_000_000L);
                if (ns >= 0) {
                    wake.recordValue(ns);
                    if (first.size() < 20) {
                        first.add(ns / 1e3);
                    }
                }
            }
            m.put("wakeup_latency", histogramJson(wake, probe));
            ((Map<String, Object>) m.get("wakeup_latency")).put("first_us", first);

            // 3. Back-to-back: the back-end never gets idle long enough to sleep.
            final Histogram b2b = new Histogram(60_000_000_000L, 3);
            probe.resetCounters();
            for (int i = 0; i < backToBackSamples; i++) {
                final long ns = probe.once(1_000_000_000L);
                if (ns >= 0) {
                    b2b.recordValue(ns);
                }
            }
            m.put("back_to_back_latency", histogramJson(b2b, probe));
            m.put("log", b.logFile().toString());
            System.out.printf("  %s: wake-up p50 %.2f us (kicks %d/%d), back-to-back p50 %.2f us%n", mode,
                wake.getValueAtPercentile(50) / 1e3, (Long) ((Map<?, ?>) m.get("wakeup_latency")).get("kicks"),
                wakeSamples, b2b.getValueAtPercentile(50) / 1e3);
        } finally {
            try (var s = Files.list(dir)) {
                s.forEach(p -> p.toFile().delete());
            }
            Files.deleteIfExists(dir);
        }
        return m;
    }

    private static Map<String, Object> histogramJson(final Histogram h, final LatencyProbe probe) {
        final Map<String, Object> m = new LinkedHashMap<>();
        m.put("samples", h.getTotalCount());
        m.put("min_us", h.getMinValue() / 1e3);
        m.put("p50_us", h.getValueAtPercentile(50) / 1e3);
        m.put("p90_us", h.getValueAtPercentile(90) / 1e3);
        m.put("p99_us", h.getValueAtPercentile(99) / 1e3);
        m.put("max_us", h.getMaxValue() / 1e3);
        m.put("mean_us", h.getMean() / 1e3);
        m.put("kicks", probe.kicked());
        m.put("lost", probe.lost());
        m.put("histogram_base64", LatencyBenchmark.encode(h));
        return m;
    }
}
