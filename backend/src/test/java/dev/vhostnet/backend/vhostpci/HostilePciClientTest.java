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

    @TestFactory
    Stream<DynamicTest> hostileClients() {
        final List<HostilePciCases.Case> cases = HostilePciCases.all();
        // -Dhostile.only=TEXT runs only the cases whose name contains TEXT (when chasing one failure).
        final String only = System.getProperty("hostile.only", "");
        return cases.stream().filter(c -> c.name().contains(only)).map(c -> DynamicTest.dynamicTest(c.name(), () -> {
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
