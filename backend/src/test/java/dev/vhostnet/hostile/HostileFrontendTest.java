package dev.vhostnet.hostile;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * Every hostile case of {@link HostileCases}, one after another against the same back-end: each attacks port
 * A, checks the reaction it owes, and then {@link Arena#assertHealthy} shows that port B's original session
 * still forwards, that port A forwards again for a well-behaved front-end, and that no fd, mapping or thread
 * was left behind.
 */
class HostileFrontendTest {
    @TempDir
    static Path dir;
    private static Arena arena;
    private static int passed;

    @BeforeAll
    static void start() throws Exception {
        arena = new Arena(dir);
    }

    @AfterAll
    static void stop() throws Exception {
        System.out.println("hostile front-end cases: " + HostileCases.all().size() + ", passed: " + passed);
        arena.close();
    }

    @TestFactory
    Stream<DynamicTest> hostileFrontEnds() {
        final List<HostileCases.Case> cases = HostileCases.all();
        // -Dhostile.only=TEXT runs only the cases whose name contains TEXT (when chasing one failure).
        final String only = System.getProperty("hostile.only", "");
        return cases.stream().filter(c -> c.name().contains(only)).map(c -> DynamicTest.dynamicTest(c.name(), () -> {
            try {
                c.attack().run(arena);
                arena.assertHealthy(c.name());
            } catch (final Throwable t) {
                throw new AssertionError("hostile case '" + c.name() + "': " + t, t);
            }
            passed++;
        }));
    }
}
