package dev.vhostnet.e2e.dpdk;

import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Turns testpmd's text output into {@link TestpmdStats} events. testpmd prints a block per port: a
 * header naming the port, then "name: value" pairs, two per line. This parser keeps the current section
 * (periodic NIC statistics or final forward statistics) and the current port, fills in values as
 * they appear, and emits a record when a block's last expected line arrives.
 */
final class TestpmdOutputParser implements Consumer<String> {
    private static final Pattern NIC_HEADER = Pattern.compile("NIC statistics for port (\\d+)");
    private static final Pattern FORWARD_HEADER = Pattern.compile("Forward statistics for port (\\d+)");
    private static final Pattern RX_MISSED = Pattern.compile("RX-packets:\\s*(\\d+)\\s+RX-missed:\\s*(\\d+)");
    private static final Pattern TX_ERRORS = Pattern.compile("TX-packets:\\s*(\\d+)\\s+TX-errors:\\s*(\\d+)");
    private static final Pattern RX_PPS = Pattern.compile("Rx-pps:\\s*(\\d+)");
    private static final Pattern TX_PPS = Pattern.compile("Tx-pps:\\s*(\\d+)");
    private static final Pattern RX_DROPPED = Pattern.compile("RX-packets:\\s*(\\d+)\\s+RX-dropped:\\s*(\\d+)");
    private static final Pattern TX_DROPPED = Pattern.compile("TX-packets:\\s*(\\d+)\\s+TX-dropped:\\s*(\\d+)");
    /** Lines after which the ports will never pass traffic (e.g. the back-end refused SET_MEM_TABLE). */
    private static final Pattern FATAL = Pattern.compile("Failed to start device|Fail to start port|Failed to set features");
    private static final Pattern FEATURES = Pattern.compile("features after negotiate = (?:0x)?([0-9a-fA-F]+)");

    private enum Section { NONE, NIC, FORWARD }

    private final TestpmdStats stats;
    private Section section = Section.NONE;
    private int port;
    private long rxPackets;
    private long rxOther;
    private long txPackets;
    private long txOther;
    private long rxPps;

    TestpmdOutputParser(TestpmdStats stats) {
        this.stats = stats;
    }

    @Override
    public void accept(String line) {
        Matcher m;
        if ((m = NIC_HEADER.matcher(line)).find()) {
            enter(Section.NIC, m);
        } else if ((m = FORWARD_HEADER.matcher(line)).find()) {
            enter(Section.FORWARD, m);
        } else if (line.contains("Accumulated forward statistics")) {
            section = Section.NONE;
        } else if (line.contains("packet forwarding - ports=")) {
            stats.onForwardingStarted();
        } else if (FATAL.matcher(line).find()) {
            stats.onFatal(line);
        } else if ((m = FEATURES.matcher(line)).find()) {
            stats.onNegotiatedFeatures(Long.parseUnsignedLong(m.group(1), 16));
        } else if (section == Section.NIC) {
            nicLine(line);
        } else if (section == Section.FORWARD) {
            forwardLine(line);
        }
    }

    private void enter(Section next, Matcher header) {
        section = next;
        port = Integer.parseInt(header.group(1));
        rxPackets = rxOther = txPackets = txOther = rxPps = 0;
    }

    private void nicLine(String line) {
        Matcher m;
        if ((m = RX_MISSED.matcher(line)).find()) {
            rxPackets = Long.parseLong(m.group(1));
            rxOther = Long.parseLong(m.group(2));
        } else if ((m = TX_ERRORS.matcher(line)).find()) {
            txPackets = Long.parseLong(m.group(1));
            txOther = Long.parseLong(m.group(2));
        } else if ((m = RX_PPS.matcher(line)).find()) {
            rxPps = Long.parseLong(m.group(1));
        } else if ((m = TX_PPS.matcher(line)).find()) {
            // Tx-pps is the last figure of a NIC block.
            stats.onSnapshot(new PortSnapshot(port, System.nanoTime(), rxPackets, rxOther, txPackets, txOther,
                    rxPps, Long.parseLong(m.group(1))));
            section = Section.NONE;
        }
    }

    private void forwardLine(String line) {
        Matcher m;
        if ((m = RX_DROPPED.matcher(line)).find()) {
            rxPackets = Long.parseLong(m.group(1));
            rxOther = Long.parseLong(m.group(2));
        } else if ((m = TX_DROPPED.matcher(line)).find()) {
            // TX is the last line of a forward block.
            stats.onForwardStats(new ForwardStats(port, rxPackets, rxOther, Long.parseLong(m.group(1)),
                    Long.parseLong(m.group(2))));
            section = Section.NONE;
        }
    }
}
