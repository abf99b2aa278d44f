package dev.vhostnet.e2e;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The two-guest scenario on a {@link PeerModeBackend}: a receiver guest on socket A and a
 * sender guest on socket B ping each other, then the sender pushes a random payload over TCP
 * (once per flow, flows in parallel) and both report its md5; optionally the sender then times a
 * transfer of zeros. Guests are stopped when {@link #run} returns; the back-end is the caller's
 * to close.
 *
 * <p>Instances are immutable; the {@code with...} methods return modified copies.
 */
public final class TwoGuestScenario {
    private static final int TAIL_LINES = 40;
    /** Powering off is courtesy, not part of the check: wait briefly, then kill. */
    private static final Duration POWER_OFF_WAIT = Duration.ofSeconds(30);

    private final int payloadMiB;
    private final Duration timeout;
    private final List<String> receiverNicProps;
    private final List<String> senderNicProps;
    private final int queuePairs;
    private final int flows;
    private final int throughputMiB;
    private final int throughputRuns;

    private TwoGuestScenario(int payloadMiB, Duration timeout, List<String> receiverNicProps,
                             List<String> senderNicProps, int queuePairs, int flows, int throughputMiB,
                             int throughputRuns) {
        this.payloadMiB = payloadMiB;
        this.timeout = timeout;
        this.receiverNicProps = List.copyOf(receiverNicProps);
        this.senderNicProps = List.copyOf(senderNicProps);
        this.queuePairs = queuePairs;
        this.flows = flows;
        this.throughputMiB = throughputMiB;
        this.throughputRuns = throughputRuns;
    }

    /** Both NICs get {@code extraNicProps}; one queue pair, one flow, no throughput run. */
    public TwoGuestScenario(int payloadMiB, Duration timeout, List<String> extraNicProps) {
        this(payloadMiB, timeout, extraNicProps, extraNicProps, 1, 1, 0, 1);
    }

    /** Payload size and timeout from {@link E2eSettings}, NICs with QEMU's default features. */
    public static TwoGuestScenario defaults() {
        return new TwoGuestScenario(E2eSettings.payloadMiB(), E2eSettings.markerTimeout(), List.of());
    }

    /** The same virtio-net-pci properties on both NICs (replacing any set before). */
    public TwoGuestScenario withNicProps(List<String> props) {
        return new TwoGuestScenario(payloadMiB, timeout, props, props, queuePairs, flows, throughputMiB, throughputRuns);
    }

    /** Adds virtio-net-pci properties to the receiver's NIC only. */
    public TwoGuestScenario withReceiverNicProps(String... props) {
        return new TwoGuestScenario(payloadMiB, timeout, concat(receiverNicProps, props), senderNicProps, queuePairs,
                flows, throughputMiB, throughputRuns);
    }

    /** Adds virtio-net-pci properties to the sender's NIC only. */
    public TwoGuestScenario withSenderNicProps(String... props) {
        return new TwoGuestScenario(payloadMiB, timeout, receiverNicProps, concat(senderNicProps, props), queuePairs,
                flows, throughputMiB, throughputRuns);
    }

    /** Queue pairs per NIC (the back-end must be started with at least as many, --queues). */
    public TwoGuestScenario withQueuePairs(int pairs) {
        return new TwoGuestScenario(payloadMiB, timeout, receiverNicProps, senderNicProps, pairs, flows, throughputMiB, throughputRuns);
    }

    /** Parallel TCP transfers of the payload, flow i pinned to vCPU i mod cpus in both guests. */
    public TwoGuestScenario withFlows(int n) {
        return new TwoGuestScenario(payloadMiB, timeout, receiverNicProps, senderNicProps, queuePairs, n, throughputMiB, throughputRuns);
    }

    public TwoGuestScenario withPayloadMiB(int mib) {
        return new TwoGuestScenario(mib, timeout, receiverNicProps, senderNicProps, queuePairs, flows, throughputMiB, throughputRuns);
    }

    /** After the checked transfers, time {@code mib} MiB of zeros through one more connection, {@code runs} times. */
    public TwoGuestScenario withThroughput(int mib, int runs) {
        return new TwoGuestScenario(payloadMiB, timeout, receiverNicProps, senderNicProps, queuePairs, flows, mib, runs);
    }


    public int payloadMiB() {
        return payloadMiB;
    }

    public int queuePairs() {
        return queuePairs;
    }

    public int flows() {
        return flows;
    }

    private static List<String> concat(List<String> a, String... b) {
        List<String> all = new ArrayList<>(a);
        all.addAll(Arrays.asList(b));
        return all;
    }

    /** One checked transfer: what the receiver stored and what it acknowledged to the sender. */
    public record Flow(int index, long receivedBytes, String receivedMd5, String ackMd5, Duration received) {
    }

    /**
     * What a guest reported about its NIC right after bringing it up.
     *
     * @param features negotiated feature bits, '0'/'1' per bit from bit 0 ({@link VirtioFeatureBits})
     * @param queues   the entries of /sys/class/net/eth0/queues (rx-0, tx-0, ...)
     * @param cpus     online vCPUs
     * @param ifStats  the driver's interface counters at the end ("rx_packets:N,...")
     */
    public record GuestReport(String features, List<String> queues, int cpus, String ifStats) {
        public boolean has(VirtioFeatureBits bit) {
            return bit.in(features);
        }

        public long rxQueues() {
            return queues.stream().filter(q -> q.startsWith("rx-")).count();
        }

        public long txQueues() {
            return queues.stream().filter(q -> q.startsWith("tx-")).count();
        }

        /** A counter from {@link #ifStats}, e.g. "rx_packets". */
        public long ifStat(String name) {
            for (String kv : ifStats.split(",")) {
                String[] p = kv.split(":");
                if (p[0].equals(name)) {
                    return Long.parseLong(p[1]);
                }
            }
            throw new IllegalArgumentException("no " + name + " in " + ifStats);
        }
    }

    /**
     * The timed transfer of zeros. {@code guestCentis} is measured by the sender around
     * nc from a tmpfs file (until the receiver's reply), {@code hostTime} between the markers around it.
     *
     * @param records the receiver's "N+M records in" of 64 KiB blocks (M=0: no partial block)
     */
    public record Throughput(long expectedBytes, String records, long guestCentis, Duration hostTime) {
        /** Whether exactly {@link #expectedBytes} arrived: only whole blocks, as many as were sent. */
        public boolean intact() {
            String[] nm = records.split("\\+");
            return nm.length == 2 && Long.parseLong(nm[1]) == 0 && Long.parseLong(nm[0]) * 65536 == expectedBytes;
        }

        public double guestSeconds() {
            return guestCentis / 100.0;
        }

        public double mibPerSecond() {
            return expectedBytes / 1048576.0 / guestSeconds();
        }

        public double mbitPerSecond() {
            return expectedBytes * 8 / 1e6 / guestSeconds();
        }
    }

    /**
     * What the guests reported; {@code sinceBoot} durations count from each QEMU's start;
     * {@code throughput} has one entry per timed run (none without a throughput run).
     * {@link #diagnostics()} is meant for assertion messages.
     */
    public record Result(String sentMd5, long sentBytes, List<Flow> flows, GuestReport receiverReport,
                         GuestReport senderReport, List<Throughput> throughput,
                         Duration receiverPingOk, Duration senderPingOk,
                         boolean bothPoweredOff, Path receiverLog, Path senderLog, Path backendLog) {
        public String diagnostics() {
            return TwoGuestScenario.diagnostics(receiverLog, senderLog, backendLog);
        }

        /** When the last flow's payload had arrived, counted from the receiver's boot. */
        public Duration received() {
            return flows.stream().map(Flow::received).max(Duration::compareTo).orElseThrow();
        }
    }

    /**
     * Boots both guests against {@code backend} and waits for the scenario's markers. Any wait
     * that fails (timeout, E2E:FAIL, guest death) throws an AssertionError whose message carries
     * the tails of both consoles and of the back-end log.
     */
    public Result run(PeerModeBackend backend, Path logDir) throws IOException, InterruptedException {
        GuestImage image = GuestImage.get();
        GuestConfig receiverConfig = new GuestConfig("receiver", backend.socketA(), "52:54:00:e2:e0:01",
                GuestRole.RECEIVER, "10.0.0.1", "10.0.0.2", payloadMiB, receiverNicProps, queuePairs, flows,
                throughputMiB, throughputRuns);
        GuestConfig senderConfig = new GuestConfig("sender", backend.socketB(), "52:54:00:e2:e0:02",
                GuestRole.SENDER, "10.0.0.2", "10.0.0.1", payloadMiB, senderNicProps, queuePairs, flows,
                throughputMiB, throughputRuns);

        try (QemuGuest receiver = QemuGuest.boot(image, receiverConfig, logDir);
             QemuGuest sender = QemuGuest.boot(image, senderConfig, logDir)) {
            try {
                String sentMd5 = sender.awaitValue("SENT_MD5", timeout);
                long sentBytes = Long.parseLong(sender.awaitValue("SENT_BYTES", timeout));
                QemuGuest.Marker receiverPing = receiver.await("PING_OK", timeout);
                QemuGuest.Marker senderPing = sender.await("PING_OK", timeout);
                List<Flow> flowResults = new ArrayList<>();
                for (int f = 0; f < flows; f++) {
                    QemuGuest.Marker receivedMd5 = receiver.await("RECV_MD5_" + f, timeout);
                    long receivedBytes = Long.parseLong(receiver.awaitValue("RECV_BYTES_" + f, timeout));
                    String ackMd5 = sender.awaitValue("ACK_MD5_" + f, timeout);
                    flowResults.add(new Flow(f, receivedBytes, receivedMd5.value(), ackMd5, receivedMd5.sinceBoot()));
                }
                List<Throughput> throughput = new ArrayList<>();
                for (int i = 0; throughputMiB > 0 && i < throughputRuns; i++) {
                    QemuGuest.Marker start = sender.await("TPUT_START_" + i, timeout);
                    QemuGuest.Marker result = sender.await("TPUT_RESULT_" + i, timeout);
                    String[] v = result.value().split(",");
                    throughput.add(new Throughput(Long.parseLong(v[1]), v[0], Long.parseLong(v[2]),
                            result.sinceBoot().minus(start.sinceBoot())));
                }
                receiver.await("DONE", timeout);
                sender.await("DONE", timeout);
                GuestReport receiverReport = report(receiver);
                GuestReport senderReport = report(sender);
                // Non-short-circuit &: give both guests their chance to power off.
                boolean poweredOff = receiver.awaitPowerOff(POWER_OFF_WAIT) & sender.awaitPowerOff(POWER_OFF_WAIT);
                return new Result(sentMd5, sentBytes, List.copyOf(flowResults), receiverReport, senderReport,
                        List.copyOf(throughput), receiverPing.sinceBoot(), senderPing.sinceBoot(), poweredOff,
                        receiver.consoleLog(), sender.consoleLog(), backend.logFile());
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError(e.getMessage()
                        + diagnostics(receiver.consoleLog(), sender.consoleLog(), backend.logFile()), e);
            }
        }
    }

    /** The guest's NIC report; its markers precede DONE, which the caller has seen. */
    private GuestReport report(QemuGuest guest) throws InterruptedException {
        String features = guest.awaitValue("FEATURES", timeout);
        List<String> queues = List.of(guest.awaitValue("QUEUES", timeout).split(","));
        int cpus = Integer.parseInt(guest.awaitValue("CPUS", timeout));
        String ifStats = guest.awaitValue("IFSTATS", timeout);
        return new GuestReport(features, queues, cpus, ifStats);
    }

    static String diagnostics(Path receiverLog, Path senderLog, Path backendLog) {
        return section("receiver console", receiverLog)
                + section("sender console", senderLog)
                + section("back-end log", backendLog);
    }

    private static String section(String title, Path log) {
        return "\n---- " + title + " (" + log + "), last " + TAIL_LINES + " lines ----\n"
                + ConsoleLog.tail(log, TAIL_LINES);
    }
}
