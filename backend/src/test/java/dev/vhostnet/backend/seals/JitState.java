package dev.vhostnet.backend.seals;

import dev.vhostnet.frontend.Await;

import javax.management.ObjectName;
import java.lang.management.ManagementFactory;
import java.time.Duration;

/**
 * Which of the dataplane's methods HotSpot has compiled (jcmd's Compiler.codelist, from inside the JVM), so a
 * test can state whether its ring accesses and copies ran compiled or interpreted.
 */
public final class JitState {
    private JitState() {
    }

    /** Whether this JVM interprets everything (-Xint). */
    public static boolean interpreted() {
        return System.getProperty("java.vm.info", "").contains("interpreted mode");
    }

    /** Whether some method of {@code className} (e.g. "dev.vhostnet.dataplane.virtq.SplitVirtqueue") is compiled. */
    public static boolean hasCompiled(final String className) {
        return codeList().contains(className + ".");
    }

    private static String codeList() {
        try {
            return (String) ManagementFactory.getPlatformMBeanServer().invoke(
                new ObjectName("com.sun.management:type=DiagnosticCommand"), "compilerCodelist",
                new Object[] {null}, new String[] {String[].class.getName()});
        } catch (final Exception e) {
            throw new IllegalStateException("cannot list compiled methods", e);
        }
    }

    /**
     * The dataplane's ring walk and copy run compiled (default JVM, after a warm-up) or interpreted (-Xint): the
     * two ways HotSpot handles a faulting access differ, and a test about faults must say which it exercised.
     */
    public static void assertDataplaneMode() {
        final String[] hot = {"dev.vhostnet.dataplane.virtq.SplitVirtqueue", "dev.vhostnet.dataplane.net.PacketForwarder"};
        for (final String c : hot) {
            if (interpreted()) {
                if (hasCompiled(c)) {
                    throw new AssertionError(c + " compiled under -Xint");
                }
            } else {
                // The compiler threads work in the background and a loaded machine queues them: wait for them.
                Await.until(c + " compiled after the warm-up", Duration.ofSeconds(60), () -> hasCompiled(c), () -> "");
            }
        }
    }
}
