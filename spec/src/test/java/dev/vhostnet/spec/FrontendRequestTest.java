package dev.vhostnet.spec;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Front-end message types and their ids, from vhost-user.rst ("Front-end message types"). */
class FrontendRequestTest {

    /** VHOST_USER_&lt;name&gt; -> id, as the spec lists them. */
    private static final Map<String, Integer> SPEC = new LinkedHashMap<>();

    static {
        SPEC.put("GET_FEATURES", 1);
        SPEC.put("SET_FEATURES", 2);
        SPEC.put("SET_OWNER", 3);
        SPEC.put("RESET_OWNER", 4);
        SPEC.put("SET_MEM_TABLE", 5);
        SPEC.put("SET_LOG_BASE", 6);
        SPEC.put("SET_LOG_FD", 7);
        SPEC.put("SET_VRING_NUM", 8);
        SPEC.put("SET_VRING_ADDR", 9);
        SPEC.put("SET_VRING_BASE", 10);
        SPEC.put("GET_VRING_BASE", 11);
        SPEC.put("SET_VRING_KICK", 12);
        SPEC.put("SET_VRING_CALL", 13);
        SPEC.put("SET_VRING_ERR", 14);
        SPEC.put("GET_PROTOCOL_FEATURES", 15);
        SPEC.put("SET_PROTOCOL_FEATURES", 16);
        SPEC.put("GET_QUEUE_NUM", 17);
        SPEC.put("SET_VRING_ENABLE", 18);
        SPEC.put("SEND_RARP", 19);
        SPEC.put("NET_SET_MTU", 20);
        SPEC.put("SET_BACKEND_REQ_FD", 21);
        SPEC.put("IOTLB_MSG", 22);
        SPEC.put("SET_VRING_ENDIAN", 23);
        SPEC.put("GET_CONFIG", 24);
        SPEC.put("SET_CONFIG", 25);
        SPEC.put("CREATE_CRYPTO_SESSION", 26);
        SPEC.put("CLOSE_CRYPTO_SESSION", 27);
        SPEC.put("POSTCOPY_ADVISE", 28);
        SPEC.put("POSTCOPY_LISTEN", 29);
        SPEC.put("POSTCOPY_END", 30);
        SPEC.put("GET_INFLIGHT_FD", 31);
        SPEC.put("SET_INFLIGHT_FD", 32);
        SPEC.put("GPU_SET_SOCKET", 33);
        SPEC.put("RESET_DEVICE", 34);
        SPEC.put("VRING_KICK", 35);
        SPEC.put("GET_MAX_MEM_SLOTS", 36);
        SPEC.put("ADD_MEM_REG", 37);
        SPEC.put("REM_MEM_REG", 38);
        SPEC.put("SET_STATUS", 39);
        SPEC.put("GET_STATUS", 40);
        SPEC.put("GET_SHARED_OBJECT", 41);
        SPEC.put("SET_DEVICE_STATE_FD", 42);
        SPEC.put("CHECK_DEVICE_STATE", 43);
        // VIRTIO Shared Memory series (VHOST_USER_PROTOCOL_F_SHMEM).
        SPEC.put("GET_SHMEM_CONFIG", 44);
    }

    @Test
    void everyConstantHasItsSpecId() {
        for (final Map.Entry<String, Integer> e : SPEC.entrySet()) {
            assertEquals(e.getValue(), Constants.of(FrontendRequest.class, e.getKey()), e.getKey());
        }
    }

    @Test
    void noConstantOutsideTheSpecTable() {
        final Map<String, Integer> declared = Constants.all(FrontendRequest.class);
        declared.remove("MAX");
        assertEquals(new java.util.TreeMap<>(SPEC), declared);
    }

    @Test
    void maxIsTheHighestId() {
        assertEquals(44, FrontendRequest.MAX);
    }

    @Test
    void namesKnownIds() {
        for (final Map.Entry<String, Integer> e : SPEC.entrySet()) {
            assertEquals(e.getKey(), FrontendRequest.name(e.getValue()), "id " + e.getValue());
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 45, 46, 1000})
    void namesUnknownIds(final int id) {
        assertEquals("UNKNOWN(" + id + ")", FrontendRequest.name(id));
    }

    @Test
    void namesNegativeIdsAsUnsigned() {
        assertEquals("UNKNOWN(4294967295)", FrontendRequest.name(-1));
        assertEquals("UNKNOWN(2147483648)", FrontendRequest.name(Integer.MIN_VALUE));
    }
}
