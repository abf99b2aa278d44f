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
 * Two soak-mode guests joined by our back-end in peer mode, live-migrated again and again, each migration
 * checked for exact state before the destination runs.
 *
 * <p>A round migrates both guests at once, while they exchange traffic, to two QEMUs served by a new
 * back-end on fresh sockets. The destinations start paused ({@code -S -incoming}) with their RAM in shared
 * files, like the sources. Once both sides say a migration completed, source and destination are paused at
 * the same instant of the guest's life, so their RAM files must be equal page by page and the device state
 * the destination loaded must equal the source's (ring addresses, last_avail_idx = the source back-end's
 * GET_VRING_BASE answer, used->idx). Then the destinations run, the sources quit, the old back-end stops,
 * and the migrated guests must ping each other and move payloads intact through the new back-end. Nothing
 * reconnects, so a round tests migration alone.
 *
 * <p>Why a second back-end rather than the same socket: QEMU 7.2 initializes a vhost-user netdev (a
 * blocking GET_FEATURES) before it listens for the migration, and our server serves one front-end per
 * socket, so a destination on the source's socket would wait for the source to leave.
 */
final class MigrationChain implements AutoCloseable {
    private static final Pattern BANNER = Pattern.compile("^vhost-user-net: peer mode");
    /**
     * Guest RAM is a memory-backend-file on /dev/shm (so the test can compare it page by page), and tmpfs files
     * cannot be sealed against shrinking: the back-ends must be told to trust these QEMUs with it.
     */
    private static final List<String> BACKEND_ARGS = List.of("--stats-interval", "5", "--unsealed-memory", "allow");
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

    /** One guest's migration: how long it took, what the comparison found, the state the source saved. */
    record Migration(String guest, double seconds, RamComparison ram, List<String> ringProblems,
                     List<QueueStatus> source) {
        boolean clean() {
            return ram.differing().isEmpty() && ringProblems.isEmpty();
        }

        @Override
        public String toString() {
            return String.format("%s migrated in %.1fs; RAM: %s; rings: %s %s", guest, seconds, ram,
                    ringProblems.isEmpty() ? "consistent" : ringProblems, source);
        }
    }

    /** What one round (both guests migrated) found. */
    record Round(int number, List<Migration> migrations, String afterwards) {
        boolean clean() {
            return migrations.stream().allMatch(Migration::clean);
        }

        @Override
        public String toString() {
            return "round " + number + ": " + String.join("; ", migrations.stream().map(Object::toString).toList())
                    + "; " + afterwards;
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

    /** A destination being set up for one guest. */
    private static final class Target {
        final Placement from;
        final Placement to;
        final Path sourceSocket;
        final int port;
        Qmp srcQmp;
        Qmp dstQmp;
        long began;
        long ended;

        Target(Placement from, Placement to, int port) {
            this.from = from;
            this.to = to;
            this.sourceSocket = from.socket;
            this.port = port;
        }
    }

    /**
     * Migrates both guests at once, each to a QEMU on a new back-end, while they exchange traffic (the
     * receiver's RX buffers and used ring, the sender's TX used ring and its TSO frames). Nothing reconnects:
     * the destinations are the new back-end's only front-ends.
     */
    Round migrateBoth() throws IOException, InterruptedException {
        int gen = ++generation;
        List<Target> targets = new ArrayList<>();
        for (Placement p : List.of(receiver, sender)) {
            GuestConfig c = new GuestConfig(p.tag + "-" + gen, sockDir.resolve(p.tag + "-" + gen + ".sock"),
                    p.config.mac(), p.config.role(), p.config.ip(), p.config.peerIp(), p.config.payloadMiB(),
                    p.config.extraNicProps());
            Placement to = new Placement(p.tag, c, p.sender);
            to.socket = c.vhostSocket();
            to.qmp = sockDir.resolve("qmp-" + p.tag + "-" + gen + ".sock");
            to.ram = ramDir.resolve(p.tag + "-" + gen + ".ram");
            targets.add(new Target(p, to, freePort()));
        }
        BackendProcess next = BackendProcess.start(targets.get(0).to.socket, targets.get(1).to.socket,
                logDir.resolve("backend-" + gen + ".log"), List.of(), BACKEND_ARGS);
        List<Migration> migrations = new ArrayList<>();
        try {
            next.console().await(BANNER, null, timeout);
            for (Target t : targets) {
                t.to.qemu = QemuGuest.boot(image, t.to.config, logDir,
                        extras(t.to, List.of("-S", "-incoming", "tcp:127.0.0.1:" + t.port)), t.to.ram);
            }
            for (Target t : targets) {
                t.dstQmp = Qmp.connect(t.to.qmp, timeout); // answers once its vhost-user device is initialized
                t.srcQmp = Qmp.connect(t.from.qmp, timeout);
                expectReturn(t.srcQmp.execute("{\"execute\":\"migrate-set-parameters\",\"arguments\":"
                        + "{\"max-bandwidth\":" + MAX_BANDWIDTH + "}}", timeout));
            }
            // Traffic flows right now, then migrate both.
            SoakGuests.awaitPong(receiver.qemu, receiver.qemu.console().lineCount(), timeout);
            SoakGuests.awaitPong(sender.qemu, sender.qemu.console().lineCount(), timeout);
            for (Target t : targets) {
                t.began = System.nanoTime();
                expectReturn(t.srcQmp.execute("{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:"
                        + t.port + "\"}}", timeout));
            }
            for (Target t : targets) {
                awaitMigration(t.srcQmp, t.from.tag + " source");
                t.ended = System.nanoTime();
            }
            for (Target t : targets) {
                awaitMigration(t.dstQmp, t.from.tag + " destination"); // it has loaded everything
                Migration mig = check(t);
                System.out.println("e2e: round " + gen + ": " + mig);
                migrations.add(mig);
            }
            for (Target t : targets) {
                expectReturn(t.dstQmp.execute("{\"execute\":\"cont\"}", timeout));
                t.srcQmp.execute("{\"execute\":\"quit\"}", timeout);
            }
            for (Target t : targets) {
                if (!t.from.qemu.awaitPowerOff(timeout)) {
                    throw new AssertionError(t.from.tag + " source QEMU did not quit");
                }
            }
        } catch (IOException | InterruptedException | RuntimeException | AssertionError e) {
            for (Target t : targets) {
                if (t.to.qemu != null) {
                    t.to.qemu.close();
                }
                Files.deleteIfExists(t.to.ram);
            }
            next.close();
            throw e;
        } finally {
            for (Target t : targets) {
                if (t.srcQmp != null) {
                    t.srcQmp.close();
                }
                if (t.dstQmp != null) {
                    t.dstQmp.close();
                }
            }
        }
        BackendProcess old = backend;
        backend = next;
        for (Target t : targets) {
            Files.deleteIfExists(t.from.ram);
            t.from.qemu = t.to.qemu;
            t.from.socket = t.to.socket;
            t.from.qmp = t.to.qmp;
            t.from.ram = t.to.ram;
        }
        old.close();
        if (old.console().firstMatch(Pattern.compile("dirty log of \\d+ bytes")).isEmpty()) {
            throw new AssertionError("the source's back-end never got a dirty log; see " + old.logFile());
        }
        // The positions the back-ends logged: the source's stop answer and the base the destination's back-end
        // was given must be the one QEMU saved and migrated. Compared in the low 15 bits: for packed rings bit 15
        // is the avail wrap counter and the upper half the used position (the logged int may be negative).
        for (int i = 0; i < targets.size(); i++) {
            Target t = targets.get(i);
            for (QueueStatus q : migrations.get(i).source().subList(0, 2)) {
                String src = t.sourceSocket + ": ring " + q.queue() + " stopped at ";
                Pattern dst = Pattern.compile(Pattern.quote(t.to.socket + ": ring " + q.queue() + " started, size ")
                        + "\\d+, base (-?\\d+)");
                int stopped = loggedPosition(old, src);
                int started = Integer.parseInt(next.console().await(dst, null, timeout).matcher().group(1));
                int saved = q.lastAvailIdx() & 0x7FFF;
                if ((stopped & 0x7FFF) != saved || (started & 0x7FFF) != saved) {
                    migrations.get(i).ringProblems().add(String.format("q%d: source back-end stopped at %d, QEMU"
                            + " saved %d, destination back-end started at %d", q.queue(), stopped, saved, started));
                }
            }
        }
        // The migrated guests talk to each other through the new back-end, with nothing done inside them.
        ConsoleLog.Hit pongR = SoakGuests.awaitPong(receiver.qemu, 0, timeout);
        ConsoleLog.Hit pongS = SoakGuests.awaitPong(sender.qemu, 0, timeout);
        SoakGuests.Transfer x = SoakGuests.awaitTransfer(sender.qemu, 0, sentMd5, timeout);
        String afterwards = "on the destinations: pings answered (" + pongR.matcher().group() + " / "
                + pongS.matcher().group() + "), payload round " + x.round() + " intact";
        return new Round(gen, migrations, afterwards);
    }

    /** The last position {@code backend} logged after {@code prefix}, or -1. */
    private static int loggedPosition(BackendProcess backend, String prefix) {
        int found = -1;
        Matcher m = Pattern.compile(Pattern.quote(prefix) + "(-?\\d+)").matcher(ConsoleLog.tail(backend.logFile(),
                Integer.MAX_VALUE));
        while (m.find()) {
            found = Integer.parseInt(m.group(1));
        }
        return found;
    }

    /** Compares one guest's source and destination, both paused after the migration completed. */
    private Migration check(Target t) throws IOException, InterruptedException {
        List<QueueStatus> srcQueues = new ArrayList<>();
        List<QueueStatus> dstQueues = new ArrayList<>();
        for (int q = 0; q < QUEUES; q++) {
            srcQueues.add(QueueStatus.query(t.srcQmp, DEVICE, q, timeout));
            dstQueues.add(QueueStatus.query(t.dstQmp, DEVICE, q, timeout));
        }
        List<String> problems = new ArrayList<>(negotiationProblems(t.srcQmp));
        GuestRam srcRam = GuestRam.open(t.from.ram);
        GuestRam dstRam = GuestRam.open(t.to.ram);
        RamComparison ram = RamComparison.compare(srcRam, dstRam, new PageClassifier(srcRam, srcQueues, packed));
        ram.dump(srcRam, dstRam, logDir.resolve("differing-" + t.to.config.name()));
        problems.addAll(ringProblems(srcQueues, dstQueues, srcRam, dstRam));
        return new Migration(t.from.tag, (t.ended - t.began) / 1e9, ram, problems, srcQueues);
    }

    /** The variant is what it claims: the guest's driver negotiated the ring format and buffers asked for. */
    private List<String> negotiationProblems(Qmp qmp) throws IOException, InterruptedException {
        String reply = qmp.execute("{\"execute\":\"x-query-virtio-status\",\"arguments\":{\"path\":\"" + DEVICE
                + "\"}}", timeout);
        int at = reply.indexOf("\"guest-features\"");
        if (at < 0) {
            return List.of("x-query-virtio-status: no guest features in " + reply);
        }
        String guest = reply.substring(at, reply.indexOf('}', at));
        List<String> problems = new ArrayList<>();
        if (guest.contains("VIRTIO_F_RING_PACKED") != packed) {
            problems.add("the driver negotiated " + (packed ? "split" : "packed") + " rings: " + guest);
        }
        if (guest.contains("VIRTIO_NET_F_MRG_RXBUF") == nicProps.contains("mrg_rxbuf=off")) {
            problems.add("mergeable RX buffers negotiated contrary to " + nicProps + ": " + guest);
        }
        return problems;
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
