package dev.vhostnet.e2e.migration;

import dev.vhostnet.e2e.BackendProcess;
import dev.vhostnet.e2e.ConsoleLog;
import dev.vhostnet.e2e.E2eSettings;
import dev.vhostnet.e2e.GuestConfig;
import dev.vhostnet.e2e.GuestImage;
import dev.vhostnet.e2e.QemuGuest;
import dev.vhostnet.e2e.reconnect.SoakGuests;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Two soak-mode guests joined by our back-end in peer mode, live-migrated one after the other, each
 * migration checked for exact state before the destination runs.
 *
 * <p>A migration round: a new back-end listens on a fresh socket for the destination and takes over the
 * other guest's socket path (its listener replaces the file; the old back-end keeps serving that guest's
 * open connection). The destination QEMU starts paused ({@code -S -incoming}) with its RAM in a shared
 * file, like the source. Once both sides say the migration completed, both guests are paused at the same
 * instant of the guest's life, so their RAM files must be equal page by page and the device state loaded
 * on the destination must equal the source's (ring addresses, last_avail_idx = the source back-end's
 * GET_VRING_BASE answer, used->idx). Then the destination runs, the source quits, the old back-end stops,
 * the other guest's QEMU reconnects to the new back-end, and the migrated guest must ping its peer and
 * receive (or send) payloads intact.
 *
 * <p>Why a second back-end rather than the same socket: QEMU 7.2 initializes a vhost-user netdev (a
 * blocking GET_FEATURES) before it listens for the migration, and our server serves one front-end per
 * socket, so a destination on the source's socket would wait for the source to leave.
 */
final class MigrationChain implements AutoCloseable {
    private static final Pattern BANNER = Pattern.compile("^vhost-user-net: peer mode");
    private static final List<String> BACKEND_ARGS = List.of("--stats-interval", "5");
    private static final Pattern STATUS = Pattern.compile("\"status\"\\s*:\\s*\"([a-z-]+)\"");
    /** QOM path of the virtio-net device: the NIC gets {@code id=nic0}. */
    private static final String DEVICE = "/machine/peripheral/nic0/virtio-backend";
    /** RX, TX, control queue of one queue pair. */
    private static final int QUEUES = 3;
    /**
     * Bytes/s of the migration stream: slow enough that pre-copy lasts several seconds while the guests
     * exchange traffic (pages the back-end writes must reach the destination through the dirty log), fast
     * enough to converge while the receiver stores payloads in its RAM.
     */
    private static final long MAX_BANDWIDTH = 32L << 20;

    /** One guest as the chain tracks it across migrations. */
    private static final class Placement {
        final String tag;
        final GuestConfig config;
        final boolean sender;
        QemuGuest qemu;
        Path socket;
        Path qmp;
        Path ram;

        Placement(String tag, GuestConfig config, boolean sender) {
            this.tag = tag;
            this.config = config;
            this.sender = sender;
        }
    }

    /** What one round found. */
    record Round(int number, String migrated, double seconds, RamComparison ram, List<String> ringProblems,
                 List<QueueStatus> source, String afterwards) {
        boolean clean() {
            return ram.differing().isEmpty() && ringProblems.isEmpty();
        }

        @Override
        public String toString() {
            return String.format("round %d: %s migrated in %.1fs; RAM: %s; rings: %s %s; %s", number, migrated,
                    seconds, ram, ringProblems.isEmpty() ? "consistent" : ringProblems, source, afterwards);
        }
    }

    private final GuestImage image;
    private final Path logDir;
    private final Path sockDir;
    private final Path ramDir;
    private final List<String> nicProps;
    private final boolean packed;
    private final Duration timeout = E2eSettings.markerTimeout();
    private final Placement receiver;
    private final Placement sender;
    private BackendProcess backend;
    private String sentMd5;
    private int generation;

    private MigrationChain(GuestImage image, Path logDir, Path sockDir, Path ramDir, List<String> nicProps) {
        this.image = image;
        this.logDir = logDir;
        this.sockDir = sockDir;
        this.ramDir = ramDir;
        this.nicProps = nicProps;
        this.packed = nicProps.contains("packed=on");
        List<String> props = new ArrayList<>(nicProps);
        props.add("id=nic0");
        receiver = new Placement("recv", SoakGuests.receiver("recv-0", sockDir.resolve("recv-0.sock"))
                .withExtraNicProps(props), false);
        sender = new Placement("send", SoakGuests.sender("send-0", sockDir.resolve("send-0.sock"))
                .withExtraNicProps(props), true);
    }

    /** Boots both guests on one back-end and waits until pings and a payload round went through. */
    static MigrationChain start(Path logDir, Path sockDir, Path ramDir, List<String> nicProps)
            throws IOException, InterruptedException {
        MigrationChain c = new MigrationChain(GuestImage.get(), logDir, sockDir, ramDir, nicProps);
        try {
            c.boot();
        } catch (IOException | InterruptedException | RuntimeException | AssertionError e) {
            c.close();
            throw e;
        }
        return c;
    }

    private void boot() throws IOException, InterruptedException {
        receiver.socket = receiver.config.vhostSocket();
        sender.socket = sender.config.vhostSocket();
        backend = BackendProcess.start(receiver.socket, sender.socket, logDir.resolve("backend-0.log"), List.of(),
                BACKEND_ARGS);
        for (Placement p : List.of(receiver, sender)) {
            p.qmp = sockDir.resolve("qmp-" + p.tag + "-0.sock");
            p.ram = ramDir.resolve(p.tag + "-0.ram");
            p.qemu = QemuGuest.boot(image, p.config, logDir, extras(p, List.of()), p.ram);
        }
        sentMd5 = sender.qemu.awaitSince(0, "SENT_MD5", timeout, SoakGuests.GUEST_FATAL).matcher().group(1);
        SoakGuests.awaitPong(receiver.qemu, 0, timeout);
        SoakGuests.awaitPong(sender.qemu, 0, timeout);
        SoakGuests.awaitTransfer(sender.qemu, 0, sentMd5, timeout);
    }

    private QemuGuest.Extras extras(Placement p, List<String> more) {
        List<String> args = new ArrayList<>(List.of("-qmp", "unix:" + p.qmp + ",server=on,wait=off"));
        args.addAll(more);
        // The sender pushes payloads back to back: one is almost always under way during a migration.
        return p.sender ? SoakGuests.extras(0, args) : SoakGuests.extras(args);
    }

    /** Migrates the receiver (traffic mostly into it) or the sender (mostly out of it) once. */
    Round migrate(boolean migrateSender) throws IOException, InterruptedException {
        Placement m = migrateSender ? sender : receiver;
        Placement other = migrateSender ? receiver : sender;
        int gen = ++generation;
        Path newSocket = sockDir.resolve(m.tag + "-" + gen + ".sock");
        Path newQmp = sockDir.resolve("qmp-" + m.tag + "-" + gen + ".sock");
        Path newRam = ramDir.resolve(m.tag + "-" + gen + ".ram");
        BackendProcess next = BackendProcess.start(newSocket, other.socket, logDir.resolve("backend-" + gen + ".log"),
                List.of(), BACKEND_ARGS);
        QemuGuest dest = null;
        RamComparison ram;
        List<String> problems = new ArrayList<>();
        List<QueueStatus> srcQueues = new ArrayList<>();
        long began;
        long ended;
        try {
            next.console().await(BANNER, null, timeout);
            int port = freePort();
            GuestConfig destConfig = new GuestConfig(m.tag + "-" + gen, newSocket, m.config.mac(), m.config.role(),
                    m.config.ip(), m.config.peerIp(), m.config.payloadMiB(), m.config.extraNicProps());
            Placement target = new Placement(m.tag, destConfig, m.sender);
            target.qmp = newQmp;
            dest = QemuGuest.boot(image, destConfig, logDir,
                    extras(target, List.of("-S", "-incoming", "tcp:127.0.0.1:" + port)), newRam);
            try (Qmp dst = Qmp.connect(newQmp, timeout); Qmp src = Qmp.connect(m.qmp, timeout)) {
                expectReturn(src.execute("{\"execute\":\"migrate-set-parameters\",\"arguments\":"
                        + "{\"max-bandwidth\":" + MAX_BANDWIDTH + "}}", timeout));
                // Traffic flows right now, then migrate.
                SoakGuests.awaitPong(m.qemu, m.qemu.console().lineCount(), timeout);
                SoakGuests.awaitPong(other.qemu, other.qemu.console().lineCount(), timeout);
                began = System.nanoTime();
                expectReturn(src.execute("{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:" + port
                        + "\"}}", timeout));
                awaitMigration(src, "source");
                awaitMigration(dst, "destination"); // the destination has loaded everything
                ended = System.nanoTime();
                List<QueueStatus> dstQueues = new ArrayList<>();
                for (int q = 0; q < QUEUES; q++) {
                    srcQueues.add(QueueStatus.query(src, DEVICE, q, timeout));
                    dstQueues.add(QueueStatus.query(dst, DEVICE, q, timeout));
                }
                GuestRam srcRam = GuestRam.open(m.ram);
                GuestRam dstRam = GuestRam.open(newRam);
                ram = RamComparison.compare(srcRam, dstRam, new PageClassifier(srcRam, srcQueues, packed));
                problems.addAll(ringProblems(srcQueues, dstQueues, srcRam, dstRam));
                expectReturn(dst.execute("{\"execute\":\"cont\"}", timeout));
                src.execute("{\"execute\":\"quit\"}", timeout);
            }
        } catch (IOException | InterruptedException | RuntimeException | AssertionError e) {
            if (dest != null) {
                dest.close();
            }
            next.close();
            Files.deleteIfExists(newRam);
            throw e;
        }
        if (!m.qemu.awaitPowerOff(timeout)) {
            throw new AssertionError("source QEMU did not quit");
        }
        Files.deleteIfExists(m.ram);
        BackendProcess old = backend;
        backend = next;
        m.qemu = dest;
        m.socket = newSocket;
        m.qmp = newQmp;
        m.ram = newRam;
        int otherFrom = other.qemu.console().lineCount();
        old.close();
        if (old.console().firstMatch(Pattern.compile("dirty log of \\d+ bytes")).isEmpty()) {
            throw new AssertionError("the source's back-end never got a dirty log; see " + old.logFile());
        }
        // The other guest's QEMU reconnects to the new back-end (it owns that path now).
        next.console().await(Pattern.compile(Pattern.quote(other.socket + ": front-end connected")), null, timeout);
        ConsoleLog.Hit pong = SoakGuests.awaitPong(m.qemu, 0, timeout);
        SoakGuests.awaitPong(other.qemu, otherFrom, timeout);
        SoakGuests.Transfer t = SoakGuests.awaitTransfer(sender.qemu, migrateSender ? 0 : otherFrom, sentMd5, timeout);
        String afterwards = "destination guest answers pings (" + pong.matcher().group() + "), payload round "
                + t.round() + " intact";
        return new Round(gen, m.tag, (ended - began) / 1e9, ram, problems, srcQueues, afterwards);
    }

    /**
     * Per queue: the destination loaded what the source saved, the source's back-end left nothing in flight
     * (it completes in order within a burst, so at a stop used->idx = last_avail_idx), and used->idx as QEMU
     * read it is what the RAM of each side holds.
     */
    private List<String> ringProblems(List<QueueStatus> src, List<QueueStatus> dst, GuestRam srcRam, GuestRam dstRam) {
        List<String> problems = new ArrayList<>();
        for (int q = 0; q < src.size(); q++) {
            QueueStatus s = src.get(q);
            QueueStatus d = dst.get(q);
            if (!s.samePositions(d)) {
                problems.add("source " + s + " but destination " + d);
            }
            if (packed || s.used() == 0) {
                continue;
            }
            if (s.inuse() != 0 || s.usedIdx() != s.lastAvailIdx()) {
                problems.add("source " + s + " stopped with chains in flight");
            }
            int srcUsed = srcRam.u16(s.used() + 2);
            int dstUsed = dstRam.u16(d.used() + 2);
            if (srcUsed != s.usedIdx() || dstUsed != d.usedIdx()) {
                problems.add(String.format("q%d used->idx in RAM %d (source) / %d (destination), QEMU saved %d / %d",
                        q, srcUsed, dstUsed, s.usedIdx(), d.usedIdx()));
            }
        }
        return problems;
    }

    /** Polls query-migrate until the migration ends; fails unless it completed. */
    private void awaitMigration(Qmp qmp, String side) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        String reply = "";
        while (System.nanoTime() < deadline) {
            reply = qmp.execute("{\"execute\":\"query-migrate\"}", timeout);
            Matcher mm = STATUS.matcher(reply);
            String status = mm.find() ? mm.group(1) : "?";
            if (status.equals("completed")) {
                return;
            }
            if (status.equals("failed") || status.equals("cancelled")) {
                throw new AssertionError("migration " + status + " on the " + side + ": " + reply);
            }
            Thread.sleep(200); // polling interval, not an assertion
        }
        throw new AssertionError("migration did not complete on the " + side + " within " + timeout + "; last: "
                + reply);
    }

    private static void expectReturn(String reply) {
        if (!reply.contains("\"return\"")) {
            throw new AssertionError("QMP error: " + reply);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    List<String> nicProps() {
        return nicProps;
    }

    /** The current back-end's log (the one serving both guests now). */
    Path backendLog() {
        return backend.logFile();
    }

    @Override
    public void close() {
        for (Placement p : List.of(receiver, sender)) {
            if (p.qemu != null) {
                p.qemu.close();
            }
        }
        if (backend != null) {
            backend.close();
        }
        for (Placement p : List.of(receiver, sender)) {
            try {
                if (p.ram != null) {
                    Files.deleteIfExists(p.ram);
                }
            } catch (IOException e) {
                // best effort: the directory is removed by the test as well
            }
        }
    }
}
