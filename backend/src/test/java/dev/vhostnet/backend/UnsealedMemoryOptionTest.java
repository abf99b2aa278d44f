package dev.vhostnet.backend;

import dev.vhostnet.dataplane.memory.UnsealedMemory;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --unsealed-memory: refuse by default, allow on request (any case), anything else a usage error. */
class UnsealedMemoryOptionTest {
    private static CommandLine cli(final Main main) {
        final CommandLine cl = new CommandLine(main);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        return cl;
    }

    @Test
    void refuseIsTheDefaultAndAllowIsParsed() {
        final Main defaults = new Main(System.out, System.err);
        cli(defaults).parseArgs("--socket-path", "/tmp/x.sock");
        assertEquals(UnsealedMemory.REFUSE, defaults.unsealedMemory);
        final Main allow = new Main(System.out, System.err);
        cli(allow).parseArgs("--socket-path", "/tmp/x.sock", "--unsealed-memory", "ALLOW");
        assertEquals(UnsealedMemory.ALLOW, allow.unsealedMemory);
    }

    @Test
    void anyOtherValueIsAUsageErrorNamingTheChoices() {
        final StringWriter err = new StringWriter();
        final CommandLine cl = cli(new Main(new PrintStream(new ByteArrayOutputStream()), System.err));
        cl.setErr(new PrintWriter(err));
        assertEquals(2, cl.execute("--socket-path", "/tmp/x.sock", "--unsealed-memory", "sometimes"));
        assertTrue(err.toString().contains("--unsealed-memory") && err.toString().contains("REFUSE, ALLOW"), err.toString());
    }
}
