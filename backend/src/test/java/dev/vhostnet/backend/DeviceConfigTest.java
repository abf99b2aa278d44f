package dev.vhostnet.backend;

import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.ConfigMessage;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.VhostUserHeader;
import dev.vhostnet.spec.VirtioDeviceStatus;
import dev.vhostnet.spec.VirtioNetConfig;
import dev.vhostnet.spec.VirtioNetFeature;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;

import static dev.vhostnet.frontend.VirtioNetDriver.RX;
import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Config space, MTU, device status, RESET_DEVICE and SEND_RARP. */
class DeviceConfigTest {
    private static final Duration WAIT = Duration.ofSeconds(5);

    @TempDir
    Path dir;
    private InProcessBackend backend;

    @BeforeEach
    void startBackend() throws Exception {
        backend = InProcessBackend.peered(dir);
    }

    @AfterEach
    void stopBackend() {
        backend.close();
    }

    private static VirtioNetConfig config(final byte[] bytes) {
        return new VirtioNetConfig().wrap(new UnsafeBuffer(bytes), 0);
    }

    @Test
    void configSpaceReportsMacLinkUpOnePairAndMtu() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            final VirtioNetConfig c = config(s.fe.getConfig(0, VirtioNetConfig.LENGTH));
            for (int i = 0; i < 6; i++) {
                assertEquals(InProcessBackend.MAC_A[i] & 0xFF, c.macByte(i), "mac byte " + i);
            }
            assertEquals(VirtioNetFeature.S_LINK_UP, c.status() & VirtioNetFeature.S_LINK_UP);
            assertEquals(1, c.maxVirtqueuePairs());
            assertEquals(NetDeviceConfig.DEFAULT_MTU, c.mtu());
            // A window into the middle: just the MTU field.
            final byte[] mtu = s.fe.getConfig(VirtioNetConfig.MTU_OFFSET, 2);
            assertEquals(NetDeviceConfig.DEFAULT_MTU, (mtu[0] & 0xFF) | (mtu[1] & 0xFF) << 8);
        }
    }

    @Test
    void netSetMtuShowsInConfigSpaceAndIsRangeChecked() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            s.fe.netSetMtu(9000);
            assertEquals(9000, config(s.fe.getConfig(0, VirtioNetConfig.LENGTH)).mtu());
            assertNotEquals(0, s.fe.ack(FrontendRequest.NET_SET_MTU, VhostUserFrontend.u64(67)));
            assertNotEquals(0, s.fe.ack(FrontendRequest.NET_SET_MTU, VhostUserFrontend.u64(65536)));
            assertEquals(9000, config(s.fe.getConfig(0, VirtioNetConfig.LENGTH)).mtu());
        }
    }

    @Test
    void setConfigWritesOnlyTheMac() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            final byte[] mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
            s.fe.setConfig(0, mac);
            assertArrayEquals(mac, s.fe.getConfig(0, 6));
            s.fe.netSetMtu(1400); // QEMU sends the MTU at device start, after the guest may have set a MAC
            assertArrayEquals(mac, s.fe.getConfig(0, 6), "NET_SET_MTU must not reset a MAC the driver set");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_CONFIG,
                VhostUserFrontend.configPayload(VirtioNetConfig.STATUS_OFFSET, new byte[2])), "status is read-only");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_CONFIG, VhostUserFrontend.configPayload(250, new byte[8])),
                "beyond the config space");
            final byte[] lying = VhostUserFrontend.configPayload(0, new byte[6]);
            new ConfigMessage().<ConfigMessage>wrap(new UnsafeBuffer(lying), 0).size(4);
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_CONFIG, lying), "size field disagrees with the payload");
            assertArrayEquals(mac, s.fe.getConfig(0, 6));
        }
    }

    @Test
    void getConfigOutsideTheSpaceClosesTheConnection() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            final byte[] payload = new byte[ConfigMessage.HEADER_LENGTH + 16];
            new ConfigMessage().<ConfigMessage>wrap(new UnsafeBuffer(payload), 0).configOffset(ConfigMessage.MAX_CONFIG_SIZE - 8).size(16);
            s.fe.send(FrontendRequest.GET_CONFIG, VhostUserHeader.VERSION, payload);
            assertTrue(s.fe.awaitClosed(WAIT), "a GET_* that cannot be answered ends the connection");
        }
    }

    @Test
    void configRequestsNeedTheConfigProtocolFeature() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            s.fe.setProtocolFeatures(ProtocolFeature.bit(ProtocolFeature.REPLY_ACK));
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_CONFIG, VhostUserFrontend.configPayload(0, new byte[6])));
            assertNotEquals(0, s.fe.ack(FrontendRequest.NET_SET_MTU, VhostUserFrontend.u64(1500)), "needs MTU");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_STATUS, VhostUserFrontend.u64(1)), "needs STATUS");
            assertNotEquals(0, s.fe.ack(FrontendRequest.RESET_DEVICE, new byte[0]), "needs RESET_DEVICE");
            assertNotEquals(0, s.fe.ack(FrontendRequest.SEND_RARP, VhostUserFrontend.u64(0)), "needs RARP");
            assertTrue(s.alive());
        }
    }

    @Test
    void statusIsStoredAndZeroResetsTheDevice() throws Exception {
        try (VirtioNetDriver a = backend.start(0)) {
            final long ok = VirtioDeviceStatus.ACKNOWLEDGE | VirtioDeviceStatus.DRIVER | VirtioDeviceStatus.FEATURES_OK
                | VirtioDeviceStatus.DRIVER_OK;
            a.frontend().setStatus(ok);
            assertEquals(ok, a.frontend().getStatus());
            assertNotEquals(0, a.frontend().ack(FrontendRequest.SET_STATUS, VhostUserFrontend.u64(0x100)));
            assertEquals(ok, a.frontend().getStatus());
            assertTrue(backend.queue(0, TX).isRunning());
            a.frontend().setStatus(0);
            assertEquals(0, a.frontend().getStatus());
            assertFalse(backend.queue(0, TX).isStarted(), "status 0 is a device reset");
            assertEquals(0, backend.port(0).features());
        }
    }

    @Test
    void resetDeviceStopsTheRingsAndTheDriverCanStartAgain() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(8, 2048);
            final byte[] before = Frames.frame(100, 1);
            a.send(before);
            assertArrayEquals(before, b.receive(WAIT));
            assertTrue(a.awaitTxDone(WAIT));
            final long openBefore = OpenFds.count();
            a.frontend().resetDevice();
            assertFalse(backend.queue(0, TX).isStarted() || backend.queue(0, RX).isStarted());
            // The device closed its copies of the ring eventfds: the same number of fds, minus those four.
            OpenFds.awaitBackTo(openBefore - 4, "reset closes kick and call fds");

            a.frontend().setFeatures(a.features());
            a.frontend().setMemTable(a.memoryTable());
            a.tx().resetIndexes(0);
            a.rx().resetIndexes(0);
            a.setUpRing(a.rx());
            a.setUpRing(a.tx());
            a.enableRings(true);
            final byte[] after = Frames.frame(100, 2);
            a.send(after);
            assertArrayEquals(after, b.receive(WAIT));
        }
    }

    @Test
    void sendRarpAnnouncesTheMacToThePeer() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            b.postRxBuffers(4, 2048);
            final byte[] mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
            a.frontend().sendRarp(mac);
            final byte[] f = b.receive(WAIT);
            assertNotNull(f, "the peer receives the announcement");
            assertEquals(60, f.length);
            final byte[] broadcast = new byte[6];
            Arrays.fill(broadcast, (byte) 0xFF);
            assertArrayEquals(broadcast, Arrays.copyOfRange(f, 0, 6), "destination");
            assertArrayEquals(mac, Arrays.copyOfRange(f, 6, 12), "source");
            assertEquals(0x8035, (f[12] & 0xFF) << 8 | (f[13] & 0xFF), "EtherType RARP");
            assertEquals(3, (f[20] & 0xFF) << 8 | (f[21] & 0xFF), "opcode: request reverse");
            assertArrayEquals(mac, Arrays.copyOfRange(f, 22, 28), "sender hardware address");
            assertArrayEquals(mac, Arrays.copyOfRange(f, 32, 38), "target hardware address");
            backend.awaitCounter(1, RX, dev.vhostnet.dataplane.virtq.QueueCounters.PACKETS, 1);
        }
    }

    @Test
    void sendRarpWithoutAReadyPeerIsHarmless() throws Exception {
        try (VirtioNetDriver a = backend.start(0)) {
            final long dropsBefore = backend.txDrops(0);
            a.frontend().sendRarp(InProcessBackend.MAC_A);
            // Port 1 has no front-end: the announcement is dropped, and counted as exactly one drop.
            backend.awaitCounter(0, 1, dev.vhostnet.dataplane.virtq.QueueCounters.DROPS, dropsBefore + 1);
            assertNotEquals(0L, a.frontend().getFeatures(), "connection still served");
        }
    }
}
