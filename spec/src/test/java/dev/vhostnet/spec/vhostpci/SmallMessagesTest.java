package dev.vhostnet.spec.vhostpci;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import static dev.vhostnet.spec.vhostpci.Bytes.AT;
import static dev.vhostnet.spec.vhostpci.Bytes.assertLayout;
import static dev.vhostnet.spec.vhostpci.Bytes.bytes;
import static dev.vhostnet.spec.vhostpci.Bytes.guarded;
import static dev.vhostnet.spec.vhostpci.Bytes.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** FEATURE_BITS (16), PEER_CONNECTION (8), DIRTY_PAGE_LOGGING (24), HEARTBEAT (24). */
class SmallMessagesTest {

    @Test
    void sizes() {
        assertEquals(16, FeatureBitsMessage.LENGTH);
        assertEquals(8, PeerConnectionMessage.LENGTH);
        assertEquals(24, DirtyPageLoggingMessage.LENGTH);
        assertEquals(24, HeartbeatMessage.LENGTH);
    }

    @Test
    void encodesFeatureBits() {
        final UnsafeBuffer buffer = guarded(16);
        final FeatureBitsMessage m = new FeatureBitsMessage().wrap(buffer, AT);
        m.features(0x0000_0001_0001_8003L).flags(VhostPci.FEATURES_NEGOTIATED);
        assertLayout(bytes(
            0x03, 0x80, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
        assertTrue(m.negotiated());
    }

    @Test
    void decodesAProbe() {
        final FeatureBitsMessage m = new FeatureBitsMessage().wrap(holding(bytes(
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)), AT);
        assertEquals(-1L, m.features());
        assertFalse(m.negotiated());
    }

    @Test
    void encodesPeerConnection() {
        final UnsafeBuffer buffer = guarded(8);
        final PeerConnectionMessage m = new PeerConnectionMessage().wrap(buffer, AT);
        m.state(VhostPci.CONNECTION_ON);
        assertLayout(bytes(0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
        m.state(VhostPci.CONNECTION_OFF);
        assertLayout(bytes(0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void encodesDirtyPageLoggingStartAndStop() {
        final UnsafeBuffer buffer = guarded(24);
        final DirtyPageLoggingMessage m = new DirtyPageLoggingMessage().wrap(buffer, AT);
        m.op(VhostPci.LOG_START).logSize(0x1_0000).mmapOffset(0x2000);
        assertEquals(1, m.expectedFds());
        assertLayout(bytes(
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
        m.op(VhostPci.LOG_STOP).logSize(0).mmapOffset(0);
        assertEquals(0, m.expectedFds());
        assertLayout(new byte[24], buffer);
    }

    @Test
    void encodesPong() {
        final UnsafeBuffer buffer = guarded(24);
        new HeartbeatMessage().<HeartbeatMessage>wrap(buffer, AT).op(VhostPci.PONG).pingSeq(0x1234).timestampNs(0x0102_0304_0506_0708L);
        assertLayout(bytes(
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x34, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01), buffer);
    }
}
