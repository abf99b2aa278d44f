package dev.vhostnet.e2e;

import java.util.ArrayList;
import java.util.List;

/** virtio-net-pci property sets (QEMU 7.2 names) the e2e tests vary. */
public final class NicProps {
    /** A receiver that takes neither partially checksummed nor GSO frames. */
    public static final List<String> RECEIVE_OFFLOADS_OFF = List.of("guest_csum=off", "guest_tso4=off", "guest_tso6=off");
    /** A sender that transmits only complete, checksummed, MTU-sized frames. */
    public static final List<String> TRANSMIT_OFFLOADS_OFF = List.of("csum=off", "host_tso4=off", "host_tso6=off");
    /** Every offload QEMU 7.2 lets us switch off, both directions (ECN and UFO ride on TSO/CSUM). */
    public static final List<String> ALL_OFFLOADS_OFF = concat(RECEIVE_OFFLOADS_OFF, TRANSMIT_OFFLOADS_OFF,
            List.of("guest_ecn=off", "guest_ufo=off", "host_ecn=off", "host_ufo=off"));

    private NicProps() {
    }

    /** packed=on|off. */
    public static String packed(boolean on) {
        return "packed=" + onOff(on);
    }

    /** mrg_rxbuf=on|off. */
    public static String mergeable(boolean on) {
        return "mrg_rxbuf=" + onOff(on);
    }

    private static String onOff(boolean on) {
        return on ? "on" : "off";
    }

    @SafeVarargs
    static List<String> concat(List<String>... lists) {
        List<String> all = new ArrayList<>();
        for (List<String> l : lists) {
            all.addAll(l);
        }
        return List.copyOf(all);
    }
}
