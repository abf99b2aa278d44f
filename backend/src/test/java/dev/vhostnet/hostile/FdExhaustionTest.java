package dev.vhostnet.hostile;

import dev.vhostnet.backend.Frames;
import dev.vhostnet.backend.NetDeviceConfig;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.e2e.dpdk.BackendUnderTest;
import dev.vhostnet.e2e.dpdk.E2eLogs;
import dev.vhostnet.e2e.dpdk.LoggedProcess;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.FrontendRequest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;

import static dev.vhostnet.frontend.VhostUserFrontend.u64;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The back-end out of file descriptors. It runs as a child JVM (peer mode, the production command line) whose
 * open-file limit is lowered, once it is warmed up, to what it holds idle plus {@value #HEADROOM}. Two hostile
 * front-ends then make it hold fds: A sets up eventfds and memory regions and keeps them; B adds one memory region
 * after another (ADD_MEM_REG, each one more fd for the back-end) until the back-end cannot take the next one.
 * The back-end must not crash, must refuse the request that hit the limit (or close B's connection) with one clear
 * WARNING line and release what B held, must go on serving A, and once A has gone too, a well-behaved pair of
 * front-ends must forward both ways; no fd, mapping or thread may be left behind, and no SEVERE line logged.
 *
 * <p>How the limit is met: the back-end receives fds itself (UnixMessageSocket) and owns them as the kernel
 * installs them, without a dup. With no slot left, the kernel drops the fd and reports the truncation
 * (MSG_CTRUNC): the message arrives marked as having lost fds, and the back-end refuses it. (An idle listener's
 * blocked accept also holds a slot, invisible in /proc/PID/fd, which is why a connection arriving at the limit is
 * still accepted.)
 *
 * <p>The child runs from jars, as bin/vhost-user-net does: loading a class out of a target/classes directory
 * opens a file, which would fail at the limit in a way no installed back-end can.
 */
class FdExhaustionTest {
    /** Fds the back-end may open above its idle count: A's 13, then B's socket and regions until none is left. */
    private static final int HEADROOM = 32;
    private static final int A_REGIONS = 8;
    private static final long WINDOW = 128 * 1024;
    private static final Duration STARTUP = Duration.ofSeconds(60);
    private static final byte[] MAC_A = {0x52, 0x54, 0x00, 0x0a, 0x0a, 0x0a};
    private static final byte[] MAC_B = {0x52, 0x54, 0x00, 0x0b, 0x0b, 0x0b};

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void outOfFdsTheRequestThatHitTheLimitIsRefusedOrItsConnectionClosedAndTheBackEndRecovers() throws Exception {
        final Path a = dir.resolve("a.sock");
        final Path b = dir.resolve("b.sock");
        final List<String> out = new CopyOnWriteArrayList<>();
        final List<String> command = new ArrayList<>(List.of("prlimit", "--nofile=1024:1024",
            Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-XX:+UseSerialGC", "-Xmx256m",
            "-cp", jarredClassPath(dir.resolve("cp")), BackendUnderTest.MAIN_CLASS,
            "--socket-path", a.toString(), "--peer-socket-path", b.toString()));
        try (LoggedProcess backend = LoggedProcess.start("fd-exhaustion-backend", command,
                 E2eLogs.newLogFile("fd-exhaustion-backend"), out::add)) {
            Await.until("back-end listening on both sockets", STARTUP,
                () -> !backend.isAlive() || Files.exists(a) && Files.exists(b), backend::tail);
            assertTrue(backend.isAlive(), "back-end started: " + backend.tail());
            final long pid = backend.pid();
            final Resources fresh = Resources.of(pid);
            // Warm-up: a full session on each port, so that what the first one loads or opens lazily is in place.
            forwardBothWays(a, b, 1);
            Await.until("the warm-up sessions released", Duration.ofSeconds(5), () -> {
                final Resources r = Resources.of(pid);
                return r.sockets() <= fresh.sockets() && r.eventfds() <= fresh.eventfds() && r.memfds() == 0
                    && r.mappings() == 0;
            }, () -> Resources.of(pid).toString());
            final Resources idle = Resources.of(pid);
            final long idleFds = Resources.openFds(pid);
            final long limit = idleFds + HEADROOM;
            setOpenFileLimit(pid, limit);
            System.out.printf("back-end idle: %s, %d fds; open-file limit now %d%n", idle, idleFds, limit);

            final int bRegions;
            try (Session sa = Session.negotiated(a); EventFd c0 = EventFd.create(); EventFd c1 = EventFd.create();
                 EventFd e0 = EventFd.create(); EventFd e1 = EventFd.create()) {
                // A: four eventfds and eight regions, kept for as long as A stays connected.
                for (final int ring : new int[] {0, 1}) {
                    sa.fe.tell(FrontendRequest.SET_VRING_CALL, u64(ring), (ring == 0 ? c0 : c1).fd());
                    sa.fe.tell(FrontendRequest.SET_VRING_ERR, u64(ring), (ring == 0 ? e0 : e1).fd());
                }
                for (int i = 0; i < A_REGIONS; i++) {
                    assertEquals(0, addRegion(sa, i), "A's region " + i);
                }
                assertEquals(idle.eventfds() + 4, Resources.of(pid).eventfds(), "A's eventfds held by the back-end");

                // B: regions until the back-end cannot take the next fd.
                final boolean closed;
                try (Session sb = Session.negotiated(b)) {
                    final int[] regions = {0};
                    closed = fillUntilLimit(sb, regions);
                    bRegions = regions[0];
                }
                System.out.printf("B added %d regions before the back-end %s%n", bRegions,
                    closed ? "closed its connection" : "refused the next one");
                assertTrue(bRegions < NetDeviceConfig.MAX_MEM_SLOTS, "B was stopped by the fd limit, not by the "
                    + NetDeviceConfig.MAX_MEM_SLOTS + " memory slots (" + bRegions + " regions)");
                assertTrue(bRegions > 0, "B got some regions in before the limit");
                Await.until("one WARNING naming b.sock and what happened", Duration.ofSeconds(5),
                    () -> closed ? warnings(out, b) == 1 : out.stream().filter(l -> l.contains("WARNING")
                        && l.contains(b + ": rejected ADD_MEM_REG: ADD_MEM_REG lost fds on the way (the process is"
                        + " out of file descriptors)")).count() == 1,
                    () -> String.join("\n", out));
                // What B made the back-end hold is released; A's connection is still served and keeps its share.
                Await.until("B's fds released", Duration.ofSeconds(5),
                    () -> Resources.of(pid).memfds() == A_REGIONS, () -> Resources.of(pid).toString());
                assertTrue(sa.alive(), "A is still served");
                assertTrue(backend.isAlive(), "back-end alive");

                assertEquals(0, addRegion(sa, A_REGIONS), "A can take a region again now that B's fds are free");
            }

            // The pressure is gone: everything A and B made the back-end hold is released, and a well-behaved
            // pair forwards both ways, on the same back-end, still under the lowered limit.
            awaitIdle(pid, idle, "the hostile front-ends left");
            Await.until("open fds back to the idle count " + idleFds, Duration.ofSeconds(5),
                () -> Resources.openFds(pid) <= idleFds, () -> Resources.openFds(pid) + " open");
            forwardBothWays(a, b, 100);
            awaitIdle(pid, idle, "the well-behaved pair left");
            assertTrue(backend.isAlive(), "back-end alive: " + backend.tail());
            assertEquals(limit, openFileLimit(pid), "the limit held throughout");

            final int exit = backend.stop(null, Duration.ofSeconds(20));
            assertEquals(143, exit, "back-end ended by SIGTERM (128 + 15), not by a crash; log " + backend.log());
            final List<String> bad = out.stream().filter(l -> l.contains("SEVERE") || l.contains("Error")
                || l.contains("Exception")).toList();
            assertEquals(List.of(), bad, "no SEVERE line, error or exception trace; log " + backend.log());
        }
    }

    /** The back-end's WARNING lines about a connection on {@code socket} closed for want of fds. */
    private static int warnings(final List<String> out, final Path socket) {
        return (int) out.stream().filter(l -> l.contains("WARNING") && l.contains(socket.toString())
            && l.contains("out of file descriptors") && l.contains("closing the connection")).count();
    }

    /** Adds memory window {@code i} of the session's image as one region (one fd) and returns the ack. */
    private static long addRegion(final Session s, final int i) throws IOException {
        final GuestMemoryImage.MemoryRegion w = s.memory.window(i * WINDOW, WINDOW);
        return s.fe.ack(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(w), w.fd());
    }

    /**
     * ADD_MEM_REG until the back-end closes the connection (returns true) or refuses the region (false: the
     * connection is still served); {@code regions[0]} is set to the regions accepted before. Refused is what
     * happens: the kernel finds no slot for the fd, drops it and marks the message truncated. Closed would mean
     * the fd arrived but something after it needed one more fd (the back-end then closes that connection).
     */
    private static boolean fillUntilLimit(final Session s, final int[] regions) throws IOException {
        final int windows = (int) (s.memory.size() / WINDOW);
        for (int i = 0; i < windows; i++) {
            regions[0] = i;
            final long ack;
            try {
                ack = addRegion(s, i);
            } catch (final IOException e) {
                s.closed("an fd the back-end has no room for"); // closed, not just slow to answer
                return true;
            }
            if (ack != 0) {
                assertTrue(s.alive(), "connection still served after a refused region");
                return false;
            }
        }
        throw new AssertionError("B added all " + windows + " regions: the fd limit was never reached");
    }

    /** One well-behaved front-end per socket; {@code frames} frames each way, all delivered intact. */
    private static void forwardBothWays(final Path a, final Path b, final int frames) throws IOException {
        try (VirtioNetDriver da = VirtioNetDriver.start(a, VirtioNetDriver.Options.defaults());
             VirtioNetDriver db = VirtioNetDriver.start(b, VirtioNetDriver.Options.defaults())) {
            for (int i = 0; i < frames; i++) {
                if (da.rxPosted() < 8) {
                    da.postRxBuffers(32, 2048);
                }
                if (db.rxPosted() < 8) {
                    db.postRxBuffers(32, 2048);
                }
                final byte[] ab = Frames.frame(MAC_B, MAC_A, 60 + i % 1400, i);
                final byte[] ba = Frames.frame(MAC_A, MAC_B, 1460 - i % 1400, -i);
                da.send(ab);
                assertArrayEquals(ab, db.receive(Duration.ofSeconds(5)), "A->B frame " + i);
                db.send(ba);
                assertArrayEquals(ba, da.receive(Duration.ofSeconds(5)), "B->A frame " + i);
                da.reclaimTx();
                db.reclaimTx();
            }
        }
    }

    private static void awaitIdle(final long pid, final Resources idle, final String after) {
        Await.until("back-end resources back to " + idle + " after " + after, Duration.ofSeconds(5),
            () -> Resources.of(pid).noMoreThan(idle), () -> Resources.of(pid).toString());
    }

    private static void setOpenFileLimit(final long pid, final long limit) throws IOException, InterruptedException {
        final Process p = new ProcessBuilder("prlimit", "--pid", Long.toString(pid), "--nofile=" + limit + ":" + limit)
            .redirectErrorStream(true).start();
        final String output = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(10, TimeUnit.SECONDS), "prlimit finished");
        assertEquals(0, p.exitValue(), "prlimit --pid: " + output);
        assertEquals(limit, openFileLimit(pid), "open-file limit of the back-end");
    }

    /** The soft "Max open files" of /proc/PID/limits. */
    private static long openFileLimit(final long pid) throws IOException {
        try (Stream<String> lines = Files.lines(Path.of("/proc/" + pid + "/limits"))) {
            final String line = lines.filter(l -> l.startsWith("Max open files")).findFirst().orElseThrow();
            return Long.parseLong(line.substring("Max open files".length()).trim().split("\\s+")[0]);
        }
    }

    /**
     * This JVM's class path for the back-end: every classes directory but the test classes as a jar in
     * {@code into}, jars as they are.
     */
    private static String jarredClassPath(final Path into) throws IOException {
        Files.createDirectories(into);
        final List<String> entries = new ArrayList<>();
        int n = 0;
        for (final String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            final Path p = Path.of(entry);
            if (!Files.isDirectory(p)) {
                entries.add(entry);
            } else if (!p.endsWith("test-classes")) {
                final Path jar = into.resolve((n++) + "-" + p.getParent().getFileName() + ".jar");
                jar(p, jar);
                entries.add(jar.toString());
            }
        }
        return String.join(File.pathSeparator, entries);
    }

    private static void jar(final Path classes, final Path jar) throws IOException {
        try (OutputStream file = Files.newOutputStream(jar); JarOutputStream out = new JarOutputStream(file);
             Stream<Path> walk = Files.walk(classes)) {
            for (final Path f : (Iterable<Path>) walk.filter(Files::isRegularFile).sorted()::iterator) {
                out.putNextEntry(new JarEntry(classes.relativize(f).toString().replace(File.separatorChar, '/')));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
    }
}
