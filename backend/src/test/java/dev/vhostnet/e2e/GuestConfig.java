package dev.vhostnet.e2e;

import java.nio.file.Path;
import java.util.List;

/**
 * One guest of the scenario.
 *
 * @param name           short name used for the console log file and process name
 * @param vhostSocket    the back-end's vhost-user socket this guest's NIC connects to
 * @param mac            the guest NIC's MAC address
 * @param role           sender or receiver
 * @param ip             the guest's IPv4 address (a /24 is assumed)
 * @param peerIp         the other guest's IPv4 address
 * @param payloadMiB     size of the payload the sender generates (sent once per flow)
 * @param extraNicProps  extra virtio-net-pci properties, e.g. "mrg_rxbuf=off", to restrict
 *                       the features offered to a back-end
 * @param queuePairs     queue pairs of the vhost-user netdev; above 1 the NIC gets mq=on and the
 *                       guest one vCPU per pair (Linux enables min(pairs, online CPUs) pairs)
 * @param flows          parallel TCP transfers of the payload (guest-init.sh e2e.flows); flow i
 *                       runs on vCPU i mod cpus, hence on queue pair i mod cpus
 * @param throughputMiB  MiB of zeros timed through one more connection after the checked
 *                       transfers (e2e.tput); 0: none
 * @param throughputRuns how many times that timed transfer is repeated (e2e.tputruns)
 */
public record GuestConfig(String name, Path vhostSocket, String mac, GuestRole role, String ip, String peerIp,
                          int payloadMiB, List<String> extraNicProps, int queuePairs, int flows, int throughputMiB,
                          int throughputRuns) {

    public GuestConfig {
        extraNicProps = List.copyOf(extraNicProps);
        if (queuePairs < 1 || flows < 1 || throughputMiB < 0 || throughputRuns < 1) {
            throw new IllegalArgumentException("queuePairs, flows and throughputRuns must be >= 1, throughputMiB >= 0");
        }
    }

    /** A guest with one queue pair, one flow and no throughput run. */
    public GuestConfig(String name, Path vhostSocket, String mac, GuestRole role, String ip, String peerIp,
                       int payloadMiB, List<String> extraNicProps) {
        this(name, vhostSocket, mac, role, ip, peerIp, payloadMiB, extraNicProps, 1, 1, 0, 1);
    }

    /** vCPUs: one per queue pair, so the driver enables every pair. */
    public int cpus() {
        return queuePairs;
    }

    public GuestConfig withExtraNicProps(List<String> props) {
        return new GuestConfig(name, vhostSocket, mac, role, ip, peerIp, payloadMiB, props, queuePairs, flows,
                throughputMiB, throughputRuns);
    }
}
