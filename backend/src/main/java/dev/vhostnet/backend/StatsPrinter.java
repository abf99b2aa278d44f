package dev.vhostnet.backend;

import dev.vhostnet.dataplane.net.VirtioNetPort;

import java.io.PrintStream;

/** Prints every port's queue counters: periodically (--stats-interval) and once at exit. */
final class StatsPrinter {
    private final VirtioNetPort[] ports;
    private final PrintStream out;
    private final java.util.function.LongSupplier dataplaneAllocated;

    StatsPrinter(final VirtioNetPort[] ports, final PrintStream out, final java.util.function.LongSupplier dataplaneAllocated) {
        this.ports = ports.clone();
        this.out = out;
        this.dataplaneAllocated = dataplaneAllocated;
    }

    void print(final String label) {
        final StringBuilder sb = new StringBuilder();
        for (final VirtioNetPort p : ports) {
            for (int q = 0; q < p.queueCount(); q++) {
                sb.append("stats ").append(label).append(' ').append(p.name()).append(" q").append(q)
                    .append((q % 2 == 0 ? "(rx) " : "(tx) "))
                    .append(p.queue(q).counters().format()).append('\n');
            }
        }
        sb.append("stats ").append(label).append(" dataplane-allocated-bytes=").append(dataplaneAllocated.getAsLong())
            .append('\n');
        out.print(sb);
        out.flush();
    }
}
