package dev.vhostnet.bench.idle;

import dev.vhostnet.bench.latency.Machine;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** CPU time of a process and of each of its threads, from /proc/PID/stat and /proc/PID/task/TID/stat. */
public final class ProcCpu {
    /** Clock ticks per second of utime/stime (USER_HZ). */
    public static final long TICKS_PER_SECOND = ticks();

    private ProcCpu() {
    }

    private static long ticks() {
        try {
            return Long.parseLong(Machine.run(List.of("getconf", "CLK_TCK")));
        } catch (final NumberFormatException e) {
            return 100;
        }
    }

    /** A snapshot: wall clock, process utime+stime ticks, and per thread "tid name" -> ticks. */
    public record Snapshot(long nanoTime, long processTicks, Map<String, Long> threadTicks, Map<String, Long> threadWakeups) {
    }

    public static Snapshot take(final long pid) throws IOException {
        final long now = System.nanoTime();
        final long proc = ticksOf(Path.of("/proc", Long.toString(pid), "stat"));
        final Map<String, Long> threads = new LinkedHashMap<>();
        final Map<String, Long> wakeups = new LinkedHashMap<>();
        try (Stream<Path> tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (final Path t : tasks.toList()) {
                try {
                    final String stat = Files.readString(t.resolve("stat"));
                    final String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
                    final String key = t.getFileName() + " " + name;
                    threads.put(key, ticksOf(stat));
                    wakeups.put(key, voluntarySwitches(t.resolve("status")));
                } catch (final IOException | RuntimeException e) {
                    // thread exited meanwhile
                }
            }
        }
        return new Snapshot(now, proc, threads, wakeups);
    }

    private static long ticksOf(final Path stat) throws IOException {
        return ticksOf(Files.readString(stat));
    }

    /** utime + stime: fields 14 and 15, counted after the parenthesised command name. */
    static long ticksOf(final String stat) {
        final String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split("\\s+");
        // f[0] is field 3 (state): field n is f[n - 3]
        return Long.parseLong(f[14 - 3]) + Long.parseLong(f[15 - 3]);
    }

    private static long voluntarySwitches(final Path status) throws IOException {
        for (final String line : Files.readAllLines(status)) {
            if (line.startsWith("voluntary_ctxt_switches:")) {
                return Long.parseLong(line.substring(line.indexOf(':') + 1).trim());
            }
        }
        return -1;
    }

    /** Share of one core used between two snapshots (1.0 = one core fully busy). */
    public static double coreShare(final long ticks, final Snapshot before, final Snapshot after) {
        final double seconds = (after.nanoTime() - before.nanoTime()) / 1e9;
        return ticks / (double) TICKS_PER_SECOND / seconds;
    }
}
