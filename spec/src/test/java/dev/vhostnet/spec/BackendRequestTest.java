package dev.vhostnet.spec;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Back-end message types and their ids, from vhost-user.rst ("Back-end message types"). */
class BackendRequestTest {

    /** VHOST_USER_BACKEND_&lt;name&gt; -> id. */
    private static final Map<String, Integer> SPEC = new LinkedHashMap<>();

    static {
        SPEC.put("IOTLB_MSG", 1);
        SPEC.put("CONFIG_CHANGE_MSG", 2);
        SPEC.put("VRING_HOST_NOTIFIER_MSG", 3);
        SPEC.put("VRING_CALL", 4);
        SPEC.put("VRING_ERR", 5);
        SPEC.put("SHARED_OBJECT_ADD", 6);
        SPEC.put("SHARED_OBJECT_REMOVE", 7);
        SPEC.put("SHARED_OBJECT_LOOKUP", 8);
        // VIRTIO Shared Memory series (VHOST_USER_PROTOCOL_F_SHMEM).
        SPEC.put("SHMEM_MAP", 9);
        SPEC.put("SHMEM_UNMAP", 10);
    }

    @Test
    void everyConstantHasItsSpecId() {
        for (final Map.Entry<String, Integer> e : SPEC.entrySet()) {
            assertEquals(e.getValue(), Constants.of(BackendRequest.class, e.getKey()), e.getKey());
        }
    }

    @Test
    void noConstantOutsideTheSpecTable() {
        final Map<String, Integer> declared = Constants.all(BackendRequest.class);
        declared.remove("MAX");
        assertEquals(new TreeMap<>(SPEC), declared);
        assertEquals(10, BackendRequest.MAX);
    }

    @Test
    void namesKnownIds() {
        for (final Map.Entry<String, Integer> e : SPEC.entrySet()) {
            assertEquals(e.getKey(), BackendRequest.name(e.getValue()), "id " + e.getValue());
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 11, 12, 255})
    void namesUnknownIds(final int id) {
        assertEquals("UNKNOWN(" + id + ")", BackendRequest.name(id));
    }

    @Test
    void namesNegativeIdsAsUnsigned() {
        assertEquals("UNKNOWN(4294967295)", BackendRequest.name(-1));
    }
}
