package dev.vhostnet.e2e.reconnect;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.vhostnet.e2e.BackendProcess;
import dev.vhostnet.e2e.ConsoleLog;
import dev.vhostnet.e2e.E2eDirs;
import dev.vhostnet.e2e.E2eSettings;
import dev.vhostnet.e2e.GuestImage;
import dev.vhostnet.e2e.QemuGuest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The back-end crashes (SIGKILL) under two live guests that ping each other and keep moving a
 * payload; a new back-end starts on the same socket paths (the dead one's socket files are still
 * there). QEMU's reconnecting chardevs find it by themselves, renegotiate, and traffic must resume
 * with nothing done inside the guests: new ping replies, then a whole payload round with the right
 * md5. Twice. The new back-end's log must show both front-ends connecting and its counters moving.
 */
@Tag("e2e")
class BackendRestartE2ETest {
    private static final int RESTARTS = 2;
    private static final Pattern BANNER = Pattern.compile("^vhost-user-net: peer mode");
    private static final Duration KILL_WAIT = Duration.ofSeconds(30);
    private static final List<String> BACKEND_ARGS = List.of("--stats-interval", "2");

    @Test
    void trafficResumesAfterTheBackendIsKilledAndRestarted() throws Exception {
        Duration timeout = E2eSettings.markerTimeout();
        Path logDir = E2eDirs.newLogDir("backend-restart");
        Path socketDir = E2eDirs.newSocketDir("restart");
        List<String> report = new ArrayList<>();
        BackendProcess backend = null;
        QemuGuest receiver = null;
        QemuGuest sender = null;
        try {
            backend = BackendProcess.start(socketDir, logDir, "backend-0.log", List.of(), BACKEND_ARGS);
            GuestImage image = GuestImage.get();
            QemuGuest.Extras extras = SoakGuests.extras(List.of());
            receiver = QemuGuest.boot(image, SoakGuests.receiver("receiver", backend.socketA()), logDir, extras);
            sender = QemuGuest.boot(image, SoakGuests.sender("sender", backend.socketB()), logDir, extras);

            String sentMd5 = sender.awaitSince(0, "SENT_MD5", timeout, SoakGuests.GUEST_FATAL).matcher().group(1);
            SoakGuests.awaitPong(receiver, 0, timeout);
            SoakGuests.awaitPong(sender, 0, timeout);
            SoakGuests.Transfer first = SoakGuests.awaitTransfer(sender, 0, sentMd5, timeout);
            report.add("before any restart: round " + first.round() + " in " + secs(first.duration()));

            for (int restart = 1; restart <= RESTARTS; restart++) {
                // Traffic flows right now: a fresh reply on both sides.
                SoakGuests.awaitPong(receiver, receiver.console().lineCount(), timeout);
                SoakGuests.awaitPong(sender, sender.console().lineCount(), timeout);
                // Odd restarts hit between payload rounds, even ones as a round starts: that TCP
                // connection must survive the outage and deliver the payload intact.
                boolean midTransfer = restart % 2 == 0;
                ConsoleLog.Hit interruptedRound = midTransfer
                        ? sender.awaitSince(sender.console().lineCount(), "XFER_BEGIN", timeout, SoakGuests.GUEST_FATAL)
                        : null;

                long killedAt = System.nanoTime();
                long oldPid = backend.pid();
                assertTrue(backend.killNow(KILL_WAIT), "back-end " + oldPid + " survived SIGKILL");
                backend = BackendProcess.start(socketDir, logDir, "backend-" + restart + ".log", List.of(),
                        BACKEND_ARGS);
                backend.console().await(BANNER, null, timeout);
                long listeningAt = System.nanoTime();
                // Anything the guests print from here on went through the new back-end: the old one
                // died seconds ago, the new one has just started listening.
                int receiverFrom = receiver.console().lineCount();
                int senderFrom = sender.console().lineCount();

                long connectedA = awaitConnected(backend, backend.socketA(), timeout);
                long connectedB = awaitConnected(backend, backend.socketB(), timeout);
                SoakGuests.Transfer survived = interruptedRound == null ? null
                        : SoakGuests.awaitSameRound(sender, interruptedRound, sentMd5, timeout);
                ConsoleLog.Hit pongR = SoakGuests.awaitPong(receiver, receiverFrom, timeout);
                ConsoleLog.Hit pongS = SoakGuests.awaitPong(sender, senderFrom, timeout);
                SoakGuests.Transfer t = SoakGuests.awaitTransfer(sender, senderFrom, sentMd5, timeout);
                ConsoleLog.Hit received = receiver.awaitSince(receiverFrom, "RECV_MD5", timeout,
                        SoakGuests.GUEST_FATAL);
                assertEquals(sentMd5, received.matcher().group(1), "receiver stored a different payload after restart "
                        + restart + "; see " + receiver.consoleLog());

                // The new back-end itself: its periodic counters show traffic both ways on both sockets.
                long[] a = awaitTraffic(backend, backend.socketA(), timeout);
                long[] b = awaitTraffic(backend, backend.socketB(), timeout);

                if (survived != null) {
                    report.add(String.format("restart %d: killed as round %d began; that round completed intact "
                            + "%ss after the kill", restart, survived.round(), since(killedAt, survived.okNanos())));
                }
                report.add(String.format("restart %d (pid %d -> %d): listening %ss after the kill; front-ends "
                                + "reconnected after %ss (A) / %ss (B); first reply %ss (receiver) / %ss (sender) after the "
                                + "kill (%s / %s); round %d intact, %ss after the kill (took %ss); new back-end counters "
                                + "A rx/tx %d/%d, B rx/tx %d/%d packets",
                        restart, oldPid, backend.pid(), since(killedAt, listeningAt), since(killedAt, connectedA),
                        since(killedAt, connectedB), since(killedAt, pongR.nanoTime()), since(killedAt, pongS.nanoTime()),
                        pongR.matcher().group(), pongS.matcher().group(), t.round(), since(killedAt, t.okNanos()),
                        secs(t.duration()), a[0], a[1], b[0], b[1]));
            }
            report.forEach(line -> System.out.println("e2e: " + line));
        } catch (AssertionError | RuntimeException e) {
            throw new AssertionError(e.getMessage() + "\n" + String.join("\n", report) + diagnostics(receiver, sender,
                    backend), e);
        } finally {
            for (AutoCloseable c : new AutoCloseable[] {sender, receiver, backend}) {
                if (c != null) {
                    c.close();
                }
            }
            E2eDirs.deleteTree(socketDir);
        }
        System.out.println("e2e: logs in " + logDir);
    }

    /** When the back-end logged that a front-end connected on {@code socket}. */
    static long awaitConnected(BackendProcess backend, Path socket, Duration timeout) throws InterruptedException {
        return backend.console().await(Pattern.compile(Pattern.quote(socket + ": front-end connected")), null,
                timeout).nanoTime();
    }

    /**
     * Waits for a periodic stats report of {@code socket} in which both queues of pair 0 counted
     * packets; returns {rx, tx} packets. Fails on a queue reporting errors.
     */
    static long[] awaitTraffic(BackendProcess backend, Path socket, Duration timeout) throws InterruptedException {
        long[] packets = new long[2];
        for (int q = 0; q < 2; q++) {
            Pattern p = Pattern.compile("^stats periodic " + Pattern.quote(socket.toString()) + " q" + q
                    + "\\((?:rx|tx)\\) packets=([1-9]\\d*) .* errors=(\\d+)");
            Matcher m = backend.console().await(p, null, timeout).matcher();
            assertEquals("0", m.group(2), "queue errors on " + socket + " q" + q + ": " + m.group());
            packets[q] = Long.parseLong(m.group(1));
        }
        return packets;
    }

    static String since(long from, long to) {
        return secs(Duration.ofNanos(to - from));
    }

    static String secs(Duration d) {
        return String.format("%.1f", d.toMillis() / 1000.0);
    }

    static String diagnostics(QemuGuest receiver, QemuGuest sender, BackendProcess backend) {
        StringBuilder sb = new StringBuilder();
        if (receiver != null) {
            sb.append("\n---- receiver console ----\n").append(ConsoleLog.tail(receiver.consoleLog(), 40));
        }
        if (sender != null) {
            sb.append("\n---- sender console ----\n").append(ConsoleLog.tail(sender.consoleLog(), 40));
        }
        if (backend != null) {
            sb.append("\n---- back-end log ----\n").append(ConsoleLog.tail(backend.logFile(), 40));
        }
        return sb.toString();
    }
}
