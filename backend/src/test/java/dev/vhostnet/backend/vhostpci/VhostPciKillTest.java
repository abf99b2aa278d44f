package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.frontend.VirtioNetDriver;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two back-end processes ({@code dev.vhostnet.backend.Main} in child JVMs), one per guest, joined over a
 * vhost-pci socket; Java front-ends in the test JVM. Either back-end is killed with SIGKILL mid-traffic: the
 * other one keeps serving its guest, and a restarted back-end restores traffic.
 */
class VhostPciKillTest {
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final Duration JOIN = Duration.ofSeconds(60);

    @TempDir
    Path dir;
    private final List<Process> children = new ArrayList<>();

    @AfterEach
    void killChildren() throws InterruptedException {
        for (final Process p : children) {
            p.destroyForcibly();
            p.waitFor();
        }
    }

    private Process backend(final String name, final String... args) throws IOException, InterruptedException {
        final List<String> cmd = new ArrayList<>(List.of(
            Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xss1m",
            "-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
            "dev.vhostnet.backend.Main"));
        cmd.addAll(List.of(args));
        final Path socket = Path.of(args[1]);
        Files.deleteIfExists(socket); // a SIGKILLed back-end leaves its socket file behind
        final Path logDir = Files.createDirectories(Path.of(System.getProperty("basedir", "."), "target", "vhostpci-kill",
            dir.getFileName().toString()));
        final Path log = logDir.resolve(name + "-" + children.size() + ".log");
        final Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        children.add(p);
        final long deadline = System.nanoTime() + JOIN.toNanos();
        while (!Files.exists(socket)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError(name + " did not create " + socket + ":\n" + Files.readString(log));
            }
            Thread.sleep(20);
        }
        return p;
    }

    private Process device() throws IOException, InterruptedException {
        return backend("device", "--socket-path", dir.resolve("dev.sock").toString(),
            "--vhost-pci-listen", dir.resolve("pci.sock").toString());
    }

    private Process client() throws IOException, InterruptedException {
        return backend("client", "--socket-path", dir.resolve("cli.sock").toString(),
            "--vhost-pci-connect", dir.resolve("pci.sock").toString());
    }

    private static VirtioNetDriver driver(final Path socket) throws IOException, InterruptedException {
        final long deadline = System.nanoTime() + WAIT.toNanos();
        VirtioNetDriver d;
        while (true) {
            try {
                d = VirtioNetDriver.start(socket, VirtioNetDriver.Options.defaults());
                break;
            } catch (final java.net.SocketException e) {
                // the socket file appears at bind(), a moment before listen()
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(20);
            }
        }
        d.postRxBuffers(128, 2048);
        return d;
    }

    /**
     * Send probe frames from {@code from} until one arrives at {@code to} (frames are dropped while the client is
     * not yet delegated), then check that a burst crosses intact.
     */
    private static void awaitPath(final VirtioNetDriver from, final VirtioNetDriver to, final byte[] dst,
                                  final byte[] src) {
        final long deadline = System.nanoTime() + JOIN.toNanos();
        int seed = 0;
        while (true) {
            from.send(VhostPciPeerModeTest.frame(dst, src, 80, seed++));
            final byte[] got = to.receive(Duration.ofMillis(100));
            if (got != null && got.length == 80) {
                break; // a probe (not a frame of the burst that was delivered before a kill and not read yet)
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no path from " + from + " to " + to + " after " + seed + " probes");
            }
        }
        while (to.receive(Duration.ofMillis(50)) != null) {
            // late probes
        }
        for (int i = 0; i < 50; i++) {
            if (to.rxPosted() < 16) {
                to.postRxBuffers(64, 2048);
            }
            final byte[] f = VhostPciPeerModeTest.frame(dst, src, 64 + i * 29, 1000 + i);
            from.send(f);
            assertArrayEquals(f, to.receive(WAIT), "frame " + i);
        }
    }

    private static void both(final VirtioNetDriver d, final VirtioNetDriver c) {
        awaitPath(d, c, PeerBackend.MAC_C, PeerBackend.MAC_D);
        awaitPath(c, d, PeerBackend.MAC_D, PeerBackend.MAC_C);
    }

    /** Mid-traffic: frames in flight in both directions when the kill lands. */
    private static void burst(final VirtioNetDriver d, final VirtioNetDriver c) {
        for (int i = 0; i < 64; i++) {
            d.send(VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 1000, i));
            c.send(VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 1000, i));
        }
    }

    @Test
    void killingTheDeviceSideLeavesTheClientServingAndARestartRestoresTraffic() throws Exception {
        final Process dev = device();
        client();
        try (VirtioNetDriver c = driver(dir.resolve("cli.sock"))) {
            try (VirtioNetDriver d = driver(dir.resolve("dev.sock"))) {
                both(d, c);
                burst(d, c);
                dev.destroyForcibly(); // SIGKILL
                dev.waitFor();
            }
            // The client took its rings back from guest memory: its guest's TX completes (dropped, no peer).
            for (int i = 0; i < 300; i++) {
                c.send(VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 500, i));
            }
            assertTrue(c.awaitTxDone(JOIN), "client guest's TX ring keeps moving after the device side died");
            device();
            try (VirtioNetDriver d2 = driver(dir.resolve("dev.sock"))) {
                both(d2, c);
            }
        }
    }

    @Test
    void killingTheClientSideLeavesTheDeviceServingAndARestartRestoresTraffic() throws Exception {
        device();
        final Process cli = client();
        try (VirtioNetDriver d = driver(dir.resolve("dev.sock"))) {
            try (VirtioNetDriver c = driver(dir.resolve("cli.sock"))) {
                both(d, c);
                burst(d, c);
                cli.destroyForcibly();
                cli.waitFor();
            }
            for (int i = 0; i < 300; i++) {
                d.send(VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 500, i));
            }
            assertTrue(d.awaitTxDone(JOIN), "device guest's TX ring keeps moving after the client side died");
            client();
            try (VirtioNetDriver c2 = driver(dir.resolve("cli.sock"))) {
                both(d, c2);
            }
        }
    }
}
