package dev.vhostnet.backend.vhostpci;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * Every hostile vhost-pci client case of {@link HostilePciCases}, one after another against the same device-side
 * back-end: each attacks the vhost-pci socket, checks the reaction it owes, and then {@link PciArena#assertHealthy}
 * shows that the back-end let go of everything the attacker gave it, that its own front-end still forwards, that
 * a well-behaved client is admitted and forwards, and that no fd, mapping or thread was left behind.
 */
class HostilePciClientTest {
    @TempDir
    static Path dir;
    private static PciArena arena;
    private static int passed;

    @BeforeAll
    static void start() throws Exception {
        arena = new PciArena(dir);
    }

    @AfterAll
    static void stop() {
        System.out.println("hostile vhost-pci client cases: " + HostilePciCases.all().size() + ", passed: " + passed);
        if (arena != null) {
            arena.close();
        }
    }

    /**
     * The case about to run, appended to target/hostile-pci-cases.log: if a case takes the JVM down (a fault the
     * JVM cannot recover from), the last line of that file names it, as surefire loses the test's own output.
     */
    private static void progress(final String name) {
        try {
            java.nio.file.Files.writeString(Path.of("target", "hostile-pci-cases.log"), name + "\n",
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        } catch (final java.io.IOException e) {
            // only a diagnostic
        }
    }

    @TestFactory
    Stream<DynamicTest> hostileClients() {
        return run(HostilePciCases.all());
    }

    /**
     * The cases that need the transport to own its fds: more than 60 per message (junixsocket's old limit), and
     * no second close of received fds when a connection's socket closes (that left an epoll registration behind,
     * so the next session with the same eventfd failed its DEVICE_INFO ADD with BAD_RING).
     */
    @TestFactory
    Stream<DynamicTest> hostileClientsNeedingTheFdOwnershipFix() {
        return run(HostilePciCases.fdTransport());
    }

    private Stream<DynamicTest> run(final List<HostilePciCases.Case> cases) {
        // -Dhostile.only=TEXT|TEXT runs only the cases whose name contains one of the TEXTs (chasing a failure).
        final String[] only = System.getProperty("hostile.only", "").split("\\|");
        return cases.stream().filter(c -> java.util.Arrays.stream(only).anyMatch(c.name()::contains)).map(c -> DynamicTest.dynamicTest(c.name(), () -> {
            progress(c.name());
            try {
                c.attack().run(arena);
                arena.assertHealthy(c.name());
            } catch (final Throwable t) {
                throw new AssertionError("hostile vhost-pci case '" + c.name() + "': " + t, t);
            }
            passed++;
        }));
    }
}
