package dev.vhostnet.e2e.dpdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Runs in the ordinary build: reading the back-end's exit counters from lines shaped like StatsPrinter's. */
class BackendCounterParserTest {
    private static final Path A = Path.of("/tmp/t/a.sock");
    private static final Path B = Path.of("/tmp/t/b.sock");

    @Test
    void lastFinalBlockCountsTakenAsForwardedPlusDropped() {
        List<String> output = List.of(
                "stats periodic /tmp/t/a.sock q0(rx) packets=1 bytes=64 drops=0 kicks=0 calls=0 errors=0",
                "stats final /tmp/t/a.sock q0(rx) packets=90 bytes=5760 drops=0 kicks=0 calls=0 errors=0",
                "stats final /tmp/t/a.sock q1(tx) packets=100 bytes=6400 drops=2 kicks=0 calls=0 errors=0",
                "stats final /tmp/t/b.sock q0(rx) packets=100 bytes=6400 drops=0 kicks=0 calls=0 errors=0",
                "stats final /tmp/t/b.sock q1(tx) packets=90 bytes=5760 drops=1 kicks=0 calls=0 errors=0");
        assertEquals(Optional.of(new BackEndCounters(102, 100, 91, 90)), BackendCounterParser.parseFinal(output, A, B));
    }

    @Test
    void nothingWhenOnlyPeriodicCountersWerePrinted() {
        List<String> output = List.of(
                "stats periodic /tmp/t/a.sock q0(rx) packets=1 bytes=64 drops=0 kicks=0 calls=0 errors=0");
        assertTrue(BackendCounterParser.parseFinal(output, A, B).isEmpty());
    }
}
