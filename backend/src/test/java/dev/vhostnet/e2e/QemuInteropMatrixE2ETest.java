package dev.vhostnet.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * QEMU interop matrix: split/packed ring x mergeable RX buffers on/off x 1/2 queue pairs, two
 * guests through our back-end in peer mode. Each cell boots its own pair of guests (the
 * virtio-net-pci properties differ), checks that the guests negotiated and enabled what was
 * asked, moves the payload over two parallel TCP flows (md5 checked) and checks in the
 * back-end's final counters that the traffic used the expected queues.
 */
@Tag("e2e")
class QemuInteropMatrixE2ETest {
    /** Two flows in every cell: with two pairs, flow i is pinned to vCPU i, so to pair i. */
    private static final int FLOWS = 2;
    /** Payload bytes every pair must carry from sender to receiver (more than ACKs and pings). */
    private static final long MIN_PAIR_PAYLOAD = 64 * 1024;

    record Cell(boolean packed, boolean mergeable, int pairs) {
        String name() {
            return (packed ? "packed" : "split") + "-" + (mergeable ? "mrg" : "nomrg") + "-" + pairs + "q";
        }

        @Override
        public String toString() {
            return name();
        }
    }

    static Stream<Cell> cells() {
        List<Cell> cells = new ArrayList<>();
        for (boolean packed : new boolean[] {false, true}) {
            for (boolean mergeable : new boolean[] {true, false}) {
                for (int pairs : new int[] {1, 2}) {
                    cells.add(new Cell(packed, mergeable, pairs));
                }
            }
        }
        return cells.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cells")
    void guestsInteroperate(Cell cell) throws Exception {
        long start = System.nanoTime();
        TwoGuestScenario scenario = TwoGuestScenario.defaults()
                .withNicProps(List.of(NicProps.packed(cell.packed()), NicProps.mergeable(cell.mergeable())))
                .withQueuePairs(cell.pairs())
                .withFlows(FLOWS);
        OurBackendRun run = OurBackendRun.run("matrix-" + cell.name(), scenario,
                List.of("--queues", String.valueOf(cell.pairs())));
        TwoGuestScenario.Result r = run.result();

        E2eAssertions.assertTransferIntact(r);
        assertEquals(FLOWS, r.flows().size());
        assertNegotiated(cell, "receiver", r.receiverReport(), run);
        assertNegotiated(cell, "sender", r.senderReport(), run);
        assertCounters(cell, run);
        System.out.printf("e2e: matrix %s passed in %.1f s%n", cell.name(), (System.nanoTime() - start) / 1e9);
    }

    private static void assertNegotiated(Cell cell, String who, TwoGuestScenario.GuestReport g, OurBackendRun run) {
        String where = " (" + who + ", features " + g.features() + ", queues " + g.queues() + ")" + run.diagnostics();
        assertTrue(g.has(VirtioFeatureBits.VERSION_1), "VERSION_1 not negotiated" + where);
        assertEquals(cell.packed(), g.has(VirtioFeatureBits.RING_PACKED), "RING_PACKED (bit 34)" + where);
        assertEquals(cell.mergeable(), g.has(VirtioFeatureBits.MRG_RXBUF), "MRG_RXBUF (bit 15)" + where);
        assertEquals(cell.pairs() > 1, g.has(VirtioFeatureBits.MQ), "MQ (bit 22)" + where);
        assertEquals(cell.pairs(), g.cpus(), "vCPUs" + where);
        // The driver registers as many rx-N/tx-N entries as pairs it enabled.
        assertEquals(cell.pairs(), g.rxQueues(), "rx queues in /sys/class/net/eth0/queues" + where);
        assertEquals(cell.pairs(), g.txQueues(), "tx queues in /sys/class/net/eth0/queues" + where);
    }

    private static void assertCounters(Cell cell, OurBackendRun run) {
        BackendStats s = run.stats();
        assertEquals(2 * cell.pairs(), s.queueCount(run.receiverSocket()), "queues in back-end stats" + run.diagnostics());
        assertEquals(2 * cell.pairs(), s.queueCount(run.senderSocket()), "queues in back-end stats" + run.diagnostics());
        long payload = run.result().sentBytes();
        for (int q = 0; q < 2 * cell.pairs(); q++) {
            int queue = q;
            assertEquals(0, s.queue(run.receiverSocket(), q).errors(), () -> "errors on receiver q" + queue + run.diagnostics());
            assertEquals(0, s.queue(run.senderSocket(), q).errors(), () -> "errors on sender q" + queue + run.diagnostics());
        }
        // Everything the flows carried went through the back-end: payload per flow plus headers.
        assertTrue(run.receiverRxBytes() >= FLOWS * payload,
                "receiver RX bytes " + run.receiverRxBytes() + " < " + FLOWS + " x " + payload + run.diagnostics());
        for (int pair = 0; pair < cell.pairs(); pair++) {
            // Same pairs on both sides and offloads passed through (no software segmentation): the
            // back-end maps pair i to pair i, frame for frame, in both directions.
            BackendStats.Queue sent = run.senderTx(pair);
            BackendStats.Queue received = run.receiverRx(pair);
            assertEquals(sent.packets(), received.packets(), "pair " + pair + ": frames sender TX -> receiver RX" + run.diagnostics());
            assertEquals(sent.bytes(), received.bytes(), "pair " + pair + ": bytes sender TX -> receiver RX" + run.diagnostics());
            BackendStats.Queue acked = s.tx(run.receiverSocket(), pair);
            BackendStats.Queue ackReceived = s.rx(run.senderSocket(), pair);
            assertEquals(acked.packets(), ackReceived.packets(), "pair " + pair + ": frames receiver TX -> sender RX" + run.diagnostics());
            assertEquals(acked.bytes(), ackReceived.bytes(), "pair " + pair + ": bytes receiver TX -> sender RX" + run.diagnostics());
            // Every pair carries payload, not just ACKs: flow i's sender runs on vCPU i, whose XPS
            // queue is tx-i. TCP may move part of a flow to another pair (transmissions from the
            // softirq that handles ACKs), so only a floor is asserted.
            assertTrue(sent.bytes() >= MIN_PAIR_PAYLOAD, "pair " + pair + " carried only " + sent.bytes()
                    + " bytes sender -> receiver" + run.diagnostics());
            assertTrue(acked.packets() > 0, "pair " + pair + " carried nothing receiver -> sender" + run.diagnostics());
        }
    }
}
