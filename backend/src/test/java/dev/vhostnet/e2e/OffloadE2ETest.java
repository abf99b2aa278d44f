package dev.vhostnet.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Checksum and TCP segmentation offloads between two guests through our back-end (split ring,
 * one pair, one flow). The back-end passes a GSO/partial-checksum frame through when the
 * receiver negotiated that offload, and otherwise segments / completes the checksum itself; the
 * payload's md5 proves the result correct, the back-end's frame counts show which path it took.
 */
@Tag("e2e")
class OffloadE2ETest {
    /** TCP payload per full-size segment at MTU 1500 with timestamps (20 IP + 20 TCP + 12 options). */
    private static final int MSS = 1448;

    private static OurBackendRun run(String name, TwoGuestScenario scenario) throws Exception {
        long start = System.nanoTime();
        OurBackendRun run = OurBackendRun.run("offload-" + name, scenario, List.of());
        E2eAssertions.assertTransferIntact(run.result());
        // The back-end's RX counters and the receiving driver agree on what arrived (frames and bytes,
        // headers included, virtio-net header excluded), whichever path the frames took.
        TwoGuestScenario.GuestReport rx = run.result().receiverReport();
        assertEquals(rx.ifStat("rx_packets"), run.receiverRxPackets(), "receiver rx_packets vs back-end RX frames" + run.diagnostics());
        assertEquals(rx.ifStat("rx_bytes"), run.receiverRxBytes(), "receiver rx_bytes vs back-end RX bytes" + run.diagnostics());
        System.out.printf("e2e: offload %s: sender TX %d frames, receiver RX %d frames (%d bytes) for %d payload bytes"
                        + " (%d MSS-sized segments); guest ifstats receiver %s / sender %s; %.1f s%n",
                name, run.senderTxPackets(), run.receiverRxPackets(), run.receiverRxBytes(), run.result().sentBytes(),
                segments(run), run.result().receiverReport().ifStats(), run.result().senderReport().ifStats(),
                (System.nanoTime() - start) / 1e9);
        return run;
    }

    /** Full-size TCP segments the payload makes. */
    private static long segments(OurBackendRun run) {
        return (run.result().sentBytes() + MSS - 1) / MSS;
    }

    /** Between 95% of the segment count (MSS could be 1460 without timestamps) and 150% (ACKs, pings, handshake). */
    private static void assertAboutOneFramePerSegment(String what, long frames, OurBackendRun run) {
        long n = segments(run);
        assertTrue(frames >= n * 95 / 100 && frames <= n * 3 / 2,
                what + ": " + frames + " frames, expected about " + n + " (payload / " + MSS + ")" + run.diagnostics());
    }

    @Test
    void defaultOffloadsPassTsoSegmentsThrough() throws Exception {
        OurBackendRun run = run("default", TwoGuestScenario.defaults());
        TwoGuestScenario.GuestReport rx = run.result().receiverReport();
        TwoGuestScenario.GuestReport tx = run.result().senderReport();
        assertTrue(rx.has(VirtioFeatureBits.GUEST_CSUM) && rx.has(VirtioFeatureBits.GUEST_TSO4),
                "receiver lacks GUEST_CSUM/GUEST_TSO4: " + rx.features());
        assertTrue(tx.has(VirtioFeatureBits.CSUM) && tx.has(VirtioFeatureBits.HOST_TSO4),
                "sender lacks CSUM/HOST_TSO4: " + tx.features());
        // GSO frames of up to 64 KiB: far fewer frames than MSS-sized segments.
        assertTrue(run.receiverRxPackets() * 4 < segments(run), "receiver RX " + run.receiverRxPackets()
                + " frames is not far below " + segments(run) + " segments: TSO not passed through" + run.diagnostics());
        // Passed through frame for frame: nothing was segmented on the way.
        assertEquals(run.senderTxPackets(), run.receiverRxPackets(), "sender TX vs receiver RX frames" + run.diagnostics());
    }

    @Test
    void receiverWithoutOffloadsGetsSegmentsTheBackendCut() throws Exception {
        OurBackendRun run = run("receiver-offloads-off",
                TwoGuestScenario.defaults().withReceiverNicProps(NicProps.RECEIVE_OFFLOADS_OFF.toArray(String[]::new)));
        TwoGuestScenario.GuestReport rx = run.result().receiverReport();
        assertFalse(rx.has(VirtioFeatureBits.GUEST_CSUM), "receiver negotiated GUEST_CSUM: " + rx.features());
        assertFalse(rx.has(VirtioFeatureBits.GUEST_TSO4), "receiver negotiated GUEST_TSO4: " + rx.features());
        assertFalse(rx.has(VirtioFeatureBits.GUEST_TSO6), "receiver negotiated GUEST_TSO6: " + rx.features());
        assertTrue(run.result().senderReport().has(VirtioFeatureBits.HOST_TSO4), "sender lacks HOST_TSO4");
        // The sender still hands over GSO frames; the back-end segments them and fills in checksums.
        assertTrue(run.senderTxPackets() * 4 < segments(run), "sender TX " + run.senderTxPackets()
                + " frames: the sender did not use TSO" + run.diagnostics());
        assertAboutOneFramePerSegment("receiver RX", run.receiverRxPackets(), run);
    }

    @Test
    void senderWithoutOffloadsSendsPlainFrames() throws Exception {
        OurBackendRun run = run("sender-offloads-off",
                TwoGuestScenario.defaults().withSenderNicProps(NicProps.TRANSMIT_OFFLOADS_OFF.toArray(String[]::new)));
        TwoGuestScenario.GuestReport tx = run.result().senderReport();
        assertFalse(tx.has(VirtioFeatureBits.CSUM), "sender negotiated CSUM: " + tx.features());
        assertFalse(tx.has(VirtioFeatureBits.HOST_TSO4), "sender negotiated HOST_TSO4: " + tx.features());
        assertFalse(tx.has(VirtioFeatureBits.HOST_TSO6), "sender negotiated HOST_TSO6: " + tx.features());
        assertAboutOneFramePerSegment("sender TX", run.senderTxPackets(), run);
        assertEquals(run.senderTxPackets(), run.receiverRxPackets(), "sender TX vs receiver RX frames" + run.diagnostics());
    }
}
