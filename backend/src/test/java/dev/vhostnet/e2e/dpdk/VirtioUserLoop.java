package dev.vhostnet.e2e.dpdk;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.StringJoiner;

/**
 * The front-end: one testpmd with two virtio_user ports, port 0 on socket A and port 1 on socket B,
 * in io forward mode. With --tx-first each port injects one burst per queue and from then on every
 * packet received on one port is sent out of the other, so a fixed population of packets circulates
 * through the back-end in both directions and the rate measures the back-end's forwarding cost.
 *
 * <p>Every virtio option is passed explicitly (virtio_user turns mrg_rxbuf and in_order on by default)
 * so that both back-ends are offered the same features; what was actually negotiated is logged by the
 * virtio PMD at debug level and checked with {@link #missingFeatures}.
 */
public record VirtioUserLoop(String name, boolean packed, boolean mrgRxbuf, boolean inOrder, int frameSize,
                             int queues) {
    /** Virtio feature bits this front-end may ask for (virtio 1.x spec numbering). */
    public static final int VIRTIO_NET_F_MRG_RXBUF = 15;
    public static final int VIRTIO_F_RING_PACKED = 34;
    public static final int VIRTIO_F_IN_ORDER = 35;

    public VirtioUserLoop {
        if (frameSize < 60 || frameSize > 1518) {
            throw new IllegalArgumentException("frame size must be 60..1518 (one mbuf), got " + frameSize);
        }
        if (queues < 1) {
            throw new IllegalArgumentException("queues must be >= 1");
        }
    }

    public static VirtioUserLoop split64() {
        return new VirtioUserLoop("split-64", false, false, false, 64, 1);
    }

    public static VirtioUserLoop packed64() {
        return new VirtioUserLoop("packed-64", true, false, false, 64, 1);
    }

    public static VirtioUserLoop mrg1518() {
        return new VirtioUserLoop("mrg-1518", false, true, false, 1518, 1);
    }

    public VirtioUserLoop withQueues(int pairs) {
        return new VirtioUserLoop(name + "-" + pairs + "q", packed, mrgRxbuf, inOrder, frameSize, pairs);
    }

    public VirtioUserLoop withInOrder(boolean on) {
        return new VirtioUserLoop(name + (on ? "-inorder" : ""), packed, mrgRxbuf, on, frameSize, queues);
    }

    /** Packets --tx-first puts into the loop: one burst per queue per port. */
    public long injectedPackets() {
        return 2L * queues * Testpmd.BURST;
    }

    /** Starts the front-end; the back-end must already be listening on both sockets. */
    public Testpmd start(Path socketA, Path socketB) throws IOException {
        List<String> eal = new ArrayList<>(List.of(CpuLayout.ealCores(CpuLayout.FRONT_END_CORE, CpuLayout.BACKEND_CORE)));
        // Makes the virtio PMD log the negotiated feature bits; see missingFeatures.
        eal.add("--log-level=pmd.net.virtio.init:debug");
        eal.addAll(List.of("--vdev", vdev(0, socketA), "--vdev", vdev(1, socketB)));
        List<String> app = List.of("--tx-first", "--txpkts=" + frameSize, "--rxq=" + queues, "--txq=" + queues);
        return Testpmd.start("virtio-user-" + name, eal, app);
    }

    private String vdev(int index, Path socket) {
        return "net_virtio_user" + index + ",path=" + socket + ",queues=" + queues + ",packed_vq=" + bit(packed)
                + ",mrg_rxbuf=" + bit(mrgRxbuf) + ",in_order=" + bit(inOrder);
    }

    private static int bit(boolean b) {
        return b ? 1 : 0;
    }

    /**
     * Names of the requested features that {@code negotiated} lacks. virtio_user silently falls back
     * (e.g. to a split ring) when the back-end does not offer a feature, so a "packed" run against a
     * back-end without packed rings would otherwise measure the wrong thing.
     */
    public String missingFeatures(long negotiated) {
        StringJoiner missing = new StringJoiner(", ");
        if (packed && (negotiated & (1L << VIRTIO_F_RING_PACKED)) == 0) {
            missing.add("VIRTIO_F_RING_PACKED");
        }
        if (mrgRxbuf && (negotiated & (1L << VIRTIO_NET_F_MRG_RXBUF)) == 0) {
            missing.add("VIRTIO_NET_F_MRG_RXBUF");
        }
        if (inOrder && (negotiated & (1L << VIRTIO_F_IN_ORDER)) == 0) {
            missing.add("VIRTIO_F_IN_ORDER");
        }
        return missing.toString();
    }

    /** Missing features over all ports of a front-end run, or "" if every port got what was asked. */
    public String missingFeatures(List<Long> negotiatedPerPort) {
        StringJoiner all = new StringJoiner("; ");
        for (int port = 0; port < negotiatedPerPort.size(); port++) {
            String missing = missingFeatures(negotiatedPerPort.get(port));
            if (!missing.isEmpty()) {
                all.add("port " + port + ": " + missing);
            }
        }
        return all.toString();
    }
}
