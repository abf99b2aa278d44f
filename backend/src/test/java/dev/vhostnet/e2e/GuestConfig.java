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
 * @param payloadMiB     size of the payload the sender generates
 * @param extraNicProps  extra virtio-net-pci properties, e.g. "mrg_rxbuf=off", to restrict
 *                       the features offered to a back-end
 */
public record GuestConfig(String name, Path vhostSocket, String mac, GuestRole role, String ip, String peerIp,
                          int payloadMiB, List<String> extraNicProps) {

    public GuestConfig {
        extraNicProps = List.copyOf(extraNicProps);
    }

    public GuestConfig withExtraNicProps(List<String> props) {
        return new GuestConfig(name, vhostSocket, mac, role, ip, peerIp, payloadMiB, props);
    }
}
