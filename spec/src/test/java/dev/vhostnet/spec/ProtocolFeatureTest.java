package dev.vhostnet.spec;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** vhost-user protocol feature bits, from vhost-user.rst ("Protocol features"). */
class ProtocolFeatureTest {

    /** VHOST_USER_PROTOCOL_F_&lt;name&gt; -> bit. */
    private static final Map<String, Integer> SPEC = new LinkedHashMap<>();

    static {
        SPEC.put("MQ", 0);
        SPEC.put("LOG_SHMFD", 1);
        SPEC.put("RARP", 2);
        SPEC.put("REPLY_ACK", 3);
        SPEC.put("MTU", 4);
        SPEC.put("BACKEND_REQ", 5);
        SPEC.put("CROSS_ENDIAN", 6);
        SPEC.put("CRYPTO_SESSION", 7);
        SPEC.put("PAGEFAULT", 8);
        SPEC.put("CONFIG", 9);
        SPEC.put("BACKEND_SEND_FD", 10);
        SPEC.put("HOST_NOTIFIER", 11);
        SPEC.put("INFLIGHT_SHMFD", 12);
        SPEC.put("RESET_DEVICE", 13);
        SPEC.put("INBAND_NOTIFICATIONS", 14);
        SPEC.put("CONFIGURE_MEM_SLOTS", 15);
        SPEC.put("STATUS", 16);
        SPEC.put("XEN_MMAP", 17);
        SPEC.put("SHARED_OBJECT", 18);
        SPEC.put("DEVICE_STATE", 19);
        // VIRTIO Shared Memory series.
        SPEC.put("SHMEM", 20);
    }

    @Test
    void everyConstantHasItsSpecBit() {
        for (final Map.Entry<String, Integer> e : SPEC.entrySet()) {
            assertEquals(e.getValue(), Constants.of(ProtocolFeature.class, e.getKey()), e.getKey());
        }
    }

    @Test
    void noConstantOutsideTheSpecTable() {
        assertEquals(new TreeMap<>(SPEC), Constants.all(ProtocolFeature.class));
    }

    @Test
    void bitAndHasWorkOnTheWholeMask() {
        assertEquals(0x1L, ProtocolFeature.bit(0));
        assertEquals(0x8L, ProtocolFeature.bit(3));
        assertEquals(0x8_0000L, ProtocolFeature.bit(19));

        // MQ | REPLY_ACK | CONFIG | STATUS as QEMU would send it: 0x10209.
        final long mask = 0x1_0209L;
        assertTrue(ProtocolFeature.has(mask, 0));
        assertTrue(ProtocolFeature.has(mask, 3));
        assertTrue(ProtocolFeature.has(mask, 9));
        assertTrue(ProtocolFeature.has(mask, 16));
        assertFalse(ProtocolFeature.has(mask, 1));
        assertFalse(ProtocolFeature.has(mask, 5));
        assertFalse(ProtocolFeature.has(mask, 63));
    }
}
