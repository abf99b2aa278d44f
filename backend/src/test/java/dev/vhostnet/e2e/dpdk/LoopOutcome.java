package dev.vhostnet.e2e.dpdk;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Final figures of one loop run: the front-end's forward statistics (port 0 = socket A, port 1 =
 * socket B) and the back-end's own counters, if it reported them.
 *
 * <p>The invariants checked here follow from io forwarding with --tx-first: the front-end injects a
 * fixed number of packets and afterwards only sends what it received, so at any moment the packets
 * sent but not yet received are at most those injected. Whatever a back-end takes from A it can
 * deliver to B at most once, and the front-end cannot receive on B more than was delivered there.
 */
public record LoopOutcome(Map<Integer, ForwardStats> frontEnd, int frontEndExitCode,
                          Optional<BackEndCounters> backEnd, List<Long> negotiatedFeatures, long injectedPackets) {

    public ForwardStats port(int port) {
        ForwardStats s = frontEnd.get(port);
        if (s == null) {
            throw new IllegalStateException("front-end printed no forward statistics for port " + port);
        }
        return s;
    }

    /** Sent on A, not (yet) received on B when the front-end stopped: in flight or lost. */
    public long unreceivedAtoB() {
        return port(0).txPackets() - port(1).rxPackets();
    }

    public long unreceivedBtoA() {
        return port(1).txPackets() - port(0).rxPackets();
    }

    /**
     * Every violated invariant, in words; empty if the run is consistent. {@code minPackets} is how many
     * packets each direction must at least have carried for the run to count as "traffic flowed".
     */
    public List<String> problems(long minPackets) {
        List<String> problems = new ArrayList<>();
        if (!frontEnd.containsKey(0) || !frontEnd.containsKey(1)) {
            // testpmd prints them on SIGINT once its forwarding lcores have stopped; a testpmd that had
            // to be killed (starved on an overloaded machine, or hung) never printed them.
            problems.add("front-end forward statistics missing for a port: " + frontEnd + " (testpmd exit code "
                    + frontEndExitCode + ")");
            return problems;
        }
        ForwardStats a = port(0);
        ForwardStats b = port(1);
        if (b.rxPackets() < minPackets) {
            problems.add("A->B carried only " + b.rxPackets() + " packets (< " + minPackets + ")");
        }
        if (a.rxPackets() < minPackets) {
            problems.add("B->A carried only " + a.rxPackets() + " packets (< " + minPackets + ")");
        }
        checkUnreceived("A->B", unreceivedAtoB(), problems);
        checkUnreceived("B->A", unreceivedBtoA(), problems);
        backEnd.ifPresent(be -> {
            checkChain("A->B", a.txPackets(), be.takenFromA(), be.deliveredToB(), b.rxPackets(), problems);
            checkChain("B->A", b.txPackets(), be.takenFromB(), be.deliveredToA(), a.rxPackets(), problems);
        });
        return problems;
    }

    private void checkUnreceived(String direction, long unreceived, List<String> problems) {
        if (unreceived < 0) {
            problems.add(direction + ": front-end received " + -unreceived + " more packets than it sent"
                    + " (duplicated packets?)");
        } else if (unreceived > injectedPackets) {
            problems.add(direction + ": " + unreceived + " packets sent but not received, more than the "
                    + injectedPackets + " ever injected");
        }
    }

    /** sent by front-end >= taken by back-end >= delivered by back-end >= received by front-end. */
    private static void checkChain(String direction, long sent, long taken, long delivered, long received,
                                   List<String> problems) {
        if (!(sent >= taken && taken >= delivered && delivered >= received)) {
            problems.add(direction + ": expected front-end sent " + sent + " >= back-end took " + taken
                    + " >= back-end delivered " + delivered + " >= front-end received " + received);
        }
    }
}
