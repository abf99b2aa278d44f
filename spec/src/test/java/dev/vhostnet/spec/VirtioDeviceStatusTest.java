package dev.vhostnet.spec;

import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Device status field bits (virtio spec, "Device Status Field"), carried by SET_STATUS / GET_STATUS. */
class VirtioDeviceStatusTest {

    @Test
    void bitsMatchTheSpec() {
        final Map<String, Integer> spec = new TreeMap<>(Map.of(
            "ACKNOWLEDGE", 1,
            "DRIVER", 2,
            "DRIVER_OK", 4,
            "FEATURES_OK", 8,
            "DEVICE_NEEDS_RESET", 64,
            "FAILED", 128));

        assertEquals(spec, Constants.all(VirtioDeviceStatus.class));
    }
}
