package dev.vhostnet.e2e;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The e2e harness's knobs (timeouts, payload size, tool names), overridable with system
 * properties so a slow machine can be given more time without editing code.
 */
public final class E2eSettings {
    static final AtomicInteger RUN_COUNTER = new AtomicInteger();

    private E2eSettings() {
    }

    /** The module's build directory: surefire runs tests with the module as working directory. */
    public static Path targetDir() {
        String base = System.getProperty("basedir", System.getProperty("user.dir"));
        return Path.of(base).toAbsolutePath().resolve("target");
    }

    /** How long to wait for one guest milestone (boot, ping, transfer); TCG is slow. */
    public static Duration markerTimeout() {
        return Duration.ofSeconds(Long.getLong("vhostnet.e2e.timeoutSeconds", 240));
    }

    /** Payload the sender guest pushes to the receiver, in MiB. */
    public static int payloadMiB() {
        return Integer.getInteger("vhostnet.e2e.payloadMiB", 8);
    }

    /** MiB of zeros each throughput row pushes through, timed in the guest. */
    public static int throughputMiB() {
        return Integer.getInteger("vhostnet.e2e.throughputMiB", 64);
    }

    /** How often each throughput row repeats its timed transfer (one boot, several runs). */
    public static int throughputRuns() {
        return Integer.getInteger("vhostnet.e2e.throughputRuns", 5);
    }

    public static String qemuBinary() {
        return System.getProperty("vhostnet.e2e.qemu", "qemu-system-x86_64");
    }

    public static String testpmdBinary() {
        return System.getProperty("vhostnet.e2e.testpmd", "dpdk-testpmd");
    }

    /** Unique across concurrent runs on one host: DPDK keeps per-prefix state in /var/run/dpdk. */
    public static String uniqueName(String prefix) {
        return prefix + "-" + ProcessHandle.current().pid() + "-" + RUN_COUNTER.incrementAndGet();
    }
}
