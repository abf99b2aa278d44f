package dev.vhostnet.e2e.dpdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Runs in the ordinary build: the parser against hand-written lines shaped like testpmd's output. */
class TestpmdOutputParserTest {

    private static TestpmdStats parse(String... lines) {
        TestpmdStats stats = new TestpmdStats();
        TestpmdOutputParser parser = new TestpmdOutputParser(stats);
        for (String line : lines) {
            parser.accept(line);
        }
        return stats;
    }

    @Test
    void periodicBlockBecomesOneSnapshotPerPort() {
        TestpmdStats stats = parse(
                "io packet forwarding - ports=2 - cores=1 - streams=2",
                "Port statistics ====",
                "  ######## NIC statistics for port 1  ########",
                "  RX-packets: 1000       RX-missed: 3          RX-bytes:  64000",
                "  RX-errors: 0",
                "  TX-packets: 990        TX-errors: 2          TX-bytes:  63360",
                "  Throughput (since last show)",
                "  Rx-pps:          500          Rx-bps:    256000",
                "  Tx-pps:          495          Tx-bps:    253440",
                "  ##########");
        assertTrue(stats.forwardingStarted());
        PortSnapshot s = stats.latest(1).orElseThrow();
        assertEquals(List.of(1000L, 3L, 990L, 2L, 500L, 495L),
                List.of(s.rxPackets(), s.rxMissed(), s.txPackets(), s.txErrors(), s.rxPps(), s.txPps()));
        assertTrue(stats.latest(0).isEmpty());
    }

    @Test
    void finalForwardStatisticsAreKeptPerPortAndTheAccumulatedBlockIsIgnored() {
        TestpmdStats stats = parse(
                "  ------- Forward statistics for port 0  -------",
                "  RX-packets: 70         RX-dropped: 1             RX-total: 71",
                "  TX-packets: 80         TX-dropped: 2             TX-total: 82",
                "  ------- Forward statistics for port 1  -------",
                "  RX-packets: 79         RX-dropped: 0             RX-total: 79",
                "  TX-packets: 69         TX-dropped: 0             TX-total: 69",
                "  +++++ Accumulated forward statistics for all ports +++++",
                "  RX-packets: 149        RX-dropped: 1             RX-total: 150",
                "  TX-packets: 149        TX-dropped: 2             TX-total: 151");
        assertEquals(new ForwardStats(0, 70, 1, 80, 2), stats.forwardStats().get(0));
        assertEquals(new ForwardStats(1, 79, 0, 69, 0), stats.forwardStats().get(1));
        assertEquals(2, stats.forwardStats().size());
    }

    @Test
    void negotiatedFeaturesAreCollectedInPortOrder() {
        TestpmdStats stats = parse(
                "virtio_ethdev_negotiate_features(): features after negotiate = d10018000",
                "virtio_ethdev_negotiate_features(): features after negotiate = 110008000");
        assertEquals(List.of(0xd10018000L, 0x110008000L), stats.negotiatedFeatures());
        VirtioUserLoop packed = VirtioUserLoop.packed64();
        assertEquals("", packed.missingFeatures(0xd10018000L));
        assertEquals("VIRTIO_F_RING_PACKED", packed.missingFeatures(0x110008000L));
    }

    @Test
    void portStartFailureIsReportedAsFatal() {
        TestpmdStats stats = parse(
                "Error during enabling promiscuous mode for port 0: Operation not supported - ignore",
                "virtio_user_start_device(): (/tmp/a.sock) Failed to start device");
        assertEquals(1, stats.fatalErrors().size());
    }
}
