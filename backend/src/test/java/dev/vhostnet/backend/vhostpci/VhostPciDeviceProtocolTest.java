package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.vhostpci.VhostPciSession.Ack;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.FeatureBitsMessage;
import dev.vhostnet.spec.vhostpci.MacAddress;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VirtqInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The device side at the message level: a scripted client (the real session layer, driving the bytes by hand)
 * against a real device-side back-end with a Java front-end. Feature renegotiation, memory ADD/DEL with every
 * refusal, DEVICE_INFO ADD/DEL with final states, admission of a second client.
 */
class VhostPciDeviceProtocolTest {
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final long MRG = VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF);
    private static final long F = VirtioFeature.bit(VirtioFeature.VERSION_1) | MRG;

    @TempDir
    Path dir;

    private static VhostPciSession connect(final Path pci, final UUID uuid) throws Exception {
        final AFUNIXSocket s = AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(pci.toFile()));
        return VhostPciSession.start(s, VhostPciSession.Config.defaults(VhostPci.ROLE_CLIENT, uuid),
            new VhostPciSession.Handler() {
                @Override
                public void onRequest(final VhostPciSession session, final VhostPciFrame request) {
                    try {
                        session.ack(request.seq(), request.type(), VhostPciSession.failStatus(request.type(), 0),
                            VhostPci.R_UNSUPPORTED, 0);
                    } catch (final java.io.IOException e) {
                        // closed
                    }
                }
            });
    }

    private static Ack get(final java.util.concurrent.CompletableFuture<Ack> f) throws Exception {
        return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    }

    private static Ack memory(final VhostPciSession s, final int op, final GuestMemoryImage.MemoryRegion r)
        throws Exception {
        return get(s.request(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(1), (b, o) -> {
            final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, o);
            m.op(op).nregions(1);
            m.region(0).guestPhysAddr(r.guestPhysAddr()).memorySize(r.size()).userAddr(r.userAddr())
                .mmapOffset(r.mmapOffset());
        }, op == VhostPci.OP_ADD ? new int[] {r.fd()} : new int[0]));
    }

    private static Ack features(final VhostPciSession s, final long f, final boolean negotiated) throws Exception {
        return get(s.request(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, (b, o) ->
            new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, o).features(f)
                .flags(negotiated ? VhostPci.FEATURES_NEGOTIATED : 0)));
    }

    private static Ack addDevice(final VhostPciSession s, final long f, final DriverSplitQueue rx,
                                 final DriverSplitQueue tx) throws Exception {
        final DriverSplitQueue[] qs = {rx, tx};
        return get(s.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, 2), (b, o) -> {
            final DeviceInfoMessage m = new DeviceInfoMessage().wrap(b, o);
            m.op(VhostPci.OP_ADD).deviceType(VhostPci.DEVICE_NET).nvqs(2).features(f)
                .deviceId(MacAddress.toDeviceId(PeerBackend.MAC_C));
            for (int i = 0; i < 2; i++) {
                final VirtqInfo v = m.virtq(i);
                v.index(qs[i].index()).lastAvailIdx(qs[i].availIdx()).lastUsedIdx(qs[i].usedIdx()).size(qs[i].size())
                    .format(VhostPci.FORMAT_SPLIT).fdFlags(VhostPci.FD_KICK | VhostPci.FD_CALL)
                    .descAddr(qs[i].descUva()).driverAddr(qs[i].availUva()).deviceAddr(qs[i].usedUva());
            }
        }, rx.kickFd().fd(), rx.callFd().fd(), tx.kickFd().fd(), tx.callFd().fd()));
    }

    private static Ack delDevice(final VhostPciSession s) throws Exception {
        return get(s.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0), (b, o) ->
            new DeviceInfoMessage().<DeviceInfoMessage>wrap(b, o).op(VhostPci.OP_DEL).deviceType(VhostPci.DEVICE_NET)
                .deviceId(MacAddress.toDeviceId(PeerBackend.MAC_C))));
    }

    @Test
    void renegotiationMemoryAddDelAndDeviceAddDelAtTheMessageLevel() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci, ~MRG);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults());
             GuestMemoryImage guest = GuestMemoryImage.create(4);
             GuestMemoryImage extra = GuestMemoryImage.create(1, 0x8_0000_0000L, 0x7e00_0000_0000L);
             DriverSplitQueue rx = new DriverSplitQueue(guest, 0, 64);
             DriverSplitQueue tx = new DriverSplitQueue(guest, 1, 64)) {
            final VhostPciSession s = connect(pci, UUID.randomUUID());
            try {
                assertEquals(1, s.awaitOpen(WAIT));
                // A second client is refused while this one is served.
                final VhostPciSession other = connect(pci, UUID.randomUUID());
                final VhostPciException busy = assertThrows(VhostPciException.class, () -> other.awaitOpen(WAIT));
                assertEquals(VhostPci.R_BUSY, busy.reason());

                // No memory yet: a device cannot be added.
                assertEquals(VhostPci.R_FEATURES, addDevice(s, F, rx, tx).reason(), "no FEATURE_BITS yet");
                // Renegotiation: the device side cannot handle MRG_RXBUF.
                final Ack probe = features(s, F, false);
                assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, probe.status());
                assertEquals(F & ~MRG, probe.value());
                assertEquals(VhostPci.R_NOT_READY, addDevice(s, F & ~MRG, rx, tx).reason(), "no memory yet");

                final GuestMemoryImage.MemoryRegion whole = guest.region();
                assertEquals(VhostPci.ADD_DONE, memory(s, VhostPci.OP_ADD, whole).status());
                assertEquals(VhostPci.R_OVERLAP, memory(s, VhostPci.OP_ADD, whole).reason());
                assertEquals(VhostPci.ADD_DONE, memory(s, VhostPci.OP_ADD, extra.region()).status());
                assertEquals(2, dev.device.clientRegions());
                assertEquals(VhostPci.R_UNKNOWN_REGION,
                    memory(s, VhostPci.OP_DEL, extra.region().movedTo(0x9_0000_0000L, 0x7d00_0000_0000L)).reason());
                assertEquals(VhostPci.DEL_DONE, memory(s, VhostPci.OP_DEL, extra.region()).status());
                assertEquals(1, dev.device.clientRegions());

                assertEquals(VhostPci.R_FEATURES, addDevice(s, F, rx, tx).reason(), "MRG_RXBUF was not accepted");
                assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, features(s, F & ~MRG, true).status());
                assertEquals(VhostPci.ADD_DONE, addDevice(s, F & ~MRG, rx, tx).status());
                assertEquals(VhostPci.R_DEVICE_EXISTS, addDevice(s, F & ~MRG, rx, tx).reason());
                assertEquals(VhostPci.R_REGION_IN_USE, memory(s, VhostPci.OP_DEL, whole).reason());

                // Traffic between the device side's front-end and the scripted guest's rings.
                final long rxBuf = guest.allocate(2048, 16);
                rx.add(List.of(DriverSplitQueue.Segment.writable(guest.gpa(rxBuf), 2048)), false);
                rx.publish();
                final byte[] frame = VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 300, 3);
                d.send(frame);
                Await.until("frame in the scripted guest's RX ring", () -> rx.usedIdx() == 1);
                final byte[] got = new byte[frame.length];
                guest.buffer().getBytes((int) rxBuf + VirtioNetDriver.HEADER_LENGTH, got); // VERSION_1: 12-byte header
                assertArrayEquals(frame, got);
                d.postRxBuffers(4, 2048);
                final int h = VirtioNetDriver.HEADER_LENGTH;
                final long txBuf = guest.allocate(h + 200, 16);
                final byte[] back = VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 200, 4);
                guest.buffer().putBytes((int) txBuf + h, back);
                tx.add(List.of(DriverSplitQueue.Segment.readable(guest.gpa(txBuf), h + 200)), false);
                tx.publish();
                tx.kick();
                assertArrayEquals(back, d.receive(WAIT));

                // DEL: final states are the scripted guest's positions.
                final Ack del = delDevice(s);
                assertEquals(VhostPci.DEL_DONE, del.status());
                assertEquals(List.of(new VhostPciSession.QueuePosition(0, 1, 1, 0),
                    new VhostPciSession.QueuePosition(1, 1, 1, 0)), del.states());
                assertEquals(VhostPci.R_UNKNOWN_DEVICE, delDevice(s).reason());
                assertEquals(VhostPci.DEL_DONE, memory(s, VhostPci.OP_DEL, whole).status());
                assertEquals(0, dev.device.clientRegions());
            } finally {
                s.close();
            }
        }
    }
}
