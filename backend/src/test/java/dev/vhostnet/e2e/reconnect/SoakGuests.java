package dev.vhostnet.e2e.reconnect;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.vhostnet.e2e.ConsoleLog;
import dev.vhostnet.e2e.GuestConfig;
import dev.vhostnet.e2e.GuestRole;
import dev.vhostnet.e2e.QemuGuest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Guests in guest-init.sh's soak mode ({@code e2e.mode=soak}): they ping each other forever and
 * the sender pushes its payload to the receiver every few seconds, so a test can interrupt the
 * path (kill the back-end, migrate a guest) and then wait for traffic to come back. The guests'
 * vhost-user chardevs reconnect ({@code reconnect=1}): QEMU retries every second after the
 * back-end went away.
 */
public final class SoakGuests {
    /** Small: a round must fit between interruptions, and TCG is slow. */
    public static final int PAYLOAD_MIB = 4;
    /** Only the guest's own verdicts end a wait: QEMU prints errors when its back-end vanishes. */
    public static final Pattern GUEST_FATAL = Pattern.compile("E2E:FAIL=|Kernel panic");

    public static final String RECEIVER_IP = "10.0.0.1";
    public static final String SENDER_IP = "10.0.0.2";
    public static final String RECEIVER_MAC = "52:54:00:e2:e0:01";
    public static final String SENDER_MAC = "52:54:00:e2:e0:02";

    private SoakGuests() {
    }

    public static GuestConfig receiver(String name, Path socket) {
        return new GuestConfig(name, socket, RECEIVER_MAC, GuestRole.RECEIVER, RECEIVER_IP, SENDER_IP, PAYLOAD_MIB,
                List.of());
    }

    public static GuestConfig sender(String name, Path socket) {
        return new GuestConfig(name, socket, SENDER_MAC, GuestRole.SENDER, SENDER_IP, RECEIVER_IP, PAYLOAD_MIB,
                List.of());
    }

    /**
     * Soak mode with a reconnecting chardev. {@code no_timer_check}: under heavy host load the
     * guest kernel's timer check may wrongly conclude that the IO-APIC timer is broken and panic.
     */
    public static QemuGuest.Extras extras(List<String> moreQemuArgs) {
        return extras(2, moreQemuArgs);
    }

    /** As {@link #extras(List)}, with the sender pausing {@code everySeconds} between rounds (0: none). */
    public static QemuGuest.Extras extras(int everySeconds, List<String> moreQemuArgs) {
        return new QemuGuest.Extras(List.of("no_timer_check", "e2e.mode=soak", "e2e.every=" + everySeconds),
                List.of("reconnect=1"), moreQemuArgs);
    }

    /** A reply marker on {@code guest}'s console at or after line {@code fromLine}. */
    public static ConsoleLog.Hit awaitPong(QemuGuest guest, int fromLine, Duration timeout)
            throws InterruptedException {
        return guest.awaitSince(fromLine, "PONG", timeout, GUEST_FATAL);
    }

    /**
     * A completed transfer: its round number, when it began and ended (System.nanoTime()), and
     * the receiver's md5 as acknowledged to the sender.
     */
    public record Transfer(int round, long beginNanos, long okNanos, String ackMd5, int okLine) {
        public Duration duration() {
            return Duration.ofNanos(okNanos - beginNanos);
        }
    }

    /**
     * Waits for a round that starts at or after line {@code fromLine} of the sender's console and
     * completes (the receiver's md5 came back). Rounds that got no answer are skipped, up to a
     * limit: one may straddle an interruption. Asserts the receiver's md5 equals {@code sentMd5}.
     */
    public static Transfer awaitTransfer(QemuGuest sender, int fromLine, String sentMd5, Duration timeout)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<String> retries = new ArrayList<>();
        int from = fromLine;
        while (true) {
            ConsoleLog.Hit begin = sender.awaitSince(from, "XFER_BEGIN", left(deadline), GUEST_FATAL);
            ConsoleLog.Hit end = awaitOutcome(sender, begin, left(deadline));
            if (end.matcher().group(1).equals("OK")) {
                return transfer(sender, begin, end, sentMd5);
            }
            retries.add("round " + begin.matcher().group(1));
            if (retries.size() > 5) {
                throw new AssertionError("no transfer completes: " + retries + " got no answer; see "
                        + sender.consoleLog());
            }
            from = end.line() + 1;
        }
    }

    /** The round that began with {@code begin} must complete, with the payload's md5. */
    public static Transfer awaitSameRound(QemuGuest sender, ConsoleLog.Hit begin, String sentMd5, Duration timeout)
            throws InterruptedException {
        ConsoleLog.Hit end = awaitOutcome(sender, begin, timeout);
        if (!end.matcher().group(1).equals("OK")) {
            throw new AssertionError("round " + begin.matcher().group(1) + " got no answer (" + end.matcher().group()
                    + "); see " + sender.consoleLog());
        }
        return transfer(sender, begin, end, sentMd5);
    }

    /** The XFER_OK or XFER_RETRY of the round that began with {@code begin}. */
    private static ConsoleLog.Hit awaitOutcome(QemuGuest sender, ConsoleLog.Hit begin, Duration timeout)
            throws InterruptedException {
        String round = begin.matcher().group(1);
        return sender.console().await(
                Pattern.compile("E2E:XFER_(OK|RETRY)=" + round + "(?::(\\S+))?(?=\\s|$)"), GUEST_FATAL,
                timeout, begin.line());
    }

    private static Transfer transfer(QemuGuest sender, ConsoleLog.Hit begin, ConsoleLog.Hit ok, String sentMd5) {
        int round = Integer.parseInt(begin.matcher().group(1));
        String ack = ok.matcher().group(2);
        assertEquals(sentMd5, ack, "round " + round + ": the receiver's md5 differs from the payload's; see "
                + sender.consoleLog());
        return new Transfer(round, begin.nanoTime(), ok.nanoTime(), ack, ok.line());
    }

    private static Duration left(long deadline) {
        return Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
    }
}
