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
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The 32-byte header (type, version, len, seq, sender UUID in RFC 4122 order) and the HELLO payload. */
class HeaderAndHelloTest {
    static final UUID CLIENT = UUID.fromString("00112233-4455-6677-8899-aabbccddeeff");
    static final byte[] CLIENT_BYTES = bytes(
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF);

    @Test
    void sizes() {
        assertEquals(32, VhostPciHeader.LENGTH);
        assertEquals(32, HelloMessage.LENGTH);
        assertEquals(32, VhostPciHeader.payloadOffset());
    }

    @Test
    void encodesHeader() {
        final UnsafeBuffer buffer = guarded(32);
        final VhostPciHeader h = new VhostPciHeader().wrap(buffer, AT);
        h.type(VhostPci.DEVICE_INFO).version(1).length(0x0C20).seq(0x0102_0304_0506_0708L).sender(CLIENT);
        assertLayout(concat(
            bytes(0x03, 0x00, 0x01, 0x00, 0x20, 0x0C, 0x00, 0x00,
                0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01),
            CLIENT_BYTES), buffer);
    }

    @Test
    void decodesHeaderWithTopBitsSet() {
        final VhostPciHeader h = new VhostPciHeader().wrap(holding(concat(
            bytes(0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF),
            CLIENT_BYTES)), AT);
        assertEquals(0xFFFF, h.type());
        assertEquals(0xFFFE, h.version());
        assertEquals(0xFFFF_FFFFL, h.length(), "msg_len is unsigned");
        assertEquals(-1L, h.seq());
        assertEquals(CLIENT, h.sender());
        assertTrue(h.senderIs(CLIENT));
        assertFalse(h.senderIs(UUID.fromString("00112233-4455-6677-8899-aabbccddeefe")));
        assertEquals(0x0011_2233_4455_6677L, h.senderMsb());
        assertEquals(0x8899_AABB_CCDD_EEFFL, h.senderLsb());
    }

    @Test
    void uuidHelpersUseTextOrder() {
        assertEquals(Bytes.hex(CLIENT_BYTES), Bytes.hex(Uuids.toBytes(CLIENT)));
        final UnsafeBuffer buffer = guarded(16);
        Uuids.put(buffer, AT, CLIENT);
        assertLayout(CLIENT_BYTES, buffer);
        assertEquals(CLIENT, Uuids.get(buffer, AT));
        assertTrue(Uuids.equals(buffer, AT, CLIENT));
    }

    @Test
    void encodesHello() {
        final UnsafeBuffer buffer = guarded(32);
        final HelloMessage hello = new HelloMessage().wrap(buffer, AT);
        hello.role(VhostPci.ROLE_CLIENT).minVersion(1).maxVersion(3)
            .capabilities(VhostPci.CAP_DIRTY_LOG | VhostPci.CAP_PEER_CONNECTION)
            .heartbeatIntervalMs(1000).heartbeatTimeoutMs(5000).maxRegions(32).maxVirtqueues(64);
        assertLayout(bytes(
            0x02, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00,   // role CLIENT, reserved, min 1, max 3, reserved
            0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   // capabilities DIRTY_LOG | PEER_CONNECTION
            0xE8, 0x03, 0x00, 0x00, 0x88, 0x13, 0x00, 0x00,   // 1000 ms, 5000 ms
            0x20, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00), buffer); // 32 regions, 64 queues
    }

    @Test
    void decodesHello() {
        final HelloMessage hello = new HelloMessage().wrap(holding(bytes(
            0x01, 0x00, 0x02, 0x00, 0xFF, 0xFF, 0x00, 0x00,
            0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
            0x10, 0x27, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
            0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00)), AT);
        assertEquals(VhostPci.ROLE_DEVICE, hello.role());
        assertEquals(2, hello.minVersion());
        assertEquals(0xFFFF, hello.maxVersion());
        assertEquals(0x8000_0000_0000_0007L, hello.capabilities());
        assertEquals(10_000, hello.heartbeatIntervalMs());
        assertEquals(0xFFFF_FFFFL, hello.heartbeatTimeoutMs());
        assertEquals(1, hello.maxRegions());
        assertEquals(2, hello.maxVirtqueues());
    }

    /** spec/VHOST-PCI.md §11.1, byte for byte: header and HEARTBEAT PING. */
    @Test
    void encodesThePingOfTheSpecExample() {
        final UnsafeBuffer buffer = guarded(56);
        new VhostPciHeader().<VhostPciHeader>wrap(buffer, AT).type(VhostPci.HEARTBEAT).version(1).length(HeartbeatMessage.LENGTH)
            .seq(5).sender(CLIENT);
        new HeartbeatMessage().<HeartbeatMessage>wrap(buffer, AT + 32).op(VhostPci.PING).pingSeq(0).timestampNs(1_000_000_000L);
        final byte[] expected = concat(
            bytes(0x07, 0x00, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
            CLIENT_BYTES,
            bytes(0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
            bytes(0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
            bytes(0x00, 0xCA, 0x9A, 0x3B, 0x00, 0x00, 0x00, 0x00));
        assertLayout(expected, buffer);
        assertEquals(VhostPciMessages.OK, VhostPciMessages.validate(buffer, AT, expected.length));
    }

    @Test
    void decodesPong() {
        final HeartbeatMessage hb = new HeartbeatMessage().wrap(holding(bytes(
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0xCA, 0x9A, 0x3B, 0x00, 0x00, 0x00, 0x00)), AT);
        assertEquals(VhostPci.PONG, hb.op());
        assertEquals(5, hb.pingSeq());
        assertEquals(1_000_000_000L, hb.timestampNs());
    }
}
