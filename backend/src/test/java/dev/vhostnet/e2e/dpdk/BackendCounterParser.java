package dev.vhostnet.e2e.dpdk;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the per-queue counters our back-end prints at exit (StatsPrinter), lines like
 * {@code stats final /tmp/x/a.sock q1(tx) packets=10 bytes=640 drops=0 kicks=0 calls=0 errors=0}.
 * The port is named by its socket path. Queue parity follows virtio-net (even = receive, odd =
 * transmit), so several queue pairs add up. A TX queue's {@code packets} are frames forwarded and its
 * {@code drops} frames taken but discarded; both were taken from the front-end.
 */
final class BackendCounterParser {
    private static final Pattern FINAL = Pattern.compile(
            "^stats final (\\S+) q(\\d+)\\(\\w+\\) packets=(\\d+) bytes=\\d+ drops=(\\d+)");

    private BackendCounterParser() {
    }

    /** Counters from the last "final" block, or empty if the back-end printed none for both sockets. */
    static Optional<BackEndCounters> parseFinal(List<String> output, Path socketA, Path socketB) {
        Map<String, long[]> lastBlock = new HashMap<>();
        boolean previousWasFinal = false;
        for (String line : output) {
            Matcher m = FINAL.matcher(line);
            if (!m.find()) {
                previousWasFinal = false;
                continue;
            }
            if (!previousWasFinal) {
                lastBlock.clear(); // a new block starts; only the last one is final
            }
            previousWasFinal = true;
            // [0] delivered into RX queues, [1] taken from TX queues (forwarded + dropped)
            long[] port = lastBlock.computeIfAbsent(m.group(1), k -> new long[2]);
            long packets = Long.parseLong(m.group(3));
            long drops = Long.parseLong(m.group(4));
            if (Integer.parseInt(m.group(2)) % 2 == 0) {
                port[0] += packets;
            } else {
                port[1] += packets + drops;
            }
        }
        long[] a = lastBlock.get(socketA.toString());
        long[] b = lastBlock.get(socketB.toString());
        if (a == null || b == null) {
            return Optional.empty();
        }
        return Optional.of(new BackEndCounters(a[1], b[0], b[1], a[0]));
    }
}
