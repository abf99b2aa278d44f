package dev.vhostnet.backend.inflight;

import dev.vhostnet.backend.NetDeviceConfig;
import dev.vhostnet.backend.VhostUserServer;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.frontend.Await;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * A front-end that goes away after each message of the QEMU start-up sequence (inflight buffer included), and
 * once in the middle of traffic, against the back-end running in this JVM with a second front-end attached to
 * the peer port all along. After each, the process is back to where it was (open fds, memfd mappings,
 * threads) and the next front-end gets a working device.
 */
class SetupDisconnectTest {
    private static final Logger PROJECT_LOG = Logger.getLogger("dev.vhostnet");
    private static final byte[] MAC_A = {0x52, 0x54, 0x00, 0x0a, 0x0a, 0x0a};
    private static final byte[] MAC_B = {0x52, 0x54, 0x00, 0x0b, 0x0b, 0x0b};
    private static final Duration WAIT = Duration.ofSeconds(5);

    static {
        PROJECT_LOG.setLevel(Level.parse(System.getProperty("vhostnet.test.log", "SEVERE")));
    }

    @TempDir
    Path dir;
    private Dataplane dataplane;
    private VirtioNetPort[] ports;
    private final List<VhostUserServer> servers = new ArrayList<>();

    @BeforeEach
    void startBackend() throws IOException {
        ports = new VirtioNetPort[] {new VirtioNetPort(dir.resolve("a.sock").toString()),
            new VirtioNetPort(dir.resolve("b.sock").toString())};
        dataplane = new Dataplane(ports, new VirtioNetPort[] {ports[1], ports[0]}, PollMode.ADAPTIVE, -1);
        servers.add(VhostUserServer.listen(dir.resolve("a.sock"), ports[0], dataplane, new NetDeviceConfig(MAC_A), null));
        servers.add(VhostUserServer.listen(dir.resolve("b.sock"), ports[1], dataplane, new NetDeviceConfig(MAC_B), null));
        dataplane.start();
        servers.forEach(VhostUserServer::start);
    }

    @AfterEach
    void stopBackend() {
        servers.forEach(VhostUserServer::close);
        dataplane.close();
    }

    @Test
    void disconnectingAtEveryPointOfSetupLeavesNothingBehind() throws Exception {
        try (CrashGuest b = new CrashGuest("B", MAC_B)) {
            b.connect(dir.resolve("b.sock"));
            b.refillRx();
            workingSession(b, 0); // warm-up: classes, native libraries, lazily opened JDK files
            final Snapshot baseline = Snapshot.take();
            for (int messages = 0; messages <= CrashGuest.SETUP_MESSAGES; messages++) {
                final String when = "after " + messages + " of " + CrashGuest.SETUP_MESSAGES + " setup messages";
                final CrashGuest leaving = new CrashGuest("A", MAC_A);
                try (CrashGuest a = leaving) {
                    a.connect(dir.resolve("a.sock"), messages);
                    if (messages == CrashGuest.SETUP_MESSAGES) {
                        // Fully set up: leave in the middle of traffic, frames in both rings.
                        a.refillRx();
                        a.transmit(MAC_B, 64);
                    }
                }
                awaitBackTo(baseline, when);
                // Frames the leaving A got through before it left are B's to read now, checked against that A.
                b.receive(leaving);
                workingSession(b, messages + 1);
                awaitBackTo(baseline, when + ", then a working session");
            }
        }
    }

    /** A complete front-end on port A exchanges frames with B both ways, then leaves. */
    private void workingSession(final CrashGuest b, final int seed) throws IOException {
        try (CrashGuest a = new CrashGuest("A" + seed, MAC_A)) {
            a.connect(dir.resolve("a.sock"));
            a.refillRx();
            final long aGot = a.received;
            final long bGot = b.received;
            a.transmit(MAC_B, 1);
            b.transmit(MAC_A, 1);
            final long deadline = System.nanoTime() + WAIT.toNanos();
            while (a.received == aGot || b.received == bGot || a.outstanding() > 0 || b.outstanding() > 0) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("session " + seed + ": A received " + (a.received - aGot) + ", B "
                        + (b.received - bGot) + ", outstanding " + a.outstanding() + "/" + b.outstanding());
                }
                a.reclaim();
                b.reclaim();
                a.receive(b);
                b.receive(a);
                a.refillRx();
                b.refillRx();
                Thread.onSpinWait();
            }
        }
        Await.until("A's port stopped", WAIT, () -> !ports[0].queue(0).isStarted() && !ports[0].queue(1).isStarted(),
            () -> ports[0].queue(0) + " " + ports[0].queue(1));
    }

    private static void awaitBackTo(final Snapshot baseline, final String when) {
        Await.until(when + ": resources back to " + baseline, WAIT, () -> Snapshot.take().withinOf(baseline),
            () -> Snapshot.take().toString());
    }

    /** What a connection could leak: open fds, memfd mappings, threads. */
    private record Snapshot(long fds, long memfdMappings, int threads) {
        static Snapshot take() {
            return new Snapshot(count(Path.of("/proc/self/fd")), countMemfdMappings(),
                ManagementFactory.getThreadMXBean().getThreadCount());
        }

        boolean withinOf(final Snapshot baseline) {
            return fds <= baseline.fds && memfdMappings <= baseline.memfdMappings && threads <= baseline.threads;
        }

        private static long count(final Path dir) {
            try (Stream<Path> s = Files.list(dir)) {
                return s.count();
            } catch (final IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        private static long countMemfdMappings() {
            try (Stream<String> lines = Files.lines(Path.of("/proc/self/maps"))) {
                return lines.filter(l -> l.contains("/memfd:")).count();
            } catch (final IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }
}
