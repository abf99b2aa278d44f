package dev.vhostnet.bench.e2e;

import dev.vhostnet.bench.e2e.RunResult.Side;
import dev.vhostnet.e2e.dpdk.Testpmd;
import dev.vhostnet.e2e.dpdk.VirtioUserLoop;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * End-to-end throughput of a back-end in peer mode against DPDK's vhost PMD, with DPDK's virtio_user
 * in io forward as the front-end on both sockets. For each configuration the two back-ends take turns
 * (ABBA order, so slow drift of the machine hits both alike); each run's rate is taken after a warm-up,
 * and the table shows the median per direction and the ratio under-test/reference.
 */
@Command(name = "dpdk-loop-benchmark", mixinStandardHelpOptions = true,
        description = "virtio_user io loop: our back-end vs DPDK vhost PMD")
public final class DpdkLoopBenchmark implements Callable<Integer> {
    private static final Map<String, VirtioUserLoop> CONFIGS = new LinkedHashMap<>();

    static {
        for (VirtioUserLoop loop : List.of(VirtioUserLoop.split64(), VirtioUserLoop.packed64(),
                VirtioUserLoop.mrg1518())) {
            CONFIGS.put(loop.name(), loop);
        }
    }

    @Option(names = "--runs", description = "runs per back-end and configuration (default ${DEFAULT-VALUE})")
    int runs = 3;

    @Option(names = "--seconds", description = "measurement window per run, after warm-up (default ${DEFAULT-VALUE})")
    int seconds = 20;

    @Option(names = "--warmup", description = "seconds of traffic before the window opens (default ${DEFAULT-VALUE})")
    int warmup = 5;

    @Option(names = "--configs", split = ",",
            description = "configurations, from: split-64, packed-64, mrg-1518 (default: all)")
    List<String> configs = new ArrayList<>(CONFIGS.keySet());

    @Option(names = "--in-order", description = "also ask for VIRTIO_F_IN_ORDER (virtio_user's default; off here)")
    boolean inOrder;

    @Option(names = "--under-test", description = "OURS or DPDK; DPDK gives reference-vs-reference, a harness"
            + " sanity check whose ratio should be about 1 (default ${DEFAULT-VALUE})")
    Contender underTest = Contender.OURS;

    @Option(names = "--reference-only", description = "measure only the reference side")
    boolean referenceOnly;

    @Option(names = "--max-foreign-cpu", description = "a run during which other processes used more CPU than"
            + " this (in cores) is noisy: repeated, and flagged if still noisy (default ${DEFAULT-VALUE})")
    double maxForeignCpu = 0.10;

    @Option(names = "--retries", description = "extra attempts for a noisy run (default ${DEFAULT-VALUE})")
    int retries = 2;

    @Option(names = "--quiet-timeout", description = "seconds to wait for an idle machine before each run;"
            + " 0: do not wait (default ${DEFAULT-VALUE})")
    int quietTimeout = 120;

    @Option(names = "--backend-args", description = "extra options for our back-end; busy polling by default,"
            + " as the DPDK reference polls too (default \"${DEFAULT-VALUE}\")")
    String backendArgs = "--poll busy";

    @Option(names = "--backend-jvm-args", description = "JVM options for our back-end, as bin/vhost-user-net"
            + " uses (default \"${DEFAULT-VALUE}\")")
    String backendJvmArgs = "-XX:+UseSerialGC -Xmx256m";

    @Option(names = "--results-dir", description = "where JSON results go (default: bench/results, or results"
            + " when run from inside bench/)")
    Path resultsDir;

    public static void main(String[] args) {
        System.exit(new CommandLine(new DpdkLoopBenchmark()).setCaseInsensitiveEnumValuesAllowed(true).execute(args));
    }

    @Override
    public Integer call() throws IOException, InterruptedException {
        // BackendUnderTest reads these when it starts the back-end JVM.
        System.setProperty("e2e.backend.args", backendArgs);
        System.setProperty("e2e.backend.jvmArgs", backendJvmArgs);
        Map<Side, Contender> contenders = new EnumMap<>(Side.class);
        contenders.put(Side.UNDER_TEST, underTest);
        contenders.put(Side.REFERENCE, Contender.DPDK);
        Path dir = resultsDir != null ? resultsDir : defaultResultsDir();
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));

        List<ConfigReport> reports = new ArrayList<>();
        for (String name : configs) {
            VirtioUserLoop loop = CONFIGS.get(name);
            if (loop == null) {
                System.err.println("unknown configuration " + name + "; known: " + CONFIGS.keySet());
                return 2;
            }
            ConfigReport report = measure(inOrder ? loop.withInOrder(true) : loop, contenders);
            reports.add(report);
            Path file = dir.resolve(report.loop().name() + "-" + stamp + ".json");
            Files.createDirectories(dir);
            Files.writeString(file, Json.write(report.toJson(header())), StandardCharsets.UTF_8);
            System.out.println("wrote " + file);
        }

        System.out.println();
        System.out.println(ConfigReport.header(contenders));
        reports.forEach(r -> r.tableRows().forEach(System.out::println));
        return 0;
    }

    private ConfigReport measure(VirtioUserLoop loop, Map<Side, Contender> contenders) throws InterruptedException {
        ConfigReport report = new ConfigReport(loop, contenders, maxForeignCpu);
        LoopMeasurement measurement = new LoopMeasurement(loop, Duration.ofSeconds(warmup), Duration.ofSeconds(seconds));
        for (int round = 0; round < runs; round++) {
            List<Side> order = round % 2 == 0 ? List.of(Side.UNDER_TEST, Side.REFERENCE)
                    : List.of(Side.REFERENCE, Side.UNDER_TEST);
            for (Side side : order) {
                if ((side == Side.UNDER_TEST && referenceOnly) || report.givenUp(side)) {
                    continue;
                }
                report.add(measureQuietly(measurement, loop, side, contenders.get(side), round));
            }
        }
        return report;
    }

    /** One run, repeated (up to --retries times) while other processes disturbed it. */
    private RunResult measureQuietly(LoopMeasurement measurement, VirtioUserLoop loop, Side side, Contender contender,
                                     int round) throws InterruptedException {
        RunResult run = null;
        for (int attempt = 0; attempt <= retries; attempt++) {
            if (quietTimeout > 0 && !QuietMachine.await(Duration.ofSeconds(quietTimeout), maxForeignCpu)) {
                System.out.printf(Locale.ROOT, "[%s] machine still busy after %d s; measuring anyway%n", loop.name(),
                        quietTimeout);
            }
            run = measurement.run(side, contender, round);
            boolean noisy = run.ok() && run.foreignCores() > maxForeignCpu;
            System.out.println(progress(loop, run) + (noisy && attempt < retries ? "  (noisy, again)" : ""));
            if (!noisy) {
                break;
            }
        }
        return run;
    }

    private static String progress(VirtioUserLoop loop, RunResult run) {
        String head = String.format(Locale.ROOT, "[%s] round %d %-14s ", loop.name(), run.round(),
                run.contender().label());
        if (!run.ok()) {
            return head + run.status() + ": " + run.note().lines().findFirst().orElse("");
        }
        return head + String.format(Locale.ROOT, "A->B %.3f Mpps  B->A %.3f Mpps  foreign CPU %.2f cores%s",
                run.aToBPps() / 1e6, run.bToAPps() / 1e6, run.foreignCores(),
                run.problems().isEmpty() ? "" : "  INCONSISTENT: " + run.problems());
    }

    private Map<String, Object> header() {
        Map<String, Object> h = new LinkedHashMap<>();
        h.put("benchmark", "dpdk-virtio-user-io-loop");
        h.put("timestamp", OffsetDateTime.now().toString());
        h.put("runs", runs);
        h.put("warmupSeconds", warmup);
        h.put("seconds", seconds);
        h.put("maxForeignCpuCores", maxForeignCpu);
        h.put("rateSource", "front-end testpmd RX counters over the window; A->B = port 1 RX, B->A = port 0 RX");
        Map<String, Object> env = new LinkedHashMap<>();
        env.put("gitCommit", git("rev-parse", "HEAD"));
        env.put("gitDirty", !git("status", "--porcelain", "--untracked-files=no").isEmpty());
        env.put("java", System.getProperty("java.vm.version"));
        env.put("kernel", System.getProperty("os.version"));
        env.put("cpus", Runtime.getRuntime().availableProcessors());
        env.put("testpmd", Testpmd.BINARY);
        env.put("backendJvmArgs", System.getProperty("e2e.backend.jvmArgs", ""));
        env.put("backendArgs", System.getProperty("e2e.backend.args", ""));
        h.put("environment", env);
        return h;
    }

    private static Path defaultResultsDir() {
        Path fromRoot = Path.of("bench");
        return Files.isDirectory(fromRoot) ? fromRoot.resolve("results") : Path.of("results");
    }

    /** Best effort: provenance only, the benchmark does not need git. */
    private static String git(String... args) {
        List<String> command = new ArrayList<>(List.of("git"));
        command.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            return p.waitFor() == 0 ? out : "";
        } catch (IOException e) {
            return "";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "";
        }
    }
}
