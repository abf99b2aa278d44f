package dev.vhostnet.bench.latency;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import org.HdrHistogram.Histogram;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * Low-load latency, ours vs DPDK's vhost PMD, with the same polling Java front-end: one 64 B frame in flight
 * at a time from port A's TX to port B's RX, timed from publishing on A to seeing B's used ring move.
 * Back-ends alternate (ABBA), each run a fresh back-end process; the table shows per back-end the median
 * over runs of each percentile.
 */
@Command(name = "latency", mixinStandardHelpOptions = true,
    description = "A->B one-frame-in-flight latency through our back-end and DPDK's vhost PMD.")
public final class LatencyBenchmark implements Callable<Integer> {
    private static final double[] PERCENTILES = {50, 90, 99, 99.9, 99.99};
    private static final int MAX_OUTLIERS = 200;
    /** p50 of every CHUNK consecutive samples, to see whether a run's level changes while it runs. */
    private static final int CHUNK = 10_000;

    @Option(names = "--backends", split = ",", defaultValue = "ours,dpdk", description = "ours, dpdk (default both).")
    List<String> backends;

    @Option(names = "--runs", defaultValue = "3", description = "Runs per back-end (default ${DEFAULT-VALUE}).")
    int runs;

    @Option(names = "--samples", defaultValue = "100000", description = "Measured frames per run.")
    int samples;

    @Option(names = "--warmup", defaultValue = "10000", description = "Frames before measuring.")
    int warmup;

    @Option(names = "--warmup-seconds", defaultValue = "2", description = "And at least this long.")
    double warmupSeconds;

    @Option(names = "--frame", defaultValue = "64", description = "Frame length without the virtio-net header.")
    int frame;

    @Option(names = "--queue-size", defaultValue = "256")
    int queueSize;

    @Option(names = "--mergeable", description = "Also negotiate VIRTIO_NET_F_MRG_RXBUF.")
    boolean mergeable;

    @Option(names = "--measure-cpu", defaultValue = "1", description = "CPU the measuring thread is pinned to (-1: none).")
    int measureCpu;

    @Option(names = "--ours-args", defaultValue = "--poll busy --cpu-affinity 0",
        description = "Extra arguments for dev.vhostnet.backend.Main (default: ${DEFAULT-VALUE}).")
    String oursArgs;

    @Option(names = "--ours-jvm-args", defaultValue = "-XX:+UseSerialGC -Xmx256m")
    String oursJvmArgs;

    @Option(names = "--testpmd", defaultValue = "dpdk-testpmd")
    String testpmd;

    @Option(names = "--timeout-ms", defaultValue = "1000", description = "A frame not seen after this is lost.")
    long timeoutMillis;

    @Option(names = "--outlier-us", defaultValue = "100",
        description = "Samples above this (and lost ones, as -0.001) are listed with their time in the run (first 200).")
    double outlierMicros;

    @Option(names = "--results", defaultValue = "bench/results", description = "Where latency-<timestamp>.json goes.")
    Path results;

    @Option(names = "--log-dir", defaultValue = "bench/target/latency-logs")
    Path logDir;

    public static void main(final String[] args) {
        System.exit(new CommandLine(new LatencyBenchmark()).execute(args));
    }

    /** One run's outcome. */
    record Run(String backend, int index, Histogram histogram, long lost, long stale, long kicks, long badLength,
               long txTimeouts, double loadBefore, double loadAfter, double machineBusyCpus, long features,
               long protocolFeatures, String log, double seconds, int outliers, List<List<Double>> outlierTrace,
               long startEpochMillis, List<Double> chunkP50) {
        double us(final double percentile) {
            return histogram.getValueAtPercentile(percentile) / 1000.0;
        }

        Map<String, Object> toJson() {
            final Map<String, Object> m = new LinkedHashMap<>();
            m.put("backend", backend);
            m.put("run", index);
            m.put("samples", histogram.getTotalCount());
            m.put("min_us", histogram.getMinValue() / 1000.0);
            m.put("mean_us", histogram.getMean() / 1000.0);
            for (final double p : PERCENTILES) {
                m.put("p" + label(p) + "_us", us(p));
            }
            m.put("max_us", histogram.getMaxValue() / 1000.0);
            m.put("lost", lost);
            m.put("stale", stale);
            m.put("kicks", kicks);
            m.put("bad_length", badLength);
            m.put("tx_timeouts", txTimeouts);
            m.put("load1_before", loadBefore);
            m.put("load1_after", loadAfter);
            m.put("machine_busy_cpus", machineBusyCpus);
            m.put("features", "0x" + Long.toHexString(features));
            m.put("protocol_features", "0x" + Long.toHexString(protocolFeatures));
            m.put("log", log);
            m.put("start_epoch_ms", startEpochMillis);
            m.put("seconds", seconds);
            m.put("outliers", outliers);
            m.put("chunk_p50_us", chunkP50);
            m.put("outlier_trace_ms_us", outlierTrace);
            m.put("histogram_base64", encode(histogram));
            return m;
        }
    }

    static String label(final double p) {
        final String s = p == Math.rint(p) ? String.valueOf((long) p) : String.valueOf(p);
        return s.replace('.', '_');
    }

    public static String encode(final Histogram h) {
        final ByteBuffer buf = ByteBuffer.allocate(h.getNeededByteBufferCapacity());
        final int n = h.encodeIntoCompressedByteBuffer(buf);
        return Base64.getEncoder().encodeToString(Arrays.copyOf(buf.array(), n));
    }

    @Override
    public Integer call() throws Exception {
        final String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        final String startLoad = Machine.loadAverageText();
        System.out.printf("latency: %s, %d runs each, %d samples (+%d warm-up), %d B frames; load average %s%n",
            backends, runs, samples, warmup, frame, startLoad);
        if (measureCpu >= 0) {
            FileDescriptors.pinCurrentThread(measureCpu);
        }
        final List<Run> all = new ArrayList<>();
        for (int r = 0; r < runs; r++) {
            final List<String> order = new ArrayList<>(backends);
            if (r % 2 == 1) {
                java.util.Collections.reverse(order); // ABBA: neither back-end always goes first
            }
            for (final String b : order) {
                final Run run = runOnce(b, r);
                all.add(run);
                System.out.printf("  run %d %-4s p50 %7.2f  p99 %7.2f  p99.9 %8.2f  max %9.2f us  >%.0fus %d  lost %d  kicks %d  load %.2f->%.2f  busy cpus %.2f%n",
                    r, b, run.us(50), run.us(99), run.us(99.9), run.histogram().getMaxValue() / 1000.0, outlierMicros,
                    run.outliers(), run.lost(), run.kicks(), run.loadBefore(), run.loadAfter(), run.machineBusyCpus());
            }
        }
        final Map<String, Object> summary = new LinkedHashMap<>();
        System.out.println();
        System.out.printf("%-6s %5s %9s %9s %9s %9s %10s %8s %14s%n", "", "runs", "p50 us", "p99 us", "p99.9 us", "max us", "mean us",
            "lost", "best-10k p50");
        for (final String b : backends) {
            final List<Run> mine = all.stream().filter(x -> x.backend().equals(b)).toList();
            final Map<String, Object> s = new LinkedHashMap<>();
            s.put("runs", mine.size());
            s.put("median_p50_us", median(mine.stream().mapToDouble(x -> x.us(50)).toArray()));
            s.put("median_p90_us", median(mine.stream().mapToDouble(x -> x.us(90)).toArray()));
            s.put("median_p99_us", median(mine.stream().mapToDouble(x -> x.us(99)).toArray()));
            s.put("median_p99_9_us", median(mine.stream().mapToDouble(x -> x.us(99.9)).toArray()));
            s.put("median_max_us", median(mine.stream().mapToDouble(x -> x.histogram().getMaxValue() / 1000.0).toArray()));
            s.put("median_mean_us", median(mine.stream().mapToDouble(x -> x.histogram().getMean() / 1000.0).toArray()));
            s.put("lost_total", mine.stream().mapToLong(Run::lost).sum());
            // The machine's level can change mid-run (seen as a step in chunk_p50_us, for both back-ends):
            // the lowest p50 of any 10k-sample chunk is the figure least affected by it.
            s.put("best_chunk_p50_us", mine.stream().flatMap(x -> x.chunkP50().stream()).mapToDouble(Double::doubleValue)
                .min().orElse(Double.NaN));
            summary.put(b, s);
            System.out.printf("%-6s %5d %9.2f %9.2f %9.2f %9.2f %10.2f %8d %14.3f%n", b, mine.size(), s.get("median_p50_us"),
                s.get("median_p99_us"), s.get("median_p99_9_us"), s.get("median_max_us"), s.get("median_mean_us"),
                (Long) s.get("lost_total"), s.get("best_chunk_p50_us"));
        }
        if (backends.contains("ours") && backends.contains("dpdk")) {
            final Map<?, ?> o = (Map<?, ?>) summary.get("ours");
            final Map<?, ?> d = (Map<?, ?>) summary.get("dpdk");
            final Map<String, Object> ratio = new LinkedHashMap<>();
            for (final String k : List.of("median_p50_us", "median_p99_us", "median_p99_9_us", "median_max_us", "best_chunk_p50_us")) {
                ratio.put(k.replace("median_", "").replace("best_chunk_p50_us", "best_chunk_p50").replace("_us", ""), (Double) o.get(k) / (Double) d.get(k));
            }
            summary.put("ours_over_dpdk", ratio);
            // ABBA: ours run r and dpdk run r ran back to back; the median of their p50 ratios is less
            // sensitive to slow drifts of the machine than the ratio of medians.
            final List<Double> pairs = new ArrayList<>();
            for (int r = 0; r < runs; r++) {
                final int rr = r;
                final Run ro = all.stream().filter(x -> x.backend().equals("ours") && x.index() == rr).findFirst().orElse(null);
                final Run rd = all.stream().filter(x -> x.backend().equals("dpdk") && x.index() == rr).findFirst().orElse(null);
                if (ro != null && rd != null) {
                    pairs.add(ro.us(50) / rd.us(50));
                }
            }
            summary.put("paired_p50_ratios", pairs);
            summary.put("median_paired_p50_ratio", median(pairs.stream().mapToDouble(Double::doubleValue).toArray()));
            System.out.printf("ours/dpdk  p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  best-10k p50 %.2f; paired p50 ratios %s (median %.2f)%n",
                ratio.get("p50"), ratio.get("p99"), ratio.get("p99_9"), ratio.get("max"), ratio.get("best_chunk_p50"),
                pairs.stream().map(x -> String.format("%.2f", x)).toList(), summary.get("median_paired_p50_ratio"));
        }
        final String endLoad = Machine.loadAverageText();
        System.out.println("load average at start " + startLoad + ", at end " + endLoad);

        final Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("benchmark", "latency");
        doc.put("timestamp", stamp);
        doc.put("description", "one " + frame + " B frame in flight, A TX -> B RX, ns from avail->idx store on A to used->idx change seen on B");
        final Map<String, Object> settings = new LinkedHashMap<>();
        settings.put("backends", backends);
        settings.put("runs", runs);
        settings.put("samples", samples);
        settings.put("warmup", warmup);
        settings.put("warmup_seconds", warmupSeconds);
        settings.put("frame", frame);
        settings.put("queue_size", queueSize);
        settings.put("mergeable", mergeable);
        settings.put("measure_cpu", measureCpu);
        settings.put("ours_args", oursArgs);
        settings.put("ours_jvm_args", oursJvmArgs);
        settings.put("testpmd", testpmd);
        settings.put("outlier_us", outlierMicros);
        doc.put("settings", settings);
        doc.put("machine", Machine.describe());
        doc.put("load_average_start", startLoad);
        doc.put("load_average_end", endLoad);
        doc.put("summary", summary);
        doc.put("runs", all.stream().map(Run::toJson).toList());
        Files.createDirectories(results);
        final Path out = results.resolve("latency-" + stamp + ".json");
        Files.writeString(out, Json.write(doc));
        System.out.println("wrote " + out);
        return all.stream().anyMatch(x -> x.histogram().getTotalCount() == 0) ? 1 : 0;
    }

    private Run runOnce(final String backend, final int index) throws Exception {
        final Path dir = Files.createTempDirectory("vhnet-lat-");
        final double loadBefore = Machine.loadAverage()[0];
        try (BackendUnderTest b = switch (backend) {
            case "ours" -> BackendUnderTest.ours(dir, logDir, split(oursJvmArgs), split(oursArgs));
            case "dpdk" -> BackendUnderTest.dpdk(dir, logDir, testpmd);
            default -> throw new IllegalArgumentException("unknown back-end " + backend);
        };
             PolledPort a = PolledPort.open("A", b.socketA(), settings());
             PolledPort bb = PolledPort.open("B", b.socketB(), settings())) {
            final LatencyProbe probe = new LatencyProbe(a, bb, frame);
            if (!probe.awaitPath(20_000)) {
                throw new IllegalStateException(backend + ": no frame got from A to B within 20 s; log: " + b.logFile());
            }
            final long timeout = timeoutMillis * 1_000_000L;
            final long warmEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
            for (int i = 0; i < warmup || System.nanoTime() < warmEnd; i++) {
                probe.once(timeout);
            }
            probe.resetCounters();
            final Histogram h = new Histogram(60_000_000_000L, 3);
            final long[] cpuBefore = Machine.cpuJiffies();
            final long threshold = (long) (outlierMicros * 1000);
            final long[] outAt = new long[MAX_OUTLIERS];
            final long[] outNs = new long[MAX_OUTLIERS];
            int outliers = 0;
            final Histogram chunk = new Histogram(60_000_000_000L, 2);
            final List<Double> chunkP50 = new ArrayList<>();
            final long startMillis = System.currentTimeMillis();
            final long start = System.nanoTime();
            for (int i = 0; i < samples; i++) {
                final long ns = probe.once(timeout);
                if (ns >= 0) {
                    h.recordValue(Math.min(ns, h.getHighestTrackableValue()));
                    chunk.recordValue(Math.min(ns, chunk.getHighestTrackableValue()));
                }
                if ((i + 1) % CHUNK == 0) {
                    chunkP50.add(chunk.getValueAtPercentile(50) / 1000.0);
                    chunk.reset();
                }
                if (ns < 0 || ns > threshold) {
                    if (outliers < MAX_OUTLIERS) {
                        outAt[outliers] = System.nanoTime() - start;
                        outNs[outliers] = ns;
                    }
                    outliers++;
                }
            }
            final double seconds = (System.nanoTime() - start) / 1e9;
            final List<List<Double>> trace = new ArrayList<>();
            for (int i = 0; i < Math.min(outliers, MAX_OUTLIERS); i++) {
                trace.add(List.of(outAt[i] / 1e6, outNs[i] / 1e3));
            }
            final double busy = Machine.busyCpus(cpuBefore, Machine.cpuJiffies());
            if (!b.isAlive()) {
                throw new IllegalStateException(backend + " back-end died during the run; log: " + b.logFile());
            }
            return new Run(backend, index, h, probe.lost(), probe.stale(), probe.kicked(), probe.badLength(),
                probe.txTimeouts(), loadBefore, Machine.loadAverage()[0], busy, a.features(), a.protocolFeatures(),
                b.logFile().toString(), seconds, outliers, trace, startMillis, chunkP50);
        } finally {
            try (var s = Files.list(dir)) {
                s.forEach(p -> p.toFile().delete());
            }
            Files.deleteIfExists(dir);
        }
    }

    private PolledPort.Settings settings() {
        return new PolledPort.Settings(mergeable, queueSize, frame);
    }

    public static List<String> split(final String s) {
        return s == null || s.isBlank() ? List.of() : List.of(s.trim().split("\\s+"));
    }

    public static double median(final double[] v) {
        if (v.length == 0) {
            return Double.NaN;
        }
        final double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
