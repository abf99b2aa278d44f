package dev.vhostnet.spec.vhostpci;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Version agreement, which ACK status answers which request, numbering of the wire constants. */
class VhostPciConstantsTest {

    @Test
    void wireNumbersAreThoseOfTheSpec() {
        assertEquals(1, VhostPci.HELLO);
        assertEquals(2, VhostPci.MEMORY_INFO);
        assertEquals(3, VhostPci.DEVICE_INFO);
        assertEquals(4, VhostPci.FEATURE_BITS);
        assertEquals(5, VhostPci.PEER_CONNECTION);
        assertEquals(6, VhostPci.DIRTY_PAGE_LOGGING);
        assertEquals(7, VhostPci.HEARTBEAT);
        assertEquals(8, VhostPci.ACK);
        assertEquals(0, VhostPci.ADD_DONE);
        assertEquals(1, VhostPci.ADD_FAIL);
        assertEquals(2, VhostPci.DEL_DONE);
        assertEquals(3, VhostPci.DEL_FAIL);
        assertEquals(4, VhostPci.FEATURE_BITS_ACCEPTED);
        assertEquals(5, VhostPci.DONE);
        assertEquals(6, VhostPci.FAIL);
        assertEquals(128, VhostPci.MAX_FDS);
        assertEquals("DEVICE_INFO", VhostPci.typeName(3));
        assertEquals("UNKNOWN(9)", VhostPci.typeName(9));
        assertEquals("INTERNAL", VhostPci.reasonName(VhostPci.R_INTERNAL));
        assertEquals("DEL_DONE", VhostPci.statusName(VhostPci.DEL_DONE));
    }

    @Test
    void requestsAreEverythingButAckAndHeartbeat() {
        for (int t = VhostPci.MIN_TYPE; t <= VhostPci.MAX_TYPE; t++) {
            assertEquals(t != VhostPci.ACK && t != VhostPci.HEARTBEAT, VhostPci.isRequest(t), VhostPci.typeName(t));
        }
        assertFalse(VhostPci.isRequest(0));
    }

    @Test
    void agreedVersionIsTheHighestCommonOne() {
        assertEquals(1, VhostPci.agreedVersion(1, 1, 1, 1));
        assertEquals(1, VhostPci.agreedVersion(1, 1, 1, 2));
        assertEquals(2, VhostPci.agreedVersion(1, 3, 2, 2));
        assertEquals(3, VhostPci.agreedVersion(1, 3, 2, 5));
        assertEquals(-1, VhostPci.agreedVersion(1, 1, 2, 3), "no overlap");
        assertEquals(-1, VhostPci.agreedVersion(3, 4, 1, 2), "no overlap");
        assertEquals(-1, VhostPci.agreedVersion(2, 1, 1, 2), "empty range");
        assertEquals(-1, VhostPci.agreedVersion(0, 0, 0, 1), "version 0 does not exist");
    }

    @Test
    void statusMustFitTheRequest() {
        assertTrue(VhostPci.statusFits(VhostPci.MEMORY_INFO, VhostPci.OP_ADD, VhostPci.ADD_DONE));
        assertTrue(VhostPci.statusFits(VhostPci.MEMORY_INFO, VhostPci.OP_ADD, VhostPci.ADD_FAIL));
        assertFalse(VhostPci.statusFits(VhostPci.MEMORY_INFO, VhostPci.OP_ADD, VhostPci.DEL_DONE));
        assertTrue(VhostPci.statusFits(VhostPci.DEVICE_INFO, VhostPci.OP_DEL, VhostPci.DEL_DONE));
        assertFalse(VhostPci.statusFits(VhostPci.DEVICE_INFO, VhostPci.OP_DEL, VhostPci.ADD_DONE));
        assertTrue(VhostPci.statusFits(VhostPci.FEATURE_BITS, 0, VhostPci.FEATURE_BITS_ACCEPTED));
        assertFalse(VhostPci.statusFits(VhostPci.FEATURE_BITS, 0, VhostPci.DONE));
        assertTrue(VhostPci.statusFits(VhostPci.HELLO, 0, VhostPci.FAIL));
        assertTrue(VhostPci.statusFits(VhostPci.PEER_CONNECTION, 0, VhostPci.DONE));
        assertFalse(VhostPci.statusFits(VhostPci.HEARTBEAT, 0, VhostPci.DONE));
        assertFalse(VhostPci.statusFits(VhostPci.ACK, 0, VhostPci.DONE));
    }
}
