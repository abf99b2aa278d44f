package dev.vhostnet.e2e;

import java.nio.file.Path;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The two-guest scenario through dpdk-testpmd (vhost PMD, io forwarding). It does not touch our
 * back-end: it proves the harness (image, guests, markers) works, so a failure of
 * {@link TwoGuestPeerModeE2ETest} points at the back-end rather than at the harness.
 */
@Tag("e2e")
class TwoGuestDpdkReferenceE2ETest {

    @Test
    void guestsPingAndTransferThroughTestpmd() throws Exception {
        Path logDir = E2eDirs.newLogDir("dpdk-reference");
        Path socketDir = E2eDirs.newSocketDir("dpdk");
        try (DpdkVhostBackendProcess backend = DpdkVhostBackendProcess.start(socketDir, logDir)) {
            TwoGuestScenario.Result r = TwoGuestScenario.defaults().run(backend, logDir);
            E2eAssertions.assertTransferIntact(r);
        } finally {
            E2eDirs.deleteTree(socketDir);
        }
    }
}
