package dev.vhostnet.e2e;

import java.nio.file.Path;
import java.util.List;

/**
 * One run of a {@link TwoGuestScenario} through our back-end, with the back-end's final queue
 * counters. The receiver guest is on socket A, the sender on socket B.
 */
public record OurBackendRun(TwoGuestScenario.Result result, BackendStats stats, Path receiverSocket,
                            Path senderSocket, Path logDir) {

    /**
     * Starts our back-end with {@code backendArgs} in fresh log and socket directories, runs
     * {@code scenario}, stops the back-end and reads its counters. Every child is gone on return.
     */
    public static OurBackendRun run(String name, TwoGuestScenario scenario, List<String> backendArgs)
            throws Exception {
        Path logDir = E2eDirs.newLogDir(name);
        Path socketDir = E2eDirs.newSocketDir("run");
        try (BackendProcess backend = BackendProcess.start(socketDir, logDir, List.of(), backendArgs)) {
            TwoGuestScenario.Result r = scenario.run(backend, logDir);
            BackendStats stats = backend.stopAndReadStats();
            System.out.println("e2e: " + name + " back-end counters:" + stats);
            return new OurBackendRun(r, stats, backend.socketA(), backend.socketB(), logDir);
        } finally {
            E2eDirs.deleteTree(socketDir);
        }
    }

    /** Receiver's pair {@code pair} RX queue: what the back-end delivered to the receiver. */
    public BackendStats.Queue receiverRx(int pair) {
        return stats.rx(receiverSocket, pair);
    }

    /** Sender's pair {@code pair} TX queue: what the sender transmitted. */
    public BackendStats.Queue senderTx(int pair) {
        return stats.tx(senderSocket, pair);
    }

    public long receiverRxPackets() {
        return stats.rxPackets(receiverSocket);
    }

    public long receiverRxBytes() {
        return stats.rxBytes(receiverSocket);
    }

    public long senderTxPackets() {
        return stats.txPackets(senderSocket);
    }

    /** For assertion messages: counters plus the tails of all logs. */
    public String diagnostics() {
        return "\nback-end counters:" + stats + result.diagnostics();
    }
}
