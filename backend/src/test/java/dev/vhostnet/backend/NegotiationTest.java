package dev.vhostnet.backend;

import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.VhostUserHeader;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Feature and protocol-feature negotiation, ownership, REPLY_ACK, and what ends a connection. */
class NegotiationTest {
    private static final Duration CLOSE_WAIT = Duration.ofSeconds(5);

    @TempDir
    Path dir;
    private InProcessBackend backend;

    @BeforeEach
    void startBackend() throws Exception {
        backend = InProcessBackend.single(dir);
    }

    @AfterEach
    void stopBackend() {
        backend.close();
    }

    @Test
    void getFeaturesOffersExactlyWhatTheDataplaneImplements() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            final long offered = s.fe.getFeatures();
            assertEquals(NetDeviceConfig.OFFERED_FEATURES, offered);
            assertTrue(VirtioFeature.has(offered, VirtioFeature.VERSION_1));
            assertTrue(VirtioFeature.has(offered, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES));
            assertTrue(VirtioFeature.has(offered, VirtioNetFeature.MRG_RXBUF));
        }
    }

    @Test
    void setFeaturesAcceptsOfferedBits() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            assertEquals(0, s.fe.ack(FrontendRequest.SET_FEATURES, VhostUserFrontend.u64(NetDeviceConfig.OFFERED_FEATURES)));
        }
    }

    @Test
    void setFeaturesRejectsAnUnofferedBitWithAFailureAck() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            final long ufo = RawSession.BASE_FEATURES | VirtioFeature.bit(VirtioNetFeature.HOST_UFO);
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_FEATURES, VhostUserFrontend.u64(ufo)));
            final long rss = RawSession.BASE_FEATURES | VirtioFeature.bit(VirtioNetFeature.RSS);
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_FEATURES, VhostUserFrontend.u64(rss)));
            assertTrue(s.alive(), "a rejected request with REPLY_ACK keeps the connection");
        }
    }

    @Test
    void setFeaturesWithAnUnofferedBitClosesTheConnectionWithoutReplyAck() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            s.fe.setFeatures(VirtioFeature.bit(VirtioNetFeature.CTRL_VQ));
            assertTrue(s.fe.awaitClosed(CLOSE_WAIT));
        }
    }

    @Test
    void protocolFeaturesOfferedAndUnofferedRejected() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            assertEquals(NetDeviceConfig.OFFERED_PROTOCOL_FEATURES, s.fe.getProtocolFeatures());
            s.fe.setProtocolFeatures(ProtocolFeature.bit(ProtocolFeature.REPLY_ACK));
            final long inband = ProtocolFeature.bit(ProtocolFeature.REPLY_ACK) | ProtocolFeature.bit(ProtocolFeature.INBAND_NOTIFICATIONS);
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_PROTOCOL_FEATURES, VhostUserFrontend.u64(inband)));
            assertTrue(s.alive());
        }
    }

    @Test
    void replyAckIsZeroOnSuccessAndOnlyHonouredOnceNegotiated() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            // NEED_REPLY before REPLY_ACK was negotiated: no ack, so the next reply read is GET_FEATURES'.
            s.fe.send(FrontendRequest.SET_OWNER, VhostUserHeader.VERSION | VhostUserHeader.FLAG_NEED_REPLY, new byte[0]);
            assertEquals(NetDeviceConfig.OFFERED_FEATURES, s.fe.getFeatures());
            s.fe.setProtocolFeatures(ProtocolFeature.bit(ProtocolFeature.REPLY_ACK));
            assertEquals(0, s.fe.ack(FrontendRequest.SET_OWNER, new byte[0]));
            assertEquals(0, s.fe.ack(FrontendRequest.SET_FEATURES, VhostUserFrontend.u64(RawSession.BASE_FEATURES)));
            // A request with its own reply answers with that reply only, never an extra ack.
            final VhostUserFrontend.Reply reply = s.fe.call(FrontendRequest.GET_PROTOCOL_FEATURES, new byte[0]);
            assertEquals(NetDeviceConfig.OFFERED_PROTOCOL_FEATURES, reply.u64());
            assertEquals(NetDeviceConfig.OFFERED_FEATURES, s.fe.getFeatures());
        }
    }

    @Test
    void setOwnerTakesNoPayload() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            assertEquals(0, s.fe.ack(FrontendRequest.SET_OWNER, new byte[0]));
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_OWNER, new byte[8]));
        }
    }

    @Test
    void getQueueNumNeedsMqAndReportsOnePair() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            s.fe.setProtocolFeatures(ProtocolFeature.bit(ProtocolFeature.MQ));
            assertEquals(1, s.fe.getQueueNum());
        }
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            s.fe.send(FrontendRequest.GET_QUEUE_NUM, VhostUserHeader.VERSION, new byte[0]);
            assertTrue(s.fe.awaitClosed(CLOSE_WAIT), "GET_QUEUE_NUM without MQ cannot be answered");
        }
    }

    @Test
    void setVringEnableNeedsProtocolFeaturesAndABoolean() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            s.fe.setProtocolFeatures(ProtocolFeature.bit(ProtocolFeature.REPLY_ACK));
            s.fe.setFeatures(VirtioFeature.bit(VirtioFeature.VERSION_1)); // without VHOST_USER_F_PROTOCOL_FEATURES
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_ENABLE, VhostUserFrontend.vringState(0, 1)));
            s.fe.setFeatures(RawSession.BASE_FEATURES);
            assertEquals(0, s.fe.ack(FrontendRequest.SET_VRING_ENABLE, VhostUserFrontend.vringState(0, 1)));
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_ENABLE, VhostUserFrontend.vringState(0, 2)));
            assertNotEquals(0, s.fe.ack(FrontendRequest.SET_VRING_ENABLE, VhostUserFrontend.vringState(2, 1)));
        }
    }

    @Test
    void rejectedRequestsThrowThroughTheTypedApi() throws Exception {
        try (RawSession s = RawSession.negotiated(backend.socket(0))) {
            final VhostUserFrontend.Rejected e = assertThrows(VhostUserFrontend.Rejected.class, () -> s.fe.setVringNum(0, 3));
            assertNotEquals(0, e.code());
        }
    }

    @Test
    void unknownRequestClosesTheConnectionAndTheNextFrontEndIsServed() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            s.fe.send(999, VhostUserHeader.VERSION, new byte[0]);
            assertTrue(s.fe.awaitClosed(CLOSE_WAIT));
        }
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            s.fe.send(FrontendRequest.SET_LOG_FD, VhostUserHeader.VERSION, new byte[0]); // defined, not supported
            assertTrue(s.fe.awaitClosed(CLOSE_WAIT));
        }
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            assertTrue(s.alive());
        }
    }

    @Test
    void malformedHeadersCloseTheConnection() throws Exception {
        final int[][] headers = {
            {FrontendRequest.GET_FEATURES, 0, 0},                                  // version 0
            {FrontendRequest.GET_FEATURES, 2, 0},                                  // version 2
            {FrontendRequest.GET_FEATURES, VhostUserHeader.VERSION | VhostUserHeader.FLAG_REPLY, 0}, // a reply
            {FrontendRequest.SET_FEATURES, VhostUserHeader.VERSION, VhostUserHeader.MAX_PAYLOAD + 1}, // oversized
            {FrontendRequest.SET_FEATURES, VhostUserHeader.VERSION, -1},           // 4 GiB - 1
            {FrontendRequest.SET_FEATURES, VhostUserHeader.VERSION, 4},            // u64 payload of 4 bytes
        };
        for (final int[] h : headers) {
            try (RawSession s = RawSession.bare(backend.socket(0))) {
                final byte[] bytes = new byte[VhostUserHeader.LENGTH + (h[2] == 4 ? 4 : 0)];
                final VhostUserHeader header = new VhostUserHeader().wrap(new UnsafeBuffer(bytes), 0);
                header.request(h[0]).flags(h[1]).size(h[2]);
                s.fe.sendRaw(bytes);
                assertTrue(s.fe.awaitClosed(CLOSE_WAIT), "header " + java.util.Arrays.toString(h));
            }
        }
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            assertTrue(s.alive(), "the server still accepts front-ends");
        }
    }

    @Test
    void aFrontEndVanishingMidMessageDoesNotStopTheServer() throws Exception {
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            final byte[] bytes = new byte[VhostUserHeader.LENGTH + 3];
            final VhostUserHeader header = new VhostUserHeader().wrap(new UnsafeBuffer(bytes), 0);
            header.request(FrontendRequest.SET_FEATURES).flags(VhostUserHeader.VERSION).size(8);
            s.fe.sendRaw(bytes);
        }
        try (RawSession s = RawSession.bare(backend.socket(0))) {
            assertTrue(s.alive());
        }
    }

    @Test
    void resetOwnerForgetsFeaturesAndRings() throws Exception {
        try (dev.vhostnet.frontend.VirtioNetDriver d = backend.start(0)) {
            assertTrue(backend.queue(0, 1).isRunning());
            d.frontend().resetOwner();
            dev.vhostnet.frontend.Await.until("TX ring stopped", () -> !backend.queue(0, 1).isStarted());
            assertEquals(0, backend.port(0).features());
            // A front-end may start over on the same connection.
            d.negotiate();
            assertTrue(backend.queue(0, 1).isRunning());
        }
    }
}
