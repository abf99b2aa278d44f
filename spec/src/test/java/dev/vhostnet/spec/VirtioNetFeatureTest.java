package dev.vhostnet.spec;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** virtio-net feature bits and config status bits (virtio spec, Network Device). */
class VirtioNetFeatureTest {

    private static final Map<String, Integer> SPEC = new LinkedHashMap<>();

    static {
        SPEC.put("CSUM", 0);
        SPEC.put("GUEST_CSUM", 1);
        SPEC.put("CTRL_GUEST_OFFLOADS", 2);
        SPEC.put("MTU", 3);
        SPEC.put("MAC", 5);
        SPEC.put("GSO", 6);
        SPEC.put("GUEST_TSO4", 7);
        SPEC.put("GUEST_TSO6", 8);
        SPEC.put("GUEST_ECN", 9);
        SPEC.put("GUEST_UFO", 10);
        SPEC.put("HOST_TSO4", 11);
        SPEC.put("HOST_TSO6", 12);
        SPEC.put("HOST_ECN", 13);
        SPEC.put("HOST_UFO", 14);
        SPEC.put("MRG_RXBUF", 15);
        SPEC.put("STATUS", 16);
        SPEC.put("CTRL_VQ", 17);
        SPEC.put("CTRL_RX", 18);
        SPEC.put("CTRL_VLAN", 19);
        SPEC.put("CTRL_RX_EXTRA", 20);
        SPEC.put("GUEST_ANNOUNCE", 21);
        SPEC.put("MQ", 22);
        SPEC.put("CTRL_MAC_ADDR", 23);
        SPEC.put("DEVICE_STATS", 50);
        SPEC.put("HASH_TUNNEL", 51);
        SPEC.put("VQ_NOTF_COAL", 52);
        SPEC.put("NOTF_COAL", 53);
        SPEC.put("GUEST_USO4", 54);
        SPEC.put("GUEST_USO6", 55);
        SPEC.put("HOST_USO", 56);
        SPEC.put("HASH_REPORT", 57);
        SPEC.put("GUEST_HDRLEN", 59);
        SPEC.put("RSS", 60);
        SPEC.put("RSC_EXT", 61);
        SPEC.put("STANDBY", 62);
        SPEC.put("SPEED_DUPLEX", 63);
        // virtio_net_config.status bits
        SPEC.put("S_LINK_UP", 1);
        SPEC.put("S_ANNOUNCE", 2);
    }

    @Test
    void everyConstantHasItsSpecValue() {
        for (final Map.Entry<String, Integer> e : SPEC.entrySet()) {
            assertEquals(e.getValue(), Constants.of(VirtioNetFeature.class, e.getKey()), e.getKey());
        }
    }

    @Test
    void noConstantOutsideTheSpecTable() {
        assertEquals(new TreeMap<>(SPEC), Constants.all(VirtioNetFeature.class));
    }
}
