package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.OpenFds;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.vhostpci.AckMessage;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.FeatureBitsMessage;
import dev.vhostnet.spec.vhostpci.HeartbeatMessage;
import dev.vhostnet.spec.vhostpci.MacAddress;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import dev.vhostnet.spec.vhostpci.VirtqInfo;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The vhost-pci socket of a real device-side back-end against a hand-driven hostile client: fds by the hundred
 * on one message, fds on malformed and cut-short messages, silence in the middle of a message, PINGs flooded
 * without reading a PONG. After each case: a well-behaved client is admitted, adds its memory and a device, and
 * frames go both ways between its guest and the device side's own front-end (connected throughout); then no fd
 * is left open (this JVM's count, back-end and clients alike, back to the baseline).
 */
class VhostPciTransportTest {
    private static final Duration WAIT = Duration.ofSeconds(20);

    @TempDir
    static Path dir;
    private static PeerBackend dev;
    private static VirtioNetDriver frontEnd;
    private static Path pci;
    private static long baseline;

    @BeforeAll
    static void start() throws Exception {
        pci = dir.resolve("pci.sock");
        dev = PeerBackend.device(dir, pci);
        frontEnd = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults());
        assertHealthy("warm-up");
        baseline = OpenFds.count();
    }

    @AfterAll
    static void stop() throws IOException {
        frontEnd.close();
        dev.close();
    }

    @AfterEach
    void healthy() throws Exception {
        assertHealthy("the case");
        OpenFds.awaitBackTo(baseline, "after the case");
    }

    /** A client that has said HELLO and been accepted. */
    private static RawPeer hostileClient() throws Exception {
        final RawPeer raw = new RawPeer(AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(pci.toFile())));
        raw.handshake(VhostPci.ROLE_CLIENT);
        return raw;
    }

    /** A MEMORY_INFO ADD of one 4 KiB region, framed with the peer's next seq. */
    private static byte[] memoryInfo(final RawPeer raw) {
        final int length = MemoryInfoMessage.lengthFor(1);
        final byte[] bytes = new byte[VhostPciHeader.LENGTH + length];
        final UnsafeBuffer b = new UnsafeBuffer(bytes);
        new VhostPciHeader().<VhostPciHeader>wrap(b, 0).type(VhostPci.MEMORY_INFO).version(1).length(length)
            .seq(raw.nextSeq++).sender(raw.uuid);
        final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, VhostPciHeader.LENGTH);
        m.op(VhostPci.OP_ADD).nregions(1);
        m.region(0).guestPhysAddr(0).memorySize(4096).userAddr(0x7F00_0000_0000L).mmapOffset(0);
        return bytes;
    }

    private static int[] memfds(final int n) {
        final int[] fds = new int[n];
        for (int i = 0; i < n; i++) {
            fds[i] = MemFd.create("hostile-pci-" + i, 4096);
        }
        return fds;
    }

    private static void close(final int[] fds) {
        for (final int fd : fds) {
            LibC.INSTANCE.close(fd);
        }
    }

    /** The next message that is not a PING of the device side's (answered as a live client would). */
    private static void expectAnswering(final RawPeer raw, final int type) throws IOException {
        while (true) {
            if (!raw.channel.receive(raw.frame, RawPeer.WAIT_MS)) {
                throw new IOException("end of stream while waiting for " + VhostPci.typeName(type));
            }
            if (raw.frame.type() != VhostPci.HEARTBEAT) {
                assertEquals(VhostPci.typeName(type), VhostPci.typeName(raw.frame.type()));
                return;
            }
            final HeartbeatMessage ping = new HeartbeatMessage().wrap(raw.frame.buffer(), VhostPciFrame.payloadOffset());
            final long pingSeq = raw.frame.seq();
            final long timestamp = ping.timestampNs();
            raw.send(VhostPci.HEARTBEAT, 1, HeartbeatMessage.LENGTH, (b, at) -> new HeartbeatMessage()
                .<HeartbeatMessage>wrap(b, at).op(VhostPci.PONG).pingSeq(pingSeq).timestampNs(timestamp));
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {10, 61, 128})
    void moreFdsThanTheRegionsAreRefusedWithAFailAndClosed(final int n) throws Exception {
        final int[] fds = memfds(n);
        try (RawPeer raw = hostileClient()) {
            final byte[] m = memoryInfo(raw);
            final long seq = raw.nextSeq - 1;
            raw.sendRaw(m, fds);
            expectAnswering(raw, VhostPci.ACK);
            final AckMessage ack = raw.ackPayload();
            assertEquals(seq, ack.ackedSeq());
            assertEquals(VhostPci.ADD_FAIL, ack.status());
            assertEquals(VhostPci.R_BAD_FDS, ack.reason());
            assertEquals(0, dev.device.clientRegions(), "nothing mapped");
        } finally {
            close(fds);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {129, 200, 253})
    void moreFdsThanAnyMessageMayCarryCloseTheConnection(final int n) throws Exception {
        final int[] fds = memfds(n);
        try (RawPeer raw = hostileClient()) {
            raw.sendRaw(memoryInfo(raw), fds);
            assertTrue(raw.closedByPeer(), n + " fds on one message: framing lost, connection closed");
        } finally {
            close(fds);
        }
    }

    @Test
    void fdsOnAHeartbeatCloseTheConnection() throws Exception {
        final int[] fds = memfds(3);
        try (RawPeer raw = hostileClient()) {
            raw.send(VhostPci.HEARTBEAT, 1, HeartbeatMessage.LENGTH, (b, at) -> new HeartbeatMessage()
                .<HeartbeatMessage>wrap(b, at).op(VhostPci.PING).pingSeq(0).timestampNs(1), fds);
            assertTrue(raw.closedByPeer());
        } finally {
            close(fds);
        }
    }

    @Test
    void fdsOnAnUnknownTypeCloseTheConnection() throws Exception {
        final int[] fds = memfds(5);
        try (RawPeer raw = hostileClient()) {
            final byte[] bytes = new byte[VhostPciHeader.LENGTH];
            new VhostPciHeader().<VhostPciHeader>wrap(new UnsafeBuffer(bytes), 0).type(0x7777).version(1).length(0)
                .seq(raw.nextSeq++).sender(raw.uuid);
            raw.sendRaw(bytes, fds);
            assertTrue(raw.closedByPeer());
        } finally {
            close(fds);
        }
    }

    @Test
    void aClientGoneInsideAMessageLeavesNoFdBehind() throws Exception {
        final int[] fds = memfds(4);
        try (RawPeer raw = hostileClient()) {
            final byte[] m = memoryInfo(raw);
            raw.sendRaw(java.util.Arrays.copyOf(m, VhostPciHeader.LENGTH + 10), fds);
        } finally {
            close(fds);
        }
    }

    @Test
    void aClientSilentInsideAMessageIsCutOff() throws Exception {
        final int[] fds = memfds(2);
        try (RawPeer raw = hostileClient()) {
            final byte[] m = memoryInfo(raw);
            raw.sendRaw(java.util.Arrays.copyOf(m, VhostPciHeader.LENGTH), fds); // the payload never comes
            assertTrue(raw.closedByPeer(), "cut off within the heartbeat time-out");
        } finally {
            close(fds);
        }
    }

    @Test
    void aClientFloodingPingsWithoutReadingThePongsIsCutOff() throws Exception {
        try (RawPeer raw = hostileClient()) {
            final CompletableFuture<Long> flood = CompletableFuture.supplyAsync(() -> {
                long sent = 0;
                try {
                    while (sent < 100_000_000L) {
                        raw.send(VhostPci.HEARTBEAT, 1, HeartbeatMessage.LENGTH, (b, at) -> new HeartbeatMessage()
                            .<HeartbeatMessage>wrap(b, at).op(VhostPci.PING).pingSeq(0).timestampNs(7));
                        sent++;
                    }
                } catch (final IOException e) {
                    return sent; // the device side cut the connection
                }
                return -1L;
            });
            final long sent;
            try {
                sent = flood.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            } catch (final TimeoutException e) {
                raw.close();
                throw new AssertionError("the device side still takes PINGs whose PONGs nobody reads");
            }
            assertTrue(sent > 0, "PINGs went out before the cut");
        }
    }

    /**
     * The device side's own front-end is served, and a well-behaved client is admitted (once the device side has
     * let the previous one go) and forwards with it.
     */
    private static void assertHealthy(final String after) throws Exception {
        assertNotEquals(0L, frontEnd.frontend().getFeatures(), "the device side's front-end is served after " + after);
        try (GuestMemoryImage memory = GuestMemoryImage.create(4)) {
            Await.until("a well-behaved client served after " + after, WAIT, () -> wellBehavedClient(memory), () -> "refused as busy");
        }
        Await.until("the client's regions released", WAIT, () -> dev.device.clientRegions() == 0,
            () -> dev.device.clientRegions() + " regions");
    }

    private static boolean wellBehavedClient(final GuestMemoryImage memory) {
        VhostPciSession s = null;
        try (DriverSplitQueue rx = new DriverSplitQueue(memory, 0, 64);
             DriverSplitQueue tx = new DriverSplitQueue(memory, 1, 64)) {
            s = VhostPciSession.start(AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(pci.toFile())),
                VhostPciSession.Config.defaults(VhostPci.ROLE_CLIENT, UUID.randomUUID()), new VhostPciSession.Handler() {
                    @Override
                    public void onRequest(final VhostPciSession session, final VhostPciFrame request) {
                    }
                });
            try {
                s.awaitOpen(Duration.ofSeconds(5));
            } catch (final VhostPciException e) {
                if (e.reason() == VhostPci.R_BUSY) {
                    return false; // the hostile client's session is still being released
                }
                throw e;
            }
            serve(s, memory, rx, tx);
            return true;
        } catch (final Exception e) {
            throw new AssertionError("well-behaved client: " + e, e);
        } finally {
            if (s != null) {
                s.close();
            }
        }
    }

    /** Features, memory and a device with two rings, one frame each way with the device side's front-end, gone. */
    private static void serve(final VhostPciSession s, final GuestMemoryImage memory, final DriverSplitQueue rx,
                              final DriverSplitQueue tx) throws Exception {
        final long features = VirtioFeature.bit(VirtioFeature.VERSION_1);
        for (final boolean negotiated : new boolean[] {false, true}) {
            assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, get(s.request(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH,
                (b, o) -> new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, o).features(features)
                    .flags(negotiated ? VhostPci.FEATURES_NEGOTIATED : 0))).status());
        }
        final GuestMemoryImage.MemoryRegion r = memory.region();
        final VhostPciSession.Ack add = get(s.request(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(1), (b, o) -> {
            final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, o);
            m.op(VhostPci.OP_ADD).nregions(1);
            m.region(0).guestPhysAddr(r.guestPhysAddr()).memorySize(r.size()).userAddr(r.userAddr())
                .mmapOffset(r.mmapOffset());
        }, r.fd()));
        assertEquals(VhostPci.ADD_DONE, add.status(), "region added: " + VhostPci.reasonName(add.reason()));
        final DriverSplitQueue[] qs = {rx, tx};
        final VhostPciSession.Ack device = get(s.request(VhostPci.DEVICE_INFO,
            DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, 2), (b, o) -> {
                final DeviceInfoMessage m = new DeviceInfoMessage().wrap(b, o);
                m.op(VhostPci.OP_ADD).deviceType(VhostPci.DEVICE_NET).nvqs(2).features(features)
                    .deviceId(MacAddress.toDeviceId(PeerBackend.MAC_C));
                for (int i = 0; i < 2; i++) {
                    final VirtqInfo v = m.virtq(i);
                    v.index(qs[i].index()).lastAvailIdx(qs[i].availIdx()).lastUsedIdx(qs[i].usedIdx())
                        .size(qs[i].size()).format(VhostPci.FORMAT_SPLIT).fdFlags(VhostPci.FD_KICK | VhostPci.FD_CALL)
                        .descAddr(qs[i].descUva()).driverAddr(qs[i].availUva()).deviceAddr(qs[i].usedUva());
                }
            }, rx.kickFd().fd(), rx.callFd().fd(), tx.kickFd().fd(), tx.callFd().fd()));
        assertEquals(VhostPci.ADD_DONE, device.status(), "device added: " + VhostPci.reasonName(device.reason()));

        // The device side's front-end -> the client's guest.
        final int h = VirtioNetDriver.HEADER_LENGTH;
        final long rxBuf = memory.allocate(2048, 16);
        rx.add(List.of(DriverSplitQueue.Segment.writable(memory.gpa(rxBuf), 2048)), false);
        rx.publish();
        final byte[] out = VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 300, ++frames);
        frontEnd.send(out);
        Await.until("frame in the client guest's RX ring", () -> rx.usedIdx() == 1);
        final byte[] got = new byte[out.length];
        memory.buffer().getBytes((int) rxBuf + h, got);
        assertArrayEquals(out, got, "device side -> client guest");
        frontEnd.reclaimTx();
        // The client's guest -> the device side's front-end.
        frontEnd.postRxBuffers(2, 2048);
        final long txBuf = memory.allocate(h + 200, 16);
        final byte[] back = VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 200, -frames);
        memory.buffer().putBytes((int) txBuf + h, back);
        tx.add(List.of(DriverSplitQueue.Segment.readable(memory.gpa(txBuf), h + 200)), false);
        tx.publish();
        tx.kick();
        assertArrayEquals(back, frontEnd.receive(WAIT), "client guest -> device side");

        assertEquals(VhostPci.DEL_DONE, get(s.request(VhostPci.DEVICE_INFO,
            DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0), (b, o) -> new DeviceInfoMessage().<DeviceInfoMessage>wrap(b, o)
                .op(VhostPci.OP_DEL).deviceType(VhostPci.DEVICE_NET)
                .deviceId(MacAddress.toDeviceId(PeerBackend.MAC_C)))).status());
    }

    private static int frames;

    private static VhostPciSession.Ack get(final CompletableFuture<VhostPciSession.Ack> f) throws Exception {
        return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    }
}
