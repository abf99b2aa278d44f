package dev.vhostnet.spec.vhostpci;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.UUID;

import static dev.vhostnet.spec.vhostpci.Bytes.AT;
import static dev.vhostnet.spec.vhostpci.Bytes.bytes;
import static dev.vhostnet.spec.vhostpci.Bytes.concat;
import static dev.vhostnet.spec.vhostpci.Bytes.holding;
import static dev.vhostnet.spec.vhostpci.Bytes.le16;
import static dev.vhostnet.spec.vhostpci.Bytes.le32;
import static dev.vhostnet.spec.vhostpci.Bytes.le64;
import static dev.vhostnet.spec.vhostpci.Bytes.repeat;
import static dev.vhostnet.spec.vhostpci.Bytes.zeros;
import static dev.vhostnet.spec.vhostpci.VhostPciMessages.ERR_BAD_COUNT;
import static dev.vhostnet.spec.vhostpci.VhostPciMessages.ERR_BAD_LENGTH;
import static dev.vhostnet.spec.vhostpci.VhostPciMessages.ERR_BAD_OP;
import static dev.vhostnet.spec.vhostpci.VhostPciMessages.ERR_SHORT_HEADER;
import static dev.vhostnet.spec.vhostpci.VhostPciMessages.ERR_TOO_LONG;
import static dev.vhostnet.spec.vhostpci.VhostPciMessages.ERR_TRUNCATED;
import static dev.vhostnet.spec.vhostpci.VhostPciMessages.ERR_UNKNOWN_TYPE;
import static dev.vhostnet.spec.vhostpci.VhostPciMessages.OK;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** §5.9 of spec/VHOST-PCI.md on hand-written whole messages (header + payload), good and malformed. */
class VhostPciMessagesTest {
    static final UUID SENDER = UUID.fromString("00112233-4455-6677-8899-aabbccddeeff");

    /** A whole message: 32-byte header (version 1, seq 1) + payload, msg_len = payload length. */
    static byte[] message(final int type, final byte[] payload) {
        return message(type, payload.length, payload);
    }

    static byte[] message(final int type, final long msgLen, final byte[] payload) {
        return concat(le16(type), le16(1), le32(msgLen), le64(1), Uuids.toBytes(SENDER), payload);
    }

    static int validate(final byte[] message) {
        return VhostPciMessages.validate(holding(message), AT, message.length);
    }

    static byte[] memoryInfo(final int op, final int nregions, final int regionsSent) {
        return concat(le16(op), le16(0), le32(nregions), zeros(32 * regionsSent));
    }

    static byte[] vq(final int index, final int fdFlags) {
        return concat(le16(index), zeros(6), le16(256), bytes(0, fdFlags), zeros(36));
    }

    static byte[] deviceInfo(final int op, final long nvqs, final byte[] entries) {
        return concat(le16(op), le16(VhostPci.DEVICE_NET), le32(nvqs), le64(0x5634_1200_5452L), le64(1L << 32),
            zeros(8), entries);
    }

    static byte[] ack(final int status, final long nvqs, final int statesSent) {
        return concat(le64(3), le16(VhostPci.DEVICE_INFO), le16(status), le32(0), le64(0), le32(nvqs), le32(0),
            zeros(8 * statesSent));
    }

    @Test
    void wellFormedMessagesOfEveryType() {
        assertEquals(OK, validate(message(VhostPci.HELLO, zeros(32))));
        assertEquals(OK, validate(message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_ADD, 2, 2))));
        assertEquals(OK, validate(message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_DEL, 1, 1))));
        assertEquals(OK, validate(message(VhostPci.DEVICE_INFO,
            deviceInfo(VhostPci.OP_ADD, 2, concat(vq(0, 3), vq(1, 3))))));
        assertEquals(OK, validate(message(VhostPci.DEVICE_INFO, deviceInfo(VhostPci.OP_DEL, 0, zeros(0)))));
        assertEquals(OK, validate(message(VhostPci.DEVICE_INFO, deviceInfo(VhostPci.OP_DEL, 2, zeros(16)))));
        assertEquals(OK, validate(message(VhostPci.FEATURE_BITS, zeros(16))));
        assertEquals(OK, validate(message(VhostPci.PEER_CONNECTION, concat(le16(1), zeros(6)))));
        assertEquals(OK, validate(message(VhostPci.DIRTY_PAGE_LOGGING, concat(le16(1), zeros(22)))));
        assertEquals(OK, validate(message(VhostPci.HEARTBEAT, concat(le16(1), zeros(22)))));
        assertEquals(OK, validate(message(VhostPci.ACK, ack(VhostPci.ADD_DONE, 0, 0))));
        assertEquals(OK, validate(message(VhostPci.ACK, ack(VhostPci.DEL_DONE, 2, 2))));
    }

    @Test
    void largestMessagesAreValid() {
        final byte[] mem = message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_ADD, 32, 32));
        assertEquals(32 + 1032, mem.length);
        assertEquals(OK, validate(mem));
        final byte[] dev = message(VhostPci.DEVICE_INFO, deviceInfo(VhostPci.OP_ADD, 64, repeat(vq(0, 3), 64)));
        assertEquals(32 + 3104, dev.length);
        assertEquals(OK, validate(dev));
        assertEquals(128, VhostPciMessages.expectedFds(VhostPci.DEVICE_INFO, holding(dev), AT + 32));
        final byte[] ack = message(VhostPci.ACK, ack(VhostPci.DEL_DONE, 64, 64));
        assertEquals(32 + 544, ack.length);
        assertEquals(OK, validate(ack));
    }

    @Test
    void helloMayGrowButNotShrink() {
        assertEquals(OK, validate(message(VhostPci.HELLO, zeros(48))), "a later version appends fields");
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.HELLO, zeros(31))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.HELLO, zeros(0))));
    }

    @Test
    void incompleteHeader() {
        assertEquals(ERR_SHORT_HEADER, VhostPciMessages.validate(holding(zeros(31)), AT, 31));
        assertEquals(ERR_SHORT_HEADER, VhostPciMessages.validate(holding(zeros(0)), AT, 0));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 9, 0x80, 0xFFFF})
    void unknownTypes(final int type) {
        assertEquals(ERR_UNKNOWN_TYPE, validate(message(type, zeros(16))));
    }

    @Test
    void payloadLongerThanTheLimitIsRefusedFromTheHeaderAlone() {
        final byte[] header = message(VhostPci.DEVICE_INFO, VhostPci.MAX_PAYLOAD + 1, zeros(0));
        assertEquals(ERR_TOO_LONG, VhostPciMessages.validateHeader(holding(header), AT));
        assertEquals(ERR_TOO_LONG, validate(header));
        assertEquals(ERR_TOO_LONG, validate(message(VhostPci.ACK, 0xFFFF_FFFFL, zeros(0))));
        assertEquals(OK, VhostPciMessages.validateHeader(
            holding(message(VhostPci.DEVICE_INFO, VhostPci.MAX_PAYLOAD, zeros(0))), AT));
    }

    @Test
    void payloadShorterThanAnnounced() {
        final byte[] m = message(VhostPci.FEATURE_BITS, 16, zeros(15));
        assertEquals(ERR_TRUNCATED, validate(m));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 7, 15, 17, 24})
    void featureBitsOfTheWrongLength(final int len) {
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.FEATURE_BITS, zeros(len))));
    }

    @Test
    void fixedSizeMessagesOfTheWrongLength() {
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.PEER_CONNECTION, zeros(7))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.PEER_CONNECTION, zeros(9))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.HEARTBEAT, zeros(23))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.HEARTBEAT, zeros(32))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.DIRTY_PAGE_LOGGING, zeros(16))));
    }

    @Test
    void memoryInfoLengthMustMatchItsRegionCount() {
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_ADD, 2, 1))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_ADD, 1, 2))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.MEMORY_INFO,
            concat(memoryInfo(VhostPci.OP_ADD, 1, 1), zeros(1)))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.MEMORY_INFO, zeros(7))), "fixed part incomplete");
        assertEquals(ERR_BAD_COUNT, validate(message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_ADD, 0, 0))));
        assertEquals(ERR_BAD_COUNT, validate(message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_ADD, 33, 33))));
        assertEquals(ERR_BAD_COUNT, validate(message(VhostPci.MEMORY_INFO,
            concat(le16(0), le16(0), le32(0xFFFF_FFFFL), zeros(32)))), "a huge count is refused, not multiplied");
        assertEquals(ERR_BAD_OP, validate(message(VhostPci.MEMORY_INFO, memoryInfo(2, 1, 1))));
    }

    @Test
    void deviceInfoLengthMustMatchOpAndQueueCount() {
        // an ADD's entries are 48 bytes, a DEL's 8
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.DEVICE_INFO, deviceInfo(VhostPci.OP_ADD, 2, zeros(16)))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.DEVICE_INFO, deviceInfo(VhostPci.OP_DEL, 2, zeros(96)))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.DEVICE_INFO,
            deviceInfo(VhostPci.OP_ADD, 1, concat(vq(0, 3), zeros(1))))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.DEVICE_INFO, zeros(31))));
        assertEquals(ERR_BAD_COUNT, validate(message(VhostPci.DEVICE_INFO, deviceInfo(VhostPci.OP_ADD, 0, zeros(0)))),
            "an ADD needs a queue");
        assertEquals(ERR_BAD_COUNT, validate(message(VhostPci.DEVICE_INFO,
            deviceInfo(VhostPci.OP_ADD, 65, repeat(vq(0, 3), 65)))));
        assertEquals(ERR_BAD_COUNT, validate(message(VhostPci.DEVICE_INFO,
            deviceInfo(VhostPci.OP_DEL, 0x8000_0000L, zeros(0)))));
        assertEquals(ERR_BAD_OP, validate(message(VhostPci.DEVICE_INFO, deviceInfo(7, 1, vq(0, 3)))));
    }

    @Test
    void ackLengthMustMatchItsStateCount() {
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.ACK, ack(VhostPci.DEL_DONE, 2, 1))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.ACK, ack(VhostPci.DEL_DONE, 0, 1))));
        assertEquals(ERR_BAD_LENGTH, validate(message(VhostPci.ACK, zeros(24))));
        assertEquals(ERR_BAD_COUNT, validate(message(VhostPci.ACK, ack(VhostPci.DEL_DONE, 65, 65))));
        assertEquals(ERR_BAD_OP, validate(message(VhostPci.ACK, ack(7, 0, 0))), "status 7 is undefined");
    }

    @Test
    void undefinedOpsOfTwoValuedMessages() {
        assertEquals(ERR_BAD_OP, validate(message(VhostPci.PEER_CONNECTION, concat(le16(2), zeros(6)))));
        assertEquals(ERR_BAD_OP, validate(message(VhostPci.DIRTY_PAGE_LOGGING, concat(le16(2), zeros(22)))));
        assertEquals(ERR_BAD_OP, validate(message(VhostPci.HEARTBEAT, concat(le16(0xFFFF), zeros(22)))));
    }

    @Test
    void lengthForReadsOnlyTheFixedPart() {
        final UnsafeBuffer b = holding(concat(le16(VhostPci.OP_ADD), le16(0), le32(3)));
        assertEquals(104, VhostPciMessages.lengthFor(VhostPci.MEMORY_INFO, b, AT, 8));
        assertEquals(ERR_BAD_LENGTH, VhostPciMessages.lengthFor(VhostPci.MEMORY_INFO, b, AT, 4));
        assertEquals(16, VhostPciMessages.lengthFor(VhostPci.FEATURE_BITS, b, AT, 0));
        assertEquals(ERR_UNKNOWN_TYPE, VhostPciMessages.lengthFor(0, b, AT, 8));
    }

    @Test
    void expectedFds() {
        final byte[] dev = message(VhostPci.DEVICE_INFO,
            deviceInfo(VhostPci.OP_ADD, 3, concat(vq(0, VhostPci.FD_KICK | VhostPci.FD_CALL), vq(1, VhostPci.FD_CALL),
                vq(2, 0xFC)))); // undefined fd_flags bits do not count
        assertEquals(OK, validate(dev));
        assertEquals(3, VhostPciMessages.expectedFds(VhostPci.DEVICE_INFO, holding(dev), AT + 32));
        assertEquals(0, VhostPciMessages.expectedFds(VhostPci.DEVICE_INFO,
            holding(message(VhostPci.DEVICE_INFO, deviceInfo(VhostPci.OP_DEL, 0, zeros(0)))), AT + 32));
        assertEquals(5, VhostPciMessages.expectedFds(VhostPci.MEMORY_INFO,
            holding(message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_ADD, 5, 5))), AT + 32));
        assertEquals(0, VhostPciMessages.expectedFds(VhostPci.MEMORY_INFO,
            holding(message(VhostPci.MEMORY_INFO, memoryInfo(VhostPci.OP_DEL, 5, 5))), AT + 32));
        assertEquals(1, VhostPciMessages.expectedFds(VhostPci.DIRTY_PAGE_LOGGING,
            holding(message(VhostPci.DIRTY_PAGE_LOGGING, concat(le16(1), zeros(22)))), AT + 32));
        assertEquals(0, VhostPciMessages.expectedFds(VhostPci.DIRTY_PAGE_LOGGING,
            holding(message(VhostPci.DIRTY_PAGE_LOGGING, concat(le16(0), zeros(22)))), AT + 32));
        assertEquals(0, VhostPciMessages.expectedFds(VhostPci.HELLO, holding(message(VhostPci.HELLO, zeros(32))), AT + 32));
    }
}
