package dev.vhostnet.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * TCP throughput between two guests through our back-end, for a report: split and packed rings,
 * each with offloads on (TSO passed through), off (plain MTU frames both ways) and off on the
 * receiver only (the back-end segments the sender's TSO frames). The sender times
 * {@code nc < file} of {@link E2eSettings#throughputMiB()} MiB of zeros inside the guest until
 * the receiver confirms the byte count, {@link E2eSettings#throughputRuns()} times per boot. The table goes to the test output and to
 * target/e2e-logs/throughput.txt.
 *
 * <p>Figures, not assertions: under TCG on a shared 2-core host they measure the emulator as much
 * as the back-end. Only the byte count is checked (and a 1 MiB md5 transfer before the timed one).
 */
@Tag("report")
class ThroughputReportE2ETest {
    private static final List<String> ROWS = Collections.synchronizedList(new ArrayList<>());
    private static final String HEADER = String.format("%-7s %-11s %4s %-20s %7s %7s %7s %9s %9s %8s %5s %5s",
            "ring", "offloads", "MiB", "runs_s(guest)", "med_MBs", "best_MBs", "med_Mbps", "rx_frames", "tx_frames",
            "rx_avg_B", "drops", "load");

    enum Offloads {
        ON("on", List.of(), List.of()),
        OFF("off", NicProps.ALL_OFFLOADS_OFF, NicProps.ALL_OFFLOADS_OFF),
        RECEIVER_OFF("sw-segment", NicProps.RECEIVE_OFFLOADS_OFF, List.of());

        final String label;
        final List<String> receiverProps;
        final List<String> senderProps;

        Offloads(String label, List<String> receiverProps, List<String> senderProps) {
            this.label = label;
            this.receiverProps = receiverProps;
            this.senderProps = senderProps;
        }
    }

    record Row(boolean packed, Offloads offloads) {
        String name() {
            return (packed ? "packed" : "split") + "-" + offloads.label;
        }

        @Override
        public String toString() {
            return name();
        }
    }

    static Stream<Row> rows() {
        List<Row> rows = new ArrayList<>();
        for (boolean packed : new boolean[] {false, true}) {
            for (Offloads o : Offloads.values()) {
                rows.add(new Row(packed, o));
            }
        }
        return rows.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("rows")
    void measure(Row row) throws Exception {
        int mib = E2eSettings.throughputMiB();
        int runs = E2eSettings.throughputRuns();
        String load = loadAverage();
        TwoGuestScenario scenario = TwoGuestScenario.defaults()
                .withNicProps(List.of(NicProps.packed(row.packed())))
                .withReceiverNicProps(row.offloads().receiverProps.toArray(String[]::new))
                .withSenderNicProps(row.offloads().senderProps.toArray(String[]::new))
                .withPayloadMiB(1)
                .withThroughput(mib, runs);
        OurBackendRun run = OurBackendRun.run("throughput-" + row.name(), scenario, List.of());
        E2eAssertions.assertTransferIntact(run.result());
        List<TwoGuestScenario.Throughput> results = run.result().throughput();
        assertEquals(runs, results.size(), "throughput runs" + run.diagnostics());
        for (TwoGuestScenario.Throughput t : results) {
            assertTrue(t.intact(), "throughput transfer: receiver counted " + t.records() + " 64 KiB blocks, expected "
                    + t.expectedBytes() / 65536 + "+0" + run.diagnostics());
        }
        assertTrue(run.result().receiverReport().has(VirtioFeatureBits.RING_PACKED) == row.packed(),
                "ring layout not negotiated as asked" + run.diagnostics());
        List<TwoGuestScenario.Throughput> bySpeed = new ArrayList<>(results);
        bySpeed.sort(Comparator.comparingLong(TwoGuestScenario.Throughput::guestCentis));
        TwoGuestScenario.Throughput best = bySpeed.get(0);
        TwoGuestScenario.Throughput median = bySpeed.get(bySpeed.size() / 2);
        String seconds = results.stream().map(t -> String.format("%.1f", t.guestSeconds())).collect(Collectors.joining("/"));

        long rxFrames = run.receiverRxPackets();
        long drops = run.stats().queue(run.senderSocket(), 1).drops() + run.stats().queue(run.receiverSocket(), 1).drops();
        String line = String.format("%-7s %-11s %4d %-20s %7.1f %7.1f %7.1f %9d %9d %8d %5d %5s",
                row.packed() ? "packed" : "split", row.offloads().label, mib, seconds, median.mibPerSecond(),
                best.mibPerSecond(), median.mbitPerSecond(), rxFrames, run.senderTxPackets(),
                rxFrames == 0 ? 0 : run.receiverRxBytes() / rxFrames, drops, load);
        ROWS.add(line);
        System.out.println("e2e: throughput " + HEADER + "\ne2e: throughput " + line);
    }

    @AfterAll
    static void writeReport() throws IOException {
        if (ROWS.isEmpty()) {
            return;
        }
        StringBuilder sb = new StringBuilder();
        sb.append("# TCP throughput, guest to guest through vhost-user-net in peer mode (QEMU TCG, ")
                .append(Runtime.getRuntime().availableProcessors()).append(" host CPUs, shared)\n")
                .append("# ").append(LocalDateTime.now().format(DateTimeFormatter.ISO_LOCAL_DATE_TIME))
                .append("; per row one boot, ").append(E2eSettings.throughputRuns())
                .append(" timed nc of a file of zeros, measured in the sender guest (seconds per run; MiB/s median and best)\n")
                .append("# rx_frames/tx_frames: back-end counters, receiver RX / sender TX, whole run (incl. a 1 MiB md5 transfer);")
                .append(" rx_avg_B: bytes per RX frame; drops: frames the back-end dropped; load: host 1-min load before the row\n")
                .append(HEADER).append('\n');
        ROWS.forEach(r -> sb.append(r).append('\n'));
        Path file = E2eSettings.targetDir().resolve("e2e-logs").resolve("throughput.txt");
        Files.createDirectories(file.getParent());
        Files.writeString(file, sb.toString(), StandardCharsets.UTF_8);
        System.out.print("e2e: throughput report (" + file + "):\n" + sb);
    }

    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
        } catch (IOException e) {
            return "?";
        }
    }
}
