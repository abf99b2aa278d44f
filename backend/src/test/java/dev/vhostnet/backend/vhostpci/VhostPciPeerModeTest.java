package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetConfig;
import dev.vhostnet.spec.VirtioNetFeature;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;

import static dev.vhostnet.frontend.VirtioNetDriver.RX;
import static dev.vhostnet.frontend.VirtioNetDriver.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two back-ends joined over a vhost-pci socket (device side and client side, each with its own Java front-end):
 * the device side walks both guests' rings, so frames cross in one copy, and the client side does not touch
 * its rings while delegated.
 */
class VhostPciPeerModeTest {
    private static final Duration WAIT = Duration.ofSeconds(5);

    @TempDir
    Path dir;

    static byte[] frame(final byte[] dst, final byte[] src, final int length, final long seed) {
        final byte[] f = new byte[length];
        System.arraycopy(dst, 0, f, 0, 6);
        System.arraycopy(src, 0, f, 6, 6);
        f[12] = (byte) 0x88;
        f[13] = (byte) 0xB5;
        final Random r = new Random(seed);
        for (int i = 14; i < length; i++) {
            f[i] = (byte) r.nextInt();
        }
        return f;
    }

    /** Frames from the device side's guest (D) to the client side's guest (C) and back. */
    private static void exchange(final VirtioNetDriver d, final VirtioNetDriver c, final int n, final long seed,
                                 final long[] bytes) {
        for (int i = 0; i < n; i++) {
            if (c.rxPosted() < 8) {
                c.postRxBuffers(32, 2048);
            }
            if (d.rxPosted() < 8) {
                d.postRxBuffers(32, 2048);
            }
            final byte[] dc = frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 60 + (i * 97) % 1450, seed + i);
            final byte[] cd = frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 1514 - (i * 31) % 1400, seed + 10_000 + i);
            d.send(dc);
            c.send(cd);
            assertArrayEquals(dc, c.receive(WAIT), "D->C frame " + i);
            assertArrayEquals(cd, d.receive(WAIT), "C->D frame " + i);
            bytes[0] += dc.length;
            bytes[1] += cd.length;
        }
    }

    @Test
    void framesCrossBothWaysIntactAndAreCountedByTheDeviceSide() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci); PeerBackend cli = PeerBackend.client(dir, pci);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults());
             VirtioNetDriver c = VirtioNetDriver.start(cli.socket, VirtioNetDriver.Options.defaults())) {
            cli.awaitDelegated(true);
            final int n = 300; // more than a ring: indexes wrap on both sides
            final long[] bytes = new long[2];
            exchange(d, c, n, 1, bytes);
            assertTrue(d.awaitTxDone(WAIT) && c.awaitTxDone(WAIT), "every TX buffer returned");
            // The device side's dataplane did all the work: our port and the client guest's port.
            awaitCounter(dev, dev.local, TX, QueueCounters.PACKETS, n);
            awaitCounter(dev, dev.local, TX, QueueCounters.BYTES, bytes[0]);
            awaitCounter(dev, dev.remote, RX, QueueCounters.PACKETS, n);
            awaitCounter(dev, dev.remote, RX, QueueCounters.BYTES, bytes[0]);
            awaitCounter(dev, dev.remote, TX, QueueCounters.PACKETS, n);
            awaitCounter(dev, dev.remote, TX, QueueCounters.BYTES, bytes[1]);
            awaitCounter(dev, dev.local, RX, QueueCounters.PACKETS, n);
            awaitCounter(dev, dev.local, RX, QueueCounters.BYTES, bytes[1]);
            assertEquals(0, dev.counter(dev.local, TX, QueueCounters.DROPS) + dev.counter(dev.remote, TX, QueueCounters.DROPS));
            // The client side walked nothing while delegated.
            assertEquals(0, cli.counter(cli.local, TX, QueueCounters.PACKETS) + cli.counter(cli.local, RX, QueueCounters.PACKETS)
                + cli.counter(cli.local, TX, QueueCounters.DROPS));
            // Link state: both sides see the other's guest up (GET_CONFIG status).
            Await.until("links up", () -> linkUp(d) && linkUp(c));
        }
    }

    private static boolean linkUp(final VirtioNetDriver driver) {
        try {
            final byte[] cfg = driver.frontend().getConfig(0, VirtioNetConfig.LENGTH);
            return (new VirtioNetConfig().<VirtioNetConfig>wrap(new UnsafeBuffer(cfg), 0).status()
                & VirtioNetFeature.S_LINK_UP) != 0;
        } catch (final Exception e) {
            throw new AssertionError(e);
        }
    }

    private static void awaitCounter(final PeerBackend b, final dev.vhostnet.dataplane.net.VirtioNetPort port,
                                     final int queue, final int counter, final long expected) {
        Await.until(port.name() + " queue " + queue + " " + QueueCounters.name(counter) + " == " + expected, WAIT,
            () -> b.counter(port, queue, counter) >= expected, () -> String.valueOf(b.counter(port, queue, counter)));
        assertEquals(expected, b.counter(port, queue, counter), port.name() + " " + QueueCounters.name(counter));
    }

    @Test
    void getVringBaseWhileDelegatedAnswersExactIndexesAndTheRingsRunLocallyAfterwards() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci); PeerBackend cli = PeerBackend.client(dir, pci);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults());
             VirtioNetDriver c = VirtioNetDriver.start(cli.socket, VirtioNetDriver.Options.defaults())) {
            cli.awaitDelegated(true);
            final long[] bytes = new long[2];
            exchange(d, c, 77, 5, bytes);
            c.send(frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 100, 99)); // one more TX than RX
            assertEquals(100, d.receive(WAIT).length);
            assertTrue(c.awaitTxDone(WAIT));
            final int txBase = c.frontend().getVringBase(TX);
            assertEquals(78, txBase, "TX: every frame the client guest sent was consumed, none twice");
            assertFalse(cli.client.isDelegated(), "GET_VRING_BASE took the device back");
            final int rxBase = c.frontend().getVringBase(RX);
            assertEquals(77, rxBase, "RX: one buffer per frame received");
            assertEquals(78, c.tx().usedIdx());
            assertEquals(77, c.rx().usedIdx());
            // Set the rings up again at those bases (a driver reload): delegated again, traffic resumes.
            c.setUpRing(c.rx(), rxBase);
            c.setUpRing(c.tx(), txBase);
            c.enableRings(true);
            cli.awaitDelegated(true);
            assertTrue(cli.client.delegations() >= 2, "delegated again after the ring re-setup");
            exchange(d, c, 20, 500, bytes);
        }
    }

    @Test
    void renegotiatesWhenTheDeviceSideHandlesOnlyASubset() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        final long mrg = VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF);
        try (PeerBackend cli = PeerBackend.client(dir, pci);
             VirtioNetDriver c = VirtioNetDriver.start(cli.socket, VirtioNetDriver.Options.defaults())) {
            assertTrue(c.mergeable(), "negotiated before any device side exists");
            try (PeerBackend dev = PeerBackend.device(dir, pci, ~mrg);
                 VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults())) {
                Await.until("session open", () -> cli.client.isConnected());
                // The device side accepted only a subset: the client keeps serving locally, offers the subset.
                Await.until("MRG_RXBUF no longer offered", () -> (offered(c) & mrg) == 0);
                assertFalse(cli.client.isDelegated());
                c.send(frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 200, 1));
                assertTrue(c.awaitTxDone(WAIT), "local rings still run (frame dropped, no peer)");
                // The guest renegotiates (device reset, driver reload): without MRG_RXBUF now, so delegated.
                c.frontend().resetDevice();
                c.negotiate();
                assertFalse(c.mergeable());
                cli.awaitDelegated(true);
                final long[] bytes = new long[2];
                exchange(d, c, 50, 7, bytes);
                assertFalse(VirtioFeature.has(dev.remote.features(), VirtioNetFeature.MRG_RXBUF));
                assertEquals(1, cli.counter(cli.local, TX, QueueCounters.DROPS), "the frame sent while local");
            }
        }
    }

    private static long offered(final VirtioNetDriver c) {
        try {
            return c.frontend().getFeatures();
        } catch (final java.io.IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void memoryRegionsAddedAndRemovedWhileDelegatedAreReExported() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci); PeerBackend cli = PeerBackend.client(dir, pci);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults());
             VirtioNetDriver c = VirtioNetDriver.start(cli.socket,
                 VirtioNetDriver.Options.defaults().memSlots(true).memoryWindows(2));
             GuestMemoryImage extra = GuestMemoryImage.create(2, 0x4_0000_0000L, 0x7e00_0000_0000L)) {
            cli.awaitDelegated(true);
            assertEquals(2, dev.device.clientRegions());
            final long[] bytes = new long[2];
            exchange(d, c, 10, 1, bytes);
            c.frontend().addMemReg(extra.region()); // hot-plugged memory
            cli.awaitDelegated(true);
            assertEquals(3, dev.device.clientRegions());
            exchange(d, c, 10, 2, bytes);
            c.frontend().remMemReg(extra.region()); // unplugged again
            cli.awaitDelegated(true);
            assertEquals(2, dev.device.clientRegions());
            assertTrue(cli.client.delegations() >= 3);
            exchange(d, c, 10, 3, bytes);
            // A whole new table (SET_MEM_TABLE, as after a reboot with other memory): all regions replaced.
            c.frontend().setMemTable(java.util.List.of(c.memory().region()));
            cli.awaitDelegated(true);
            assertEquals(1, dev.device.clientRegions());
            exchange(d, c, 10, 4, bytes);
        }
    }

    @Test
    void deviceSideWithoutClientDropsAndCountsAndAClientJoiningLaterGetsTraffic() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults())) {
            for (int i = 0; i < 5; i++) {
                d.send(frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 100, i));
            }
            assertTrue(d.awaitTxDone(WAIT));
            awaitCounter(dev, dev.local, TX, QueueCounters.DROPS, 5);
            assertFalse(linkUp(d), "no client: link down");
            try (PeerBackend cli = PeerBackend.client(dir, pci);
                 VirtioNetDriver c = VirtioNetDriver.start(cli.socket, VirtioNetDriver.Options.defaults())) {
                cli.awaitDelegated(true);
                exchange(d, c, 10, 3, new long[2]);
                Await.until("link up", () -> linkUp(d));
                // The client front-end goes away: the device is handed back, the device side drops again.
                c.close();
                Await.until("device stopped", () -> !dev.device.deviceRunning());
                Await.until("client memory withdrawn", () -> dev.device.clientRegions() == 0);
                d.send(frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 100, 77));
                assertTrue(d.awaitTxDone(WAIT));
                awaitCounter(dev, dev.local, TX, QueueCounters.DROPS, 6);
                assertNull(d.receive(Duration.ofMillis(20)));
            }
        }
    }

    @Test
    void deviceSideShutdownHandsTheDeviceBackWithExactPositions() throws Exception {
        final Path pci = dir.resolve("pci.sock");
        try (PeerBackend dev = PeerBackend.device(dir, pci); PeerBackend cli = PeerBackend.client(dir, pci);
             VirtioNetDriver d = VirtioNetDriver.start(dev.socket, VirtioNetDriver.Options.defaults());
             VirtioNetDriver c = VirtioNetDriver.start(cli.socket, VirtioNetDriver.Options.defaults())) {
            cli.awaitDelegated(true);
            exchange(d, c, 33, 8, new long[2]);
            dev.close(); // SIGTERM path: stop, DEVICE_INFO DEL with final states, wait for DEL_DONE
            cli.awaitDelegated(false);
            for (int i = 0; i < 7; i++) {
                c.send(frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 100, i));
            }
            assertTrue(c.awaitTxDone(WAIT), "the client runs its rings again");
            awaitCounter(cli, cli.local, TX, QueueCounters.DROPS, 7);
            assertEquals(40, c.frontend().getVringBase(TX));
            assertEquals(33, c.frontend().getVringBase(RX));
        }
    }
}
