package dev.vhostnet.spec.vhostpci;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import java.util.UUID;

import static dev.vhostnet.spec.vhostpci.Bytes.AT;
import static dev.vhostnet.spec.vhostpci.Bytes.assertLayout;
import static dev.vhostnet.spec.vhostpci.Bytes.bytes;
import static dev.vhostnet.spec.vhostpci.Bytes.concat;
import static dev.vhostnet.spec.vhostpci.Bytes.guarded;
import static dev.vhostnet.spec.vhostpci.Bytes.holding;
import static dev.vhostnet.spec.vhostpci.Bytes.le16;
import static dev.vhostnet.spec.vhostpci.Bytes.le64;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ACK: acked_seq, acked_type, status, reason, value, nvqs, reserved (32 bytes) + 8-byte queue states. */
class AckMessageTest {
    static final UUID DEVICE = UUID.fromString("f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f");

    @Test
    void sizes() {
        assertEquals(32, AckMessage.HEADER_LENGTH);
        assertEquals(48, AckMessage.lengthFor(2));
        assertEquals(544, AckMessage.MAX_LENGTH);
    }

    /** spec/VHOST-PCI.md §11.2: the device side's 7th message answers the client's request 4 first. */
    @Test
    void encodesTheOutOfOrderAckOfTheSpecExample() {
        final UnsafeBuffer buffer = guarded(64);
        new VhostPciHeader().<VhostPciHeader>wrap(buffer, AT).type(VhostPci.ACK).version(1).length(32).seq(7).sender(DEVICE);
        new AckMessage().<AckMessage>wrap(buffer, AT + 32).ackedSeq(4).ackedType(VhostPci.MEMORY_INFO).status(VhostPci.ADD_DONE)
            .reason(VhostPci.R_NONE).value(0).nvqs(0);
        final byte[] expected = concat(
            bytes(0x08, 0x00, 0x01, 0x00, 0x20, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
            Uuids.toBytes(DEVICE),
            bytes(0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
            bytes(0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00));
        assertLayout(expected, buffer);
        assertEquals(VhostPciMessages.OK, VhostPciMessages.validate(buffer, AT, expected.length));
    }

    @Test
    void encodesFeatureBitsAccepted() {
        final UnsafeBuffer buffer = guarded(32);
        new AckMessage().<AckMessage>wrap(buffer, AT).ackedSeq(0x1_0000_0000L).ackedType(VhostPci.FEATURE_BITS)
            .status(VhostPci.FEATURE_BITS_ACCEPTED).reason(0).value(0x0000_0001_0000_0001L).nvqs(0);
        assertLayout(bytes(
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void decodesAHelloVersionRefusal() {
        final AckMessage ack = new AckMessage().wrap(holding(bytes(
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   // acked seq 1
            0x01, 0x00, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00,   // HELLO, FAIL, VERSION_UNSUPPORTED
            0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,   // refusing side speaks 2..3
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)), AT);
        assertEquals(1, ack.ackedSeq());
        assertEquals(VhostPci.HELLO, ack.ackedType());
        assertEquals(VhostPci.FAIL, ack.status());
        assertEquals(VhostPci.R_VERSION_UNSUPPORTED, ack.reason());
        assertEquals(2, ack.value() & 0xFFFF);
        assertEquals(3, ack.value() >>> 16);
        assertFalse(ack.success());
        assertEquals("VERSION_UNSUPPORTED", VhostPci.reasonName(ack.reason()));
    }

    @Test
    void encodesDelDoneWithFinalStates() {
        final UnsafeBuffer buffer = guarded(48);
        final AckMessage ack = new AckMessage().wrap(buffer, AT);
        ack.ackedSeq(40).ackedType(VhostPci.DEVICE_INFO).status(VhostPci.DEL_DONE).reason(0).value(0).nvqs(2);
        ack.state(0).index(0).lastAvailIdx(9041).lastUsedIdx(9041).stateFlags(0);
        ack.state(1).index(1).lastAvailIdx(700).lastUsedIdx(700).stateFlags(0);
        assertEquals(48, ack.encodedLength());
        assertTrue(ack.success());
        assertLayout(bytes(
            0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x51, 0x23, 0x51, 0x23, 0x00, 0x00,
            0x01, 0x00, 0xBC, 0x02, 0xBC, 0x02, 0x00, 0x00), buffer);
    }

    @Test
    void encodesTheLargestDelDone() {
        final UnsafeBuffer buffer = guarded(AckMessage.MAX_LENGTH);
        final AckMessage ack = new AckMessage().wrap(buffer, AT);
        ack.ackedSeq(9).ackedType(VhostPci.DEVICE_INFO).status(VhostPci.DEL_DONE).reason(0).value(0)
            .nvqs(VhostPci.MAX_VIRTQUEUES);
        final byte[][] parts = new byte[VhostPci.MAX_VIRTQUEUES + 1][];
        parts[0] = concat(le64(9), bytes(0x03, 0x00, 0x02, 0x00, 0, 0, 0, 0), le64(0), bytes(0x40, 0, 0, 0, 0, 0, 0, 0));
        for (int i = 0; i < VhostPci.MAX_VIRTQUEUES; i++) {
            ack.state(i).index(i).lastAvailIdx(0xFFFF - i).lastUsedIdx(0xFFFF - i).stateFlags(0);
            parts[i + 1] = concat(le16(i), le16(0xFFFF - i), le16(0xFFFF - i), bytes(0, 0));
        }
        assertEquals(544, ack.encodedLength());
        assertLayout(concat(parts), buffer);
        assertEquals(0xFFFF - 63, ack.state(63).lastAvailIdx());
    }
}
