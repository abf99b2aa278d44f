package dev.vhostnet.e2e;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The per-queue counters our back-end prints when it stops:
 * {@code stats final <socket> q<N>(rx|tx) packets=.. bytes=.. drops=.. kicks=.. calls=.. errors=..}.
 * Queue 2i is pair i's RX queue (back-end to guest), 2i+1 its TX queue (guest to back-end).
 */
public final class BackendStats {
    private static final Pattern LINE = Pattern.compile(
            "^stats final (\\S+) q(\\d+)\\((rx|tx)\\) packets=(\\d+) bytes=(\\d+) drops=(\\d+) kicks=(\\d+)"
                    + " calls=(\\d+) errors=(\\d+)");

    /** One queue's counters. */
    public record Queue(long packets, long bytes, long drops, long kicks, long calls, long errors) {
    }

    /** socket path -> queue index -> counters, in log order. */
    private final Map<String, Map<Integer, Queue>> sockets;

    private BackendStats(Map<String, Map<Integer, Queue>> sockets) {
        this.sockets = sockets;
    }

    /** Parses the final stats lines of a back-end log; fails if there are none. */
    public static BackendStats parse(Path log) throws IOException {
        Map<String, Map<Integer, Queue>> sockets = new LinkedHashMap<>();
        List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
        for (String line : lines) {
            Matcher m = LINE.matcher(line);
            if (m.find()) {
                sockets.computeIfAbsent(m.group(1), k -> new LinkedHashMap<>()).put(Integer.parseInt(m.group(2)),
                        new Queue(Long.parseLong(m.group(4)), Long.parseLong(m.group(5)), Long.parseLong(m.group(6)),
                                Long.parseLong(m.group(7)), Long.parseLong(m.group(8)), Long.parseLong(m.group(9))));
            }
        }
        if (sockets.isEmpty()) {
            throw new AssertionError("no 'stats final' lines in " + log + ":\n" + ConsoleLog.tail(log, 30));
        }
        return new BackendStats(sockets);
    }

    /** Counters of queue {@code index} of the device on {@code socket}; fails if not printed. */
    public Queue queue(Path socket, int index) {
        Map<Integer, Queue> queues = sockets.get(socket.toString());
        if (queues == null || !queues.containsKey(index)) {
            throw new AssertionError("no final stats for " + socket + " q" + index + " in " + this);
        }
        return queues.get(index);
    }

    /** Pair {@code pair}'s RX queue: what the back-end delivered to the guest. */
    public Queue rx(Path socket, int pair) {
        return queue(socket, 2 * pair);
    }

    /** Pair {@code pair}'s TX queue: what the guest sent. */
    public Queue tx(Path socket, int pair) {
        return queue(socket, 2 * pair + 1);
    }

    /** Number of queues printed for {@code socket}. */
    public int queueCount(Path socket) {
        Map<Integer, Queue> queues = sockets.get(socket.toString());
        return queues == null ? 0 : queues.size();
    }

    /** Packets over all RX queues of {@code socket}. */
    public long rxPackets(Path socket) {
        return sum(socket, 0, Queue::packets);
    }

    /** Packets over all TX queues of {@code socket}. */
    public long txPackets(Path socket) {
        return sum(socket, 1, Queue::packets);
    }

    public long rxBytes(Path socket) {
        return sum(socket, 0, Queue::bytes);
    }

    public long txBytes(Path socket) {
        return sum(socket, 1, Queue::bytes);
    }

    private long sum(Path socket, int parity, java.util.function.ToLongFunction<Queue> f) {
        Map<Integer, Queue> queues = sockets.getOrDefault(socket.toString(), Map.of());
        return queues.entrySet().stream().filter(e -> e.getKey() % 2 == parity).mapToLong(e -> f.applyAsLong(e.getValue()))
                .sum();
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sockets.forEach((socket, queues) -> queues.forEach((q, c) -> sb.append("\n  ").append(socket).append(" q")
                .append(q).append(q % 2 == 0 ? "(rx) " : "(tx) ").append(c)));
        return sb.toString();
    }
}
