package dev.vhostnet.e2e.dpdk;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * DPDK's own vhost PMD as the reference back-end: one testpmd with two net_vhost ports in io forward
 * mode, which is the same A-to-B / B-to-A loop as our peer mode (though it copies each packet twice,
 * in and out of an mbuf). It creates the sockets as the vhost-user server; its single forwarding lcore
 * polls on {@link CpuLayout#BACKEND_CORE}.
 */
public final class DpdkVhostReference implements VhostBackEnd {
    private final Testpmd testpmd;

    private DpdkVhostReference(Testpmd testpmd) {
        this.testpmd = testpmd;
    }

    /** Starts the reference and returns once it accepts connections on both sockets. */
    public static DpdkVhostReference start(SocketFiles sockets, int queues, Duration timeout)
            throws IOException, InterruptedException {
        List<String> eal = new ArrayList<>(List.of(CpuLayout.ealCores(CpuLayout.BACKEND_CORE, CpuLayout.FRONT_END_CORE)));
        eal.addAll(List.of("--vdev", "net_vhost0,iface=" + sockets.a() + ",queues=" + queues,
                "--vdev", "net_vhost1,iface=" + sockets.b() + ",queues=" + queues));
        Testpmd testpmd = Testpmd.start("dpdk-vhost", eal, List.of("--rxq=" + queues, "--txq=" + queues));
        DpdkVhostReference reference = new DpdkVhostReference(testpmd);
        try {
            sockets.awaitBoth(timeout, testpmd::isAlive, testpmd::describe);
            // The socket file appears at bind(); virtio_user connects only once and gives up on
            // ECONNREFUSED, so also wait until the ports are started (and so listening).
            testpmd.awaitForwarding(timeout);
            return reference;
        } catch (RuntimeException | InterruptedException e) {
            reference.close();
            throw e;
        }
    }

    public Testpmd testpmd() {
        return testpmd;
    }

    @Override
    public String name() {
        return "dpdk-vhost";
    }

    @Override
    public Path log() {
        return testpmd.log();
    }

    /** Reads its final forward statistics: port 0 is socket A, port 1 is socket B. */
    @Override
    public Optional<BackEndCounters> stop() {
        testpmd.stop();
        Map<Integer, ForwardStats> f = testpmd.stats().forwardStats();
        if (!f.containsKey(0) || !f.containsKey(1)) {
            return Optional.empty();
        }
        return Optional.of(new BackEndCounters(f.get(0).rxPackets(), f.get(1).txPackets(), f.get(1).rxPackets(),
                f.get(0).txPackets()));
    }

    @Override
    public void close() {
        testpmd.close();
    }
}
