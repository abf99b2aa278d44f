package dev.vhostnet.spec.vhostpci;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

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

/**
 * DEVICE_INFO: 32-byte fixed part (op, device_type, nvqs, device_id = MAC, features, reserved), then 48-byte
 * queue entries (ADD) or 8-byte queue states (DEL).
 */
class DeviceInfoMessageTest {
    static final long MAC = MacAddress.parse("52:54:00:12:34:56");
    static final long FEATURES = (1L << 32) | (1L << 15) | 1L; // VERSION_1 | MRG_RXBUF | CSUM

    static final byte[] ADD_FIXED_2VQS = bytes(
        0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,   // ADD, net, 2 queues
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00,   // MAC in transmission order
        0x01, 0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,   // features
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);  // reserved
    static final byte[] RX0 = bytes(
        0x00, 0x00, 0x11, 0x00, 0x11, 0x00, 0x00, 0x00,   // index 0, avail 17, used 17, no flags
        0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,   // size 256, split, KICK|CALL, reserved
        0x00, 0x00, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00,   // desc  0x7F0000000000
        0x00, 0x10, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00,   // avail 0x7F0000001000
        0x00, 0x20, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00,   // used  0x7F0000002000
        0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);  // log gpa 0x2000
    static final byte[] TX0_PACKED = bytes(
        0x01, 0x00, 0xFF, 0x00, 0x10, 0x00, 0x06, 0x00,   // index 1, avail 255, used 16, USED_WRAP|LOG
        0x00, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00,   // size 256, packed, CALL only
        0x00, 0x00, 0x01, 0x00, 0x00, 0x7F, 0x00, 0x00,   // desc   0x7F0000010000
        0x00, 0x10, 0x01, 0x00, 0x00, 0x7F, 0x00, 0x00,   // driver 0x7F0000011000
        0x04, 0x10, 0x01, 0x00, 0x00, 0x7F, 0x00, 0x00,   // device 0x7F0000011004
        0x04, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00);  // log gpa 0x11004

    @Test
    void sizes() {
        assertEquals(32, DeviceInfoMessage.HEADER_LENGTH);
        assertEquals(48, VirtqInfo.LENGTH);
        assertEquals(8, VirtqState.LENGTH);
        assertEquals(128, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, 2));
        assertEquals(32, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0));
        assertEquals(48, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 2));
        assertEquals(3104, DeviceInfoMessage.MAX_LENGTH);
        assertEquals(3104, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, VhostPci.MAX_VIRTQUEUES));
        assertTrue(DeviceInfoMessage.MAX_LENGTH <= VhostPci.MAX_PAYLOAD);
    }

    @Test
    void encodesAddWithASplitAndAPackedQueue() {
        final UnsafeBuffer buffer = guarded(128);
        final DeviceInfoMessage m = new DeviceInfoMessage().wrap(buffer, AT);
        m.op(VhostPci.OP_ADD).deviceType(VhostPci.DEVICE_NET).nvqs(2).deviceId(MAC).features(FEATURES);
        m.virtq(0).index(0).lastAvailIdx(17).lastUsedIdx(17).stateFlags(0).size(256).format(VhostPci.FORMAT_SPLIT)
            .fdFlags(VhostPci.FD_KICK | VhostPci.FD_CALL)
            .descAddr(0x7F00_0000_0000L).driverAddr(0x7F00_0000_1000L).deviceAddr(0x7F00_0000_2000L).logAddr(0x2000);
        m.virtq(1).index(1).lastAvailIdx(255).lastUsedIdx(16)
            .stateFlags(VhostPci.STATE_USED_WRAP | VhostPci.STATE_LOG).size(256).format(VhostPci.FORMAT_PACKED)
            .fdFlags(VhostPci.FD_CALL)
            .descAddr(0x7F00_0001_0000L).driverAddr(0x7F00_0001_1000L).deviceAddr(0x7F00_0001_1004L)
            .logAddr(0x1_1004);
        assertEquals(128, m.encodedLength());
        assertEquals(3, m.expectedFds());
        assertLayout(concat(ADD_FIXED_2VQS, RX0, TX0_PACKED), buffer);
    }

    @Test
    void decodesAdd() {
        final DeviceInfoMessage m = new DeviceInfoMessage().wrap(holding(concat(ADD_FIXED_2VQS, RX0, TX0_PACKED)), AT);
        assertEquals(VhostPci.OP_ADD, m.op());
        assertEquals(VhostPci.DEVICE_NET, m.deviceType());
        assertEquals(2, m.nvqs());
        assertEquals("52:54:00:12:34:56", MacAddress.format(m.deviceId()));
        assertEquals(FEATURES, m.features());
        final VirtqInfo tx = m.virtq(1);
        assertEquals(1, tx.index());
        assertEquals(255, tx.lastAvailIdx());
        assertEquals(16, tx.lastUsedIdx());
        assertEquals(VhostPci.STATE_USED_WRAP | VhostPci.STATE_LOG, tx.stateFlags());
        assertEquals(256, tx.size());
        assertEquals(VhostPci.FORMAT_PACKED, tx.format());
        assertFalse(tx.hasKick());
        assertTrue(tx.hasCall());
        assertEquals(1, tx.fdCount());
        assertEquals(0x7F00_0001_0000L, tx.descAddr());
        assertEquals(0x7F00_0001_1000L, tx.driverAddr());
        assertEquals(0x7F00_0001_1004L, tx.deviceAddr());
        assertEquals(0x1_1004L, tx.logAddr());
        assertEquals(3, m.expectedFds());
    }

    @Test
    void aQueueEntryStartsWithTheQueueStateLayout() {
        final UnsafeBuffer buffer = holding(RX0);
        final VirtqState s = new VirtqState().wrap(buffer, AT);
        assertEquals(0, s.index());
        assertEquals(17, s.lastAvailIdx());
        assertEquals(17, s.lastUsedIdx());
        assertEquals(0, s.stateFlags());
    }

    @Test
    void encodesDelFromTheClient() {
        final UnsafeBuffer buffer = guarded(32);
        final DeviceInfoMessage m = new DeviceInfoMessage().wrap(buffer, AT);
        m.op(VhostPci.OP_DEL).deviceType(VhostPci.DEVICE_NET).nvqs(0).deviceId(MAC).features(0);
        assertEquals(32, m.encodedLength());
        assertEquals(0, m.expectedFds());
        assertLayout(bytes(
            0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), buffer);
    }

    @Test
    void encodesDelFromTheDeviceSideWithFinalStates() {
        final UnsafeBuffer buffer = guarded(48);
        final DeviceInfoMessage m = new DeviceInfoMessage().wrap(buffer, AT);
        m.op(VhostPci.OP_DEL).deviceType(VhostPci.DEVICE_NET).nvqs(2).deviceId(MAC).features(0);
        m.state(0).index(0).lastAvailIdx(0x2351).lastUsedIdx(0x2351).stateFlags(0);
        m.state(1).index(1).lastAvailIdx(3).lastUsedIdx(3)
            .stateFlags(VhostPci.STATE_AVAIL_WRAP | VhostPci.STATE_USED_WRAP);
        assertEquals(48, m.encodedLength());
        assertEquals(0, m.expectedFds(), "a DEL carries no fds");
        assertLayout(bytes(
            0x01, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x51, 0x23, 0x51, 0x23, 0x00, 0x00,   // idx 0: avail 9041 used 9041
            0x01, 0x00, 0x03, 0x00, 0x03, 0x00, 0x03, 0x00), buffer); // idx 1: 3 / 3, both wrap counters
        assertTrue(m.state(1).availWrap());
        assertTrue(m.state(1).usedWrap());
    }

    @Test
    void encodesTheLargestAddWith128Fds() {
        final UnsafeBuffer buffer = guarded(DeviceInfoMessage.MAX_LENGTH);
        final DeviceInfoMessage m = new DeviceInfoMessage().wrap(buffer, AT);
        m.op(VhostPci.OP_ADD).deviceType(VhostPci.DEVICE_NET).nvqs(VhostPci.MAX_VIRTQUEUES).deviceId(MAC)
            .features(FEATURES);
        final byte[][] parts = new byte[VhostPci.MAX_VIRTQUEUES + 1][];
        parts[0] = concat(bytes(0x00, 0x00, 0x01, 0x00, 0x40, 0x00, 0x00, 0x00), le64(MAC), le64(FEATURES), le64(0));
        for (int i = 0; i < VhostPci.MAX_VIRTQUEUES; i++) {
            final long base = 0x7F00_0000_0000L + i * 0x10000L;
            m.virtq(i).index(i).lastAvailIdx(i).lastUsedIdx(i).stateFlags(0).size(1024)
                .format(VhostPci.FORMAT_SPLIT).fdFlags(VhostPci.FD_KICK | VhostPci.FD_CALL)
                .descAddr(base).driverAddr(base + 0x4000).deviceAddr(base + 0x5000).logAddr(0);
            parts[i + 1] = concat(le16(i), le16(i), le16(i), bytes(0, 0), le16(1024), bytes(0, 3, 0, 0, 0, 0),
                le64(base), le64(base + 0x4000), le64(base + 0x5000), le64(0));
        }
        assertEquals(3104, m.encodedLength());
        assertEquals(VhostPci.MAX_FDS, m.expectedFds());
        assertLayout(concat(parts), buffer);
        assertEquals(63, m.virtq(63).index());
    }

    @Test
    void macHelpers() {
        assertEquals(0x0000_5634_1200_5452L, MAC);
        assertEquals("52:54:00:12:34:56", MacAddress.format(MAC));
        assertEquals(MAC, MacAddress.parse("52-54-00-12-34-56"));
        assertEquals(MAC, MacAddress.toDeviceId(new byte[] {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}));
        assertEquals(Bytes.hex(bytes(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)), Bytes.hex(MacAddress.fromDeviceId(MAC)));
        assertEquals("ff:fe:00:01:80:7f", MacAddress.format(MacAddress.parse("FF:FE:00:01:80:7F")));
        assertTrue(MacAddress.isValidDeviceId(MAC));
        assertFalse(MacAddress.isValidDeviceId(MAC | (1L << 48)));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            () -> MacAddress.parse("52:54:00:12:34"));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            () -> MacAddress.parse("52:54:00:12:34:5g"));
    }
}
