package dev.vhostnet.spec;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Device-independent feature bits (virtio "Reserved Feature Bits" and the legacy ones), plus VHOST_F_LOG_ALL (26)
 * and VHOST_USER_F_PROTOCOL_FEATURES (30) from vhost / vhost-user.
 */
class VirtioFeatureTest {

    private static final Map<String, Integer> SPEC = new LinkedHashMap<>();

    static {
        SPEC.put("NOTIFY_ON_EMPTY", 24);
        SPEC.put("VHOST_F_LOG_ALL", 26);
        SPEC.put("ANY_LAYOUT", 27);
        SPEC.put("RING_INDIRECT_DESC", 28);
        SPEC.put("RING_EVENT_IDX", 29);
        SPEC.put("VHOST_USER_F_PROTOCOL_FEATURES", 30);
        SPEC.put("VERSION_1", 32);
        SPEC.put("ACCESS_PLATFORM", 33);
        SPEC.put("RING_PACKED", 34);
        SPEC.put("IN_ORDER", 35);
        SPEC.put("ORDER_PLATFORM", 36);
        SPEC.put("SR_IOV", 37);
        SPEC.put("NOTIFICATION_DATA", 38);
        SPEC.put("NOTIF_CONFIG_DATA", 39);
        SPEC.put("RING_RESET", 40);
        SPEC.put("ADMIN_VQ", 41);
    }

    @Test
    void everyConstantHasItsSpecBit() {
        for (final Map.Entry<String, Integer> e : SPEC.entrySet()) {
            assertEquals(e.getValue(), Constants.of(VirtioFeature.class, e.getKey()), e.getKey());
        }
    }

    @Test
    void noConstantOutsideTheSpecTable() {
        assertEquals(new TreeMap<>(SPEC), Constants.all(VirtioFeature.class));
    }

    @Test
    void bitReachesAboveThirtyTwo() {
        assertEquals(0x1_0000_0000L, VirtioFeature.bit(32));
        assertEquals(0x4000_0000L, VirtioFeature.bit(30));
        assertEquals(0x8000_0000_0000_0000L, VirtioFeature.bit(63));
    }

    @Test
    void hasChecksOneBitOfTheWholeMask() {
        // VERSION_1 | RING_EVENT_IDX | MRG_RXBUF
        final long features = 0x1_2000_8000L;
        assertTrue(VirtioFeature.has(features, 32));
        assertTrue(VirtioFeature.has(features, 29));
        assertTrue(VirtioFeature.has(features, 15));
        assertFalse(VirtioFeature.has(features, 34));
        assertFalse(VirtioFeature.has(features, 0));
        assertTrue(VirtioFeature.has(0x8000_0000_0000_0000L, 63));
    }
}
