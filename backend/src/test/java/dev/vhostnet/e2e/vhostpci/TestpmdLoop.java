package dev.vhostnet.e2e.vhostpci;

import dev.vhostnet.e2e.ChildProcess;
import dev.vhostnet.e2e.ConsoleLog;
import dev.vhostnet.e2e.E2eDirs;
import dev.vhostnet.e2e.E2eSettings;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * dpdk-testpmd with two virtio_user ports as the two guests (port 0 on socket A, port 1 on socket B), io
 * forwarding and --tx-first: a burst circulates A → back-end(s) → B → testpmd → A for ever, so the loop rate is
 * the back-end's forwarding rate. Stats every second; rates are read from its log.
 */
final class TestpmdLoop implements AutoCloseable {
    private static final Pattern RX_PPS = Pattern.compile("Rx-pps:\\s+(\\d+)");
    private static final Path DPDK_RUNTIME = Path.of("/var/run/dpdk");

    private final ChildProcess process;
    private final String prefix;

    private TestpmdLoop(ChildProcess process, String prefix) {
        this.process = process;
        this.prefix = prefix;
    }

    static TestpmdLoop start(Path a, Path b, Path logDir, String name) throws IOException {
        String prefix = E2eSettings.uniqueName("vhnet-vpi");
        List<String> cmd = List.of("stdbuf", "-oL", E2eSettings.testpmdBinary(),
                "-l", "0,1", "--main-lcore", "0", "--no-pci", "--no-huge", "-m", "1024",
                "--file-prefix=" + prefix,
                "--vdev", "net_virtio_user0,path=" + a + ",queues=1",
                "--vdev", "net_virtio_user1,path=" + b + ",queues=1",
                "--", "--total-num-mbufs=16384", "--stats-period=1", "--forward-mode=io", "--tx-first");
        return new TestpmdLoop(ChildProcess.start("testpmd-" + name, cmd, logDir.resolve("testpmd-" + name + ".log")),
                prefix);
    }

    boolean isAlive() {
        return process.isAlive();
    }

    Path log() {
        return process.console().file();
    }

    /** Rx-pps samples so far, in order: port 0, port 1, port 0, ... */
    List<Long> samples() {
        List<Long> out = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(log())) {
                Matcher m = RX_PPS.matcher(line);
                if (m.find()) {
                    out.add(Long.parseLong(m.group(1)));
                }
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return out;
    }

    /** Waits until both ports report receiving (the loop runs), failing after {@code timeout}. */
    void awaitFlowing(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            List<Long> s = samples();
            int n = s.size() - s.size() % 2;
            if (n >= 2 && s.get(n - 2) > 0 && s.get(n - 1) > 0) {
                return;
            }
            if (!process.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError("testpmd loop not flowing after " + timeout + " (alive " + process.isAlive()
                        + "):\n" + ConsoleLog.tail(log(), 40));
            }
            Thread.sleep(200);
        }
    }

    /**
     * Waits for {@code seconds} more stats periods and returns the median over them of port 0 + port 1 Rx-pps
     * (frames forwarded by the back-end per second, both directions).
     */
    long measure(int seconds) throws InterruptedException {
        return rates(seconds)[0];
    }

    /** Median and highest one-second sum of both ports' Rx-pps over the next {@code seconds} periods. */
    long[] rates(int seconds) throws InterruptedException {
        int from = samples().size();
        from -= from % 2;
        long deadline = System.nanoTime() + Duration.ofSeconds(seconds * 3L + 10).toNanos();
        List<Long> s;
        while ((s = samples()).size() < from + 2 * seconds) {
            if (!process.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError("testpmd stopped reporting:\n" + ConsoleLog.tail(log(), 40));
            }
            Thread.sleep(250);
        }
        List<Long> sums = new ArrayList<>();
        for (int i = from; i + 1 < from + 2 * seconds; i += 2) {
            sums.add(s.get(i) + s.get(i + 1));
        }
        sums.sort(null);
        return new long[] {sums.get(sums.size() / 2), sums.get(sums.size() - 1)};
    }

    @Override
    public void close() {
        process.close();
        E2eDirs.deleteTree(DPDK_RUNTIME.resolve(prefix));
    }
}
