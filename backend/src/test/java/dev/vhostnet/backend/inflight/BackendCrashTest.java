package dev.vhostnet.backend.inflight;

import dev.vhostnet.frontend.Await;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The back-end in its own JVM, two guests (the Java front-end) exchanging frames through it in peer mode with
 * inflight tracking negotiated; the back-end is SIGKILLed in the middle of the traffic and a new one started on
 * the same sockets, several times. The guests keep their memory, rings and inflight buffer, reconnect as QEMU
 * does after a back-end crash (SET_INFLIGHT_FD with the kept fd, SET_VRING_BASE = used->idx) and carry on.
 *
 * <p>Checked: every transmitted frame is completed exactly once, none is lost (all complete at the end), no
 * receive buffer is returned twice, received frames are intact, frames flow again after every restart, and at
 * the end the inflight regions are consistent (initialized, used_idx = used->idx, nothing left inflight: what
 * the dead back-ends had in flight was resubmitted and completed, and rewound receive chains were not left
 * marked).
 */
class BackendCrashTest {
    private static final byte[] MAC_A = {0x52, 0x54, 0x00, 0x0a, 0x0a, 0x0a};
    private static final byte[] MAC_B = {0x52, 0x54, 0x00, 0x0b, 0x0b, 0x0b};
    private static final int KILLS = 4;
    /** Frames each side must receive in every life of the back-end. */
    private static final int FRAMES_PER_ROUND = 3000;
    private static final Duration ROUND_TIMEOUT = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 400, unit = TimeUnit.SECONDS)
    void everyTransmitCompletesExactlyOnceAcrossBackendKills() throws Exception {
        final Path sockA = dir.resolve("a.sock");
        final Path sockB = dir.resolve("b.sock");
        final Path log = dir.resolve("backend.log");
        Process backend = null;
        final List<String> timeline = new ArrayList<>();
        try (CrashGuest a = new CrashGuest("A", MAC_A); CrashGuest b = new CrashGuest("B", MAC_B)) {
            long t0 = System.nanoTime();
            backend = startBackend(sockA, sockB, log);
            timeline.add("start " + ms(t0));
            a.connect(sockA);
            b.connect(sockB);
            int inflightSeen = 0;
            for (int round = 0; round <= KILLS; round++) {
                final long receivedA = a.received;
                final long receivedB = b.received;
                final long t = System.nanoTime();
                final long deadline = t + ROUND_TIMEOUT.toNanos();
                // Traffic both ways until each side got its share in this life of the back-end.
                while (a.received - receivedA < FRAMES_PER_ROUND || b.received - receivedB < FRAMES_PER_ROUND) {
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("round " + round + ": frames stopped flowing: A received "
                            + (a.received - receivedA) + ", B " + (b.received - receivedB) + "; backend log:\n" + tail(log));
                    }
                    pump(a, b);
                }
                timeline.add("round " + round + " " + (a.received - receivedA) + "/" + (b.received - receivedB)
                    + " frames in " + ms(t));
                if (round == KILLS) {
                    break;
                }
                // Kill in the middle of a burst: fill both transmit rings and SIGKILL as soon as the inflight
                // regions show chains taken and not completed; if the dataplane got through the rings first,
                // collect and try again (a burst lasts microseconds, filling a ring from Java about a millisecond).
                final long tk = System.nanoTime();
                int attempts = 0;
                boolean midBurst = false;
                while (!midBurst && attempts++ < 5000) {
                    pump(a, b);
                    a.transmit(MAC_B, CrashGuest.QUEUE_SIZE, false);
                    b.transmit(MAC_A, CrashGuest.QUEUE_SIZE, false);
                    a.tx.publish(); // both rings at once: one long busy stretch for the dataplane
                    b.tx.publish();
                    final long giveUp = System.nanoTime() + 2_000_000;
                    while (!(midBurst = transmitsInflight(a, b)) && System.nanoTime() < giveUp) {
                        Thread.onSpinWait();
                    }
                    if (midBurst) {
                        // Freeze the back-end, then look again: a burst lasts microseconds, a signal takes longer.
                        signal(backend, "STOP");
                        awaitStopped(backend);
                        midBurst = transmitsInflight(a, b);
                        if (!midBurst) {
                            signal(backend, "CONT");
                        }
                    }
                }
                backend.destroyForcibly();
                assertTrue(backend.waitFor(10, TimeUnit.SECONDS), "back-end did not die");
                final String inflightAtKill = "A rx/tx " + a.regionInflight(CrashGuest.RX) + "/" + a.regionInflight(CrashGuest.TX)
                    + " B rx/tx " + b.regionInflight(CrashGuest.RX) + "/" + b.regionInflight(CrashGuest.TX);
                inflightSeen += a.regionInflight(CrashGuest.RX) + a.regionInflight(CrashGuest.TX)
                    + b.regionInflight(CrashGuest.RX) + b.regionInflight(CrashGuest.TX);
                a.disconnected();
                b.disconnected();
                // The guests go on posting while no back-end runs; these must complete after the restart.
                a.transmit(MAC_B, 16);
                b.transmit(MAC_A, 16);
                Files.deleteIfExists(sockA); // stale: the killed back-end could not remove them
                Files.deleteIfExists(sockB);
                backend = startBackend(sockA, sockB, log);
                a.connect(sockA);
                b.connect(sockB);
                timeline.add("kill " + (round + 1) + ": " + inflightAtKill + " heads flagged inflight (attempt " + attempts + "), back in " + ms(tk));
            }
            // At least one kill must have caught chains in flight, or the resubmission path went untested.
            assertTrue(inflightSeen > 0, "no kill landed while chains were in flight");
            timeline.add(resubmissions(log));
            // Quiesce: stop transmitting, wait for every frame to complete.
            final long deadline = System.nanoTime() + ROUND_TIMEOUT.toNanos();
            while (a.outstanding() > 0 || b.outstanding() > 0) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("frames never completed: A " + a.outstanding() + ", B " + b.outstanding()
                        + " outstanding; backend log:\n" + tail(log));
                }
                a.reclaim();
                b.reclaim();
                a.receive(b);
                b.receive(a);
                a.refillRx();
                b.refillRx();
            }
            for (final CrashGuest g : List.of(a, b)) {
                assertTrue(g.allCompleted(), g.name + ": " + g.completions + " completions for " + g.posted + " frames");
                for (final int q : new int[] {CrashGuest.RX, CrashGuest.TX}) {
                    final String where = g.name + " queue " + q;
                    assertEquals(1, g.regionVersion(q), where + ": region version");
                    assertEquals(CrashGuest.QUEUE_SIZE, g.regionDescNum(q), where + ": region desc_num");
                    final DriverQueueIdx idx = new DriverQueueIdx(g, q);
                    Await.until(where + ": region used_idx == used->idx", Duration.ofSeconds(5),
                        () -> g.regionUsedIdx(q) == idx.used(), () -> g.regionUsedIdx(q) + " vs " + idx.used());
                    assertEquals(0, g.regionInflight(q), where + ": heads left inflight at rest");
                }
            }
            timeline.add("A sent " + a.posted + " (B got " + b.received + ", " + b.receivedDuplicates + " again), B sent "
                + b.posted + " (A got " + a.received + ", " + a.receivedDuplicates + " again)");
        } finally {
            if (backend != null) {
                backend.destroyForcibly();
                backend.waitFor(10, TimeUnit.SECONDS);
            }
            System.out.println("BackendCrashTest: " + String.join("; ", timeline));
        }
    }

    /** The used index of a guest's queue, as the driver reads it from guest memory. */
    private record DriverQueueIdx(CrashGuest g, int q) {
        int used() {
            return (q == CrashGuest.RX ? g.rx : g.tx).usedIdx();
        }
    }

    private static boolean transmitsInflight(final CrashGuest a, final CrashGuest b) {
        return a.regionInflight(CrashGuest.TX) + b.regionInflight(CrashGuest.TX) > 0;
    }

    private static void pump(final CrashGuest a, final CrashGuest b) {
        a.reclaim();
        b.reclaim();
        a.transmit(MAC_B, 32);
        b.transmit(MAC_A, 32);
        a.receive(b);
        b.receive(a);
        a.refillRx();
        b.refillRx();
    }

    private static Process startBackend(final Path a, final Path b, final Path log) throws IOException {
        final String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        final List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
            "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", classPath, "dev.vhostnet.backend.Main",
            "--socket-path", a.toString(), "--peer-socket-path", b.toString(), "--poll", "busy");
        final Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
        try {
            // Generous: a JVM start on a loaded machine (the dataplane of the last one spun a CPU) can be slow.
            Await.until("back-end sockets", Duration.ofSeconds(60),
                () -> !p.isAlive() || Files.exists(a) && Files.exists(b), () -> "alive " + p.isAlive() + ", log:\n" + tail(log));
            if (!p.isAlive()) {
                throw new AssertionError("back-end exited with " + p.exitValue() + ":\n" + tail(log));
            }
        } catch (final RuntimeException | Error e) {
            p.destroyForcibly();
            throw e;
        }
        return p;
    }

    /** What the back-ends said about resubmitting (INFO lines of VhostUserNetHandler). */
    private static String resubmissions(final Path log) {
        try {
            final List<String> lines = Files.readAllLines(log).stream().filter(l -> l.contains("resubmitting")).toList();
            return lines.size() + " resubmission(s) logged" + (lines.isEmpty() ? "" : ": " + String.join(" | ", lines));
        } catch (final IOException e) {
            return "(no log: " + e + ")";
        }
    }

    private static String tail(final Path log) {
        try {
            final List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (final IOException e) {
            return "(no log: " + e + ")";
        }
    }

    private static String ms(final long since) {
        return (System.nanoTime() - since) / 1_000_000 + " ms";
    }

    /**
     * SIGSTOP / SIGCONT (no Java API for those), as a direct kill(2): a burst lasts microseconds, so forking
     * kill(1) (milliseconds) would always arrive after it.
     */
    /**
     * kill(2) only queues SIGSTOP: the back-end's threads stop a little later, and a dataplane thread can finish
     * its burst (clearing the inflight flags) in between. Wait until every thread is stopped, so that what we
     * read afterwards is what the SIGKILL will find.
     */
    private static void awaitStopped(final Process process) throws IOException {
        final Path tasks = Path.of("/proc/" + process.pid() + "/task");
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!allStopped(tasks)) {
            assertTrue(System.nanoTime() < deadline, "back-end threads did not stop on SIGSTOP");
            Thread.onSpinWait();
        }
    }

    private static boolean allStopped(final Path tasks) throws IOException {
        try (java.util.stream.Stream<Path> threads = Files.list(tasks)) {
            return threads.allMatch(t -> {
                try {
                    final String stat = Files.readString(t.resolve("stat"));
                    final char state = stat.charAt(stat.lastIndexOf(')') + 2); // "pid (comm) S ..."
                    return state == 'T' || state == 't' || state == 'Z' || state == 'X';
                } catch (final IOException e) {
                    return true; // the thread has gone
                }
            });
        }
    }

    private static void signal(final Process process, final String name) {
        final int signo = "STOP".equals(name) ? 19 : 18; // x86_64 Linux SIGSTOP / SIGCONT
        assertEquals(0, jnr.posix.POSIXFactory.getPOSIX().kill((int) process.pid(), signo), "kill -" + name);
    }
}
