package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.OpenFds;
import dev.vhostnet.backend.seals.JitState;
import dev.vhostnet.backend.vhostpci.VhostPciSession.Ack;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.sys.Seals;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.VirtioDeviceStatus;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.DirtyPageLoggingMessage;
import dev.vhostnet.spec.vhostpci.FeatureBitsMessage;
import dev.vhostnet.spec.vhostpci.MacAddress;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VirtqInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

import static dev.vhostnet.frontend.VirtioNetDriver.RX;
import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * vhost-pci: the attack of issue 10. A hostile client hands the device side its guest memory (MEMORY_INFO) and
 * a device with split RX and TX rings in it, then truncates that memfd and kicks; unsealed, the device side's
 * next ring access raised SIGBUS and HotSpot aborted the JVM. The device side seals the memfd before it maps
 * it, so the truncation fails with EPERM and both guests keep forwarding, RX and TX, small and full-size frames.
 * An unsealable memfd is refused (ADD_FAIL) and the session goes on. A client back-end's own front-end cannot
 * shrink its memory either (the client side sealed it on SET_MEM_TABLE).
 *
 * <p>Runs in the default test JVM (compiled after the warm-up) and in the {@code interpreted} execution (-Xint).
 */
class VhostPciSealTest {
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final long F = VirtioFeature.bit(VirtioFeature.VERSION_1);
    private static final int WARM_UP = Integer.getInteger("vhostnet.test.warmup", 3000);
    private static final int H = VirtioNetDriver.HEADER_LENGTH;

    @TempDir
    Path dir;

    private static VhostPciSession connect(final Path pci) throws Exception {
        final AFUNIXSocket s = AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(pci.toFile()));
        return VhostPciSession.start(s, VhostPciSession.Config.defaults(VhostPci.ROLE_CLIENT, UUID.randomUUID()),
            new VhostPciSession.Handler() {
                @Override
                public void onRequest(final VhostPciSession session, final VhostPciFrame request) {
                    try {
                        session.ack(request.seq(), request.type(), VhostPciSession.failStatus(request.type(), 0),
                            VhostPci.R_UNSUPPORTED, 0);
                    } catch (final IOException e) {
                        // closed
                    }
                }
            });
    }

    private static Ack get(final java.util.concurrent.CompletableFuture<Ack> f) throws Exception {
        return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    }

    private static Ack addMemory(final VhostPciSession s, final GuestMemoryImage.MemoryRegion r) throws Exception {
        return get(s.request(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(1), (b, o) -> {
            final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, o);
            m.op(VhostPci.OP_ADD).nregions(1);
            m.region(0).guestPhysAddr(r.guestPhysAddr()).memorySize(r.size()).userAddr(r.userAddr())
                .mmapOffset(r.mmapOffset());
        }, r.fd()));
    }

    private static Ack features(final VhostPciSession s) throws Exception {
        return get(s.request(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, (b, o) ->
            new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, o).features(F).flags(VhostPci.FEATURES_NEGOTIATED)));
    }

    private static Ack addDevice(final VhostPciSession s, final ClientGuest g) throws Exception {
        final DriverSplitQueue[] qs = {g.rx, g.tx};
        return get(s.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, 2), (b, o) -> {
            final DeviceInfoMessage m = new DeviceInfoMessage().wrap(b, o);
            m.op(VhostPci.OP_ADD).deviceType(VhostPci.DEVICE_NET).nvqs(2).features(F)
                .deviceId(MacAddress.toDeviceId(PeerBackend.MAC_C));
            for (int i = 0; i < 2; i++) {
                final VirtqInfo v = m.virtq(i);
                v.index(qs[i].index()).lastAvailIdx(qs[i].availIdx()).lastUsedIdx(qs[i].usedIdx()).size(qs[i].size())
                    .format(VhostPci.FORMAT_SPLIT).fdFlags(VhostPci.FD_KICK | VhostPci.FD_CALL)
                    .descAddr(qs[i].descUva()).driverAddr(qs[i].availUva()).deviceAddr(qs[i].usedUva());
            }
        }, g.rx.kickFd().fd(), g.rx.callFd().fd(), g.tx.kickFd().fd(), g.tx.callFd().fd()));
    }

    /** The hostile client's guest: its memory and split RX/TX rings, driven by hand. */
    private static final class ClientGuest implements AutoCloseable {
        final GuestMemoryImage memory;
        final DriverSplitQueue rx;
        final DriverSplitQueue tx;
        private final Map<Integer, Long> rxBuffers = new HashMap<>();
        private final Map<Integer, Long> txBuffers = new HashMap<>();
        private final ArrayDeque<Long> freeRx = new ArrayDeque<>();

        ClientGuest(final GuestMemoryImage.Backing backing) {
            memory = GuestMemoryImage.create(4, GuestMemoryImage.DEFAULT_GPA_BASE, GuestMemoryImage.DEFAULT_UVA_BASE,
                backing);
            rx = new DriverSplitQueue(memory, RX, 256);
            tx = new DriverSplitQueue(memory, TX, 256);
            for (int i = 0; i < 128; i++) {
                freeRx.add(memory.allocate(2048, 16));
            }
        }

        void postRx() {
            while (!freeRx.isEmpty() && rx.canAdd(1, false)) {
                final long at = freeRx.poll();
                rxBuffers.put(rx.add(List.of(DriverSplitQueue.Segment.writable(memory.gpa(at), 2048)), false), at);
            }
            rx.publish();
        }

        void send(final byte[] frame) {
            DriverSplitQueue.Used done;
            while ((done = tx.pollUsed()) != null) {
                memory.free(txBuffers.remove(done.id()));
            }
            final long at = memory.allocate(H + frame.length, 16);
            memory.buffer().setMemory((int) at, H, (byte) 0);
            memory.buffer().putBytes((int) at + H, frame);
            txBuffers.put(tx.add(List.of(DriverSplitQueue.Segment.readable(memory.gpa(at), H + frame.length)), false), at);
            tx.publish();
            tx.kick();
        }

        byte[] receive() {
            final long deadline = System.nanoTime() + WAIT.toNanos();
            DriverSplitQueue.Used used;
            while ((used = rx.pollUsed()) == null) {
                if (System.nanoTime() > deadline) {
                    return null;
                }
                LockSupport.parkNanos(20_000);
            }
            final long at = rxBuffers.remove(used.id());
            final byte[] frame = new byte[used.len() - H];
            memory.buffer().getBytes((int) at + H, frame);
            freeRx.add(at);
            postRx();
            return frame;
        }

        @Override
        public void close() {
            rx.close();
            tx.close();
            memory.close();
        }
    }

    /** {@code n} frames each way between the device side's guest D and the client's guest C, 60..1514 bytes. */
    private static void exchange(final VirtioNetDriver d, final ClientGuest c, final int n, final long seed) {
        for (int i = 0; i < n; i++) {
            if (d.rxPosted() < 16) {
                d.postRxBuffers(64, 2048);
            }
            final int small = 60 + i % 7;
            final byte[] dc = VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D,
                i % 2 == 0 ? small : 1514, seed + i);
            final byte[] cd = VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C,
                i % 2 == 0 ? 1514 : small, seed + 50_000 + i);
            d.send(dc);
            c.send(cd);
            assertArrayEquals(dc, c.receive(), "D->C frame " + i + " (the client guest's RX ring)");
            assertArrayEquals(cd, d.receive(WAIT), "C->D frame " + i + " (the client guest's TX ring)");
        }
        assertTrue(d.awaitTxDone(WAIT), "D's TX buffers returned");
    }

    private static void assertHealthy(final PeerBackend dev, final VirtioNetDriver d) throws IOException {
        for (int q = 0; q < 2; q++) {
            assertEquals(QueueError.NONE, dev.local.queue(q).error(), "device side's own guest, queue " + q);
            assertEquals(QueueError.NONE, dev.remote.queue(q).error(), "client's guest, queue " + q);
        }
        assertEquals(0, d.frontend().getStatus() & VirtioDeviceStatus.DEVICE_NEEDS_RESET);
    }

    @Test
    void aClientCannotShrinkTheMemoryItHandedToTheDeviceSide() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults().mergeable(false));
             ClientGuest c = new ClientGuest(GuestMemoryImage.Backing.SEALABLE)) {
            final VhostPciSession s = connect(pci);
            try {
                assertEquals(1, s.awaitOpen(WAIT));
                assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, features(s).status());
                assertEquals(VhostPci.ADD_DONE, addMemory(s, c.memory.region()).status());
                assertTrue(Seals.has(Seals.get(c.memory.fd()), LibC.F_SEAL_SHRINK), "the device side sealed it");
                assertEquals(VhostPci.ADD_DONE, addDevice(s, c).status()); // rings empty: positions 0
                c.postRx();
                exchange(d, c, WARM_UP, 1);
                JitState.assertDataplaneMode();

                assertEquals(-1, LibC.INSTANCE.ftruncate(c.memory.fd(), 4096), "truncation to one page");
                assertEquals(LibC.EPERM, LibC.errno());
                assertEquals(-1, LibC.INSTANCE.ftruncate(c.memory.fd(), 0), "truncation to nothing");
                assertEquals(LibC.EPERM, LibC.errno());
                c.tx.kick(); // and kick, as the attack did
                c.rx.kick();
                exchange(d, c, 500, 7);
                assertHealthy(dev, d);
            } finally {
                s.close();
            }
        }
    }

    @Test
    void unsealableClientMemoryIsRefusedAndTheSessionGoesOn() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults().mergeable(false));
             ClientGuest unsealable = new ClientGuest(GuestMemoryImage.Backing.UNSEALABLE);
             ClientGuest c = new ClientGuest(GuestMemoryImage.Backing.SEALABLE)) {
            final VhostPciSession s = connect(pci);
            try {
                assertEquals(1, s.awaitOpen(WAIT));
                assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, features(s).status());
                final long fds = OpenFds.count();
                final Ack refused = addMemory(s, unsealable.memory.region());
                assertEquals(VhostPci.ADD_FAIL, refused.status());
                assertEquals(VhostPci.R_MAP_FAILED, refused.reason());
                OpenFds.awaitBackTo(fds, "refused MEMORY_INFO");
                assertEquals(0, dev.device.clientRegions());
                // The same session, sealable memory: accepted, and frames cross.
                assertEquals(VhostPci.ADD_DONE, addMemory(s, c.memory.region()).status());
                assertEquals(VhostPci.ADD_DONE, addDevice(s, c).status()); // rings empty: positions 0
                c.postRx();
                exchange(d, c, 100, 3);
                assertHealthy(dev, d);
            } finally {
                s.close();
            }
        }
    }

    private static Ack startLogging(final VhostPciSession s, final int fd, final long size) throws Exception {
        return get(s.request(VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH, (b, o) ->
            new DirtyPageLoggingMessage().<DirtyPageLoggingMessage>wrap(b, o).op(VhostPci.LOG_START).logSize(size)
                .mmapOffset(0), fd));
    }

    @Test
    void theDirtyLogAClientHandsOverIsSealedOrRefused() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        final long size = 8192;
        try (PeerBackend dev = PeerBackend.device(dir, pci)) {
            final VhostPciSession s = connect(pci);
            final int unsealable = MemFd.create("client-log", size, LibC.MFD_CLOEXEC);
            final int sealable = MemFd.create("client-log", size);
            try {
                assertEquals(1, s.awaitOpen(WAIT));
                final long fds = OpenFds.count();
                final Ack refused = startLogging(s, unsealable, size);
                assertEquals(VhostPci.FAIL, refused.status());
                assertEquals(VhostPci.R_MAP_FAILED, refused.reason());
                OpenFds.awaitBackTo(fds, "refused DIRTY_PAGE_LOGGING");
                assertEquals(VhostPci.DONE, startLogging(s, sealable, size).status());
                assertEquals(-1, LibC.INSTANCE.ftruncate(sealable, 0), "the device side sealed the log");
                assertEquals(LibC.EPERM, LibC.errno());
            } finally {
                s.close();
                FileDescriptors.closeQuietly(unsealable);
                FileDescriptors.closeQuietly(sealable);
            }
        }
    }

    @Test
    void aClientBackEndsFrontEndCannotShrinkItsMemoryEither() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci); PeerBackend cli = PeerBackend.client(dir, pci);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults());
             VirtioNetDriver c = VirtioNetDriver.start(cli.socket, VirtioNetDriver.Options.defaults())) {
            cli.awaitDelegated(true);
            d.postRxBuffers(64, 2048);
            c.postRxBuffers(64, 2048);
            for (int i = 0; i < 2; i++) {
                final byte[] f = VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 1514, i);
                c.send(f);
                assertArrayEquals(f, d.receive(WAIT));
            }
            assertEquals(-1, LibC.INSTANCE.ftruncate(c.memory().fd(), 0), "the client side sealed its guest's memfd");
            assertEquals(LibC.EPERM, LibC.errno());
            c.tx().kick();
            for (int i = 0; i < 100; i++) {
                if (c.rxPosted() < 16) {
                    c.postRxBuffers(64, 2048);
                }
                if (d.rxPosted() < 16) {
                    d.postRxBuffers(64, 2048);
                }
                final byte[] cd = VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 60 + i * 14, 10 + i);
                final byte[] dc = VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 1514 - i * 14, 500 + i);
                c.send(cd);
                d.send(dc);
                assertArrayEquals(cd, d.receive(WAIT), "C->D frame " + i);
                assertArrayEquals(dc, c.receive(WAIT), "D->C frame " + i);
            }
            assertHealthy(dev, d);
        }
    }
}
