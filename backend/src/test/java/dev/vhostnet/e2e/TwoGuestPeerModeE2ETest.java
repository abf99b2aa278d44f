package dev.vhostnet.e2e;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Two QEMU guests joined through our back-end ({@code dev.vhostnet.backend.Main}) in peer mode:
 * they must ping each other and move a multi-MiB payload intact. {@link
 * TwoGuestDpdkReferenceE2ETest} runs the same scenario through DPDK to vouch for the harness.
 */
@Tag("e2e")
class TwoGuestPeerModeE2ETest {

    @Test
    void guestsPingAndTransferThroughOurBackend() throws Exception {
        Path logDir = E2eDirs.newLogDir("peer-mode");
        Path socketDir = E2eDirs.newSocketDir("peer");
        try (BackendProcess backend = BackendProcess.start(socketDir, logDir, List.of(), List.of())) {
            TwoGuestScenario.Result r = TwoGuestScenario.defaults().run(backend, logDir);
            E2eAssertions.assertTransferIntact(r);
        } finally {
            E2eDirs.deleteTree(socketDir);
        }
    }
}
