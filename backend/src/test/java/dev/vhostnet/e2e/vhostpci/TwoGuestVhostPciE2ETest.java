package dev.vhostnet.e2e.vhostpci;

import dev.vhostnet.e2e.E2eAssertions;
import dev.vhostnet.e2e.E2eDirs;
import dev.vhostnet.e2e.E2eSettings;
import dev.vhostnet.e2e.GuestConfig;
import dev.vhostnet.e2e.GuestImage;
import dev.vhostnet.e2e.GuestRole;
import dev.vhostnet.e2e.QemuGuest;
import dev.vhostnet.e2e.TwoGuestScenario;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two QEMU guests, each with its own back-end process (device side for the receiver on socket A, client side
 * for the sender on socket B), joined over vhost-pci: they ping each other and move a payload intact. A guest
 * killed mid-transfer leaves both back-ends serving, and the next pair of guests transfers intact again.
 */
@Tag("e2e")
class TwoGuestVhostPciE2ETest {

    @Test
    void guestsPingAndTransferThroughTwoBackendProcesses() throws Exception {
        Path logDir = E2eDirs.newLogDir("vhostpci-qemu");
        Path socketDir = E2eDirs.newSocketDir("vpi-q");
        try (TwoProcessPeerBackend backend = TwoProcessPeerBackend.start(socketDir, logDir, List.of())) {
            E2eAssertions.assertTransferIntact(TwoGuestScenario.defaults().run(backend, logDir));
        } finally {
            E2eDirs.deleteTree(socketDir);
        }
    }

    @Test
    void aGuestKilledMidTransferLeavesBothBackendsServing() throws Exception {
        Path logDir = E2eDirs.newLogDir("vhostpci-qemu-kill");
        Path socketDir = E2eDirs.newSocketDir("vpi-qk");
        try (TwoProcessPeerBackend backend = TwoProcessPeerBackend.start(socketDir, logDir, List.of())) {
            for (GuestRole victim : GuestRole.values()) {
                killMidTransfer(backend, logDir, victim);
                assertTrue(backend.deviceAlive() && backend.clientAlive(), "both back-ends survive the guest's death");
                // A restarted pair of guests gets through again, intact.
                E2eAssertions.assertTransferIntact(TwoGuestScenario.defaults().run(backend, logDir));
            }
        } finally {
            E2eDirs.deleteTree(socketDir);
        }
    }

    private static void killMidTransfer(TwoProcessPeerBackend backend, Path logDir, GuestRole victim)
            throws Exception {
        Duration timeout = E2eSettings.markerTimeout();
        int mib = Math.max(64, E2eSettings.payloadMiB()); // long enough to be killed in the middle
        GuestImage image = GuestImage.get();
        GuestConfig receiver = new GuestConfig("kill-receiver-" + victim, backend.socketA(), "52:54:00:e2:e0:11",
                GuestRole.RECEIVER, "10.0.0.1", "10.0.0.2", mib, List.of());
        GuestConfig sender = new GuestConfig("kill-sender-" + victim, backend.socketB(), "52:54:00:e2:e0:12",
                GuestRole.SENDER, "10.0.0.2", "10.0.0.1", mib, List.of());
        try (QemuGuest r = QemuGuest.boot(image, receiver, logDir); QemuGuest s = QemuGuest.boot(image, sender, logDir)) {
            s.await("PING_OK", timeout);
            r.await("PING_OK", timeout);
            String mac = victim == GuestRole.SENDER ? sender.mac() : receiver.mac();
            // SIGKILL the victim's QEMU while the payload streams.
            ProcessHandle.current().descendants()
                    .filter(p -> p.info().commandLine().map(c -> c.contains("mac=" + mac)).orElse(false))
                    .forEach(ProcessHandle::destroyForcibly);
            String survivorLog = victim == GuestRole.SENDER ? "device" : "client";
            Path log = victim == GuestRole.SENDER ? backend.clientLog() : backend.logFile();
            DpdkLoopVhostPciE2ETest.awaitLine(log, "front-end disconnected");
            System.out.printf("e2e: %s guest SIGKILLed mid-transfer; %s side kept running%n", victim, survivorLog);
        }
    }
}
