package dev.vhostnet.e2e.migration;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.vhostnet.e2e.E2eDirs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Live migration of guests served by our back-end, checked for exact state rather than waited on for a
 * crash ({@link MigrationChain}): after every migration the destination's RAM must equal the source's page
 * by page and its virtqueue state must equal what the source's back-end handed back, and then the migrated
 * guests must work through the destination's back-end. Each case boots two guests and migrates both at once
 * (the receiver: traffic into it, RX buffers and used ring written by the back-end; the sender: its TX used
 * ring, its TCP payloads leaving as TSO frames), {@code vhostnet.e2e.migrationRounds} times (default 2, i.e.
 * 4 migrations; scripts/migration-soak.sh runs more).
 */
@Tag("e2e")
class MigrationConsistencyE2ETest {
    private static final int ROUNDS = Integer.getInteger("vhostnet.e2e.migrationRounds", 2);

    /** The NIC variants: ring format and receive buffers (vhostnet.e2e.migrationNics narrows them, ';'-separated). */
    static List<String> nics() {
        String only = System.getProperty("vhostnet.e2e.migrationNics", "");
        return only.isEmpty() ? List.of("split,mergeable", "packed,mrg_rxbuf=off") : List.of(only.split(";"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("nics")
    void everyMigrationLeavesTheDestinationIdenticalAndWorking(String nic) throws Exception {
        List<String> props = new ArrayList<>();
        for (String p : nic.split(",")) {
            if (p.equals("packed")) {
                props.add("packed=on");
            } else if (p.contains("=")) {
                props.add(p);
            }
        }
        Path logDir = E2eDirs.newLogDir("migration-" + nic.replace(',', '-').replace('=', '-'));
        Path sockDir = E2eDirs.newSocketDir("mig");
        Path ramDir = Files.createTempDirectory(Path.of("/dev/shm"), "vhostnet-mig-");
        List<MigrationChain.Round> rounds = new ArrayList<>();
        try (MigrationChain chain = MigrationChain.start(logDir, sockDir, ramDir, props)) {
            for (int i = 0; i < ROUNDS; i++) {
                MigrationChain.Round r = chain.migrateBoth();
                System.out.println("e2e: " + nic + ": " + r);
                rounds.add(r);
            }
        } catch (AssertionError | Exception e) {
            throw new AssertionError(e.getMessage() + "\nrounds so far:\n" + String.join("\n",
                    rounds.stream().map(Object::toString).toList()) + "\nlogs in " + logDir, e);
        } finally {
            E2eDirs.deleteTree(sockDir);
            E2eDirs.deleteTree(ramDir);
        }
        List<MigrationChain.Migration> all = rounds.stream().flatMap(r -> r.migrations().stream()).toList();
        long clean = all.stream().filter(MigrationChain.Migration::clean).count();
        int pages = all.stream().mapToInt(m -> m.ram().differing().size()).sum();
        System.out.println("e2e: " + nic + ": " + clean + " of " + all.size() + " migrations exact, " + pages
                + " differing pages in all; logs in " + logDir);
        assertTrue(clean == all.size(), nic + ": " + (all.size() - clean) + " of " + all.size()
                + " migrations left the destination different from the source:\n" + String.join("\n",
                rounds.stream().filter(r -> !r.clean()).map(Object::toString).toList()) + "\nlogs in " + logDir);
    }
}
