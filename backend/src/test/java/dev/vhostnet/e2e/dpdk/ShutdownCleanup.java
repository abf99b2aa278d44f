package dev.vhostnet.e2e.dpdk;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Last line of defence when the JVM is stopped mid-run (Ctrl-C on the benchmark, a Surefire timeout):
 * kills every child still running, then removes the files they would have left behind. Normal runs
 * clean up in close() and never need this.
 */
final class ShutdownCleanup {
    private static final Set<Process> PROCESSES = ConcurrentHashMap.newKeySet();
    private static final Set<Runnable> FILES = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(ShutdownCleanup::run, "e2e-shutdown-cleanup"));
    }

    private ShutdownCleanup() {
    }

    static void add(Process process) {
        PROCESSES.add(process);
    }

    static void remove(Process process) {
        PROCESSES.remove(process);
    }

    /** {@code deletion} must be idempotent; it runs after all children are dead. */
    static void add(Runnable deletion) {
        FILES.add(deletion);
    }

    static void remove(Runnable deletion) {
        FILES.remove(deletion);
    }

    private static void run() {
        List<Process> processes = new ArrayList<>(PROCESSES);
        processes.forEach(Process::destroyForcibly);
        for (Process p : processes) {
            try {
                p.waitFor(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                break;
            }
        }
        for (Runnable deletion : new ArrayList<>(FILES)) {
            try {
                deletion.run();
            } catch (RuntimeException ignored) {
                // best effort while the JVM exits
            }
        }
    }
}
