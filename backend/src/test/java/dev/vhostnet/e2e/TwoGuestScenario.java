package dev.vhostnet.e2e;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * The two-guest scenario on a {@link PeerModeBackend}: a receiver guest on socket A and a
 * sender guest on socket B ping each other, then the sender pushes a random payload over TCP and
 * both report its md5. Guests are stopped when {@link #run} returns; the back-end is the
 * caller's to close.
 */
public final class TwoGuestScenario {
    private static final int TAIL_LINES = 40;
    /** Powering off is courtesy, not part of the check: wait briefly, then kill. */
    private static final Duration POWER_OFF_WAIT = Duration.ofSeconds(30);

    private final int payloadMiB;
    private final Duration timeout;
    private final List<String> extraNicProps;

    public TwoGuestScenario(int payloadMiB, Duration timeout, List<String> extraNicProps) {
        this.payloadMiB = payloadMiB;
        this.timeout = timeout;
        this.extraNicProps = List.copyOf(extraNicProps);
    }

    /** Payload size and timeout from {@link E2eSettings}, NICs with QEMU's default features. */
    public static TwoGuestScenario defaults() {
        return new TwoGuestScenario(E2eSettings.payloadMiB(), E2eSettings.markerTimeout(), List.of());
    }

    /**
     * What the guests reported; {@code sinceBoot} durations count from each QEMU's start.
     * {@link #diagnostics()} is meant for assertion messages.
     */
    public record Result(String sentMd5, long sentBytes, String receivedMd5, long receivedBytes, String ackMd5,
                         Duration receiverPingOk, Duration senderPingOk, Duration received,
                         boolean bothPoweredOff, Path receiverLog, Path senderLog, Path backendLog) {
        public String diagnostics() {
            return TwoGuestScenario.diagnostics(receiverLog, senderLog, backendLog);
        }
    }

    /**
     * Boots both guests against {@code backend} and waits for the scenario's markers. Any wait
     * that fails (timeout, E2E:FAIL, guest death) throws an AssertionError whose message carries
     * the tails of both consoles and of the back-end log.
     */
    public Result run(PeerModeBackend backend, Path logDir) throws IOException, InterruptedException {
        GuestImage image = GuestImage.get();
        GuestConfig receiverConfig = new GuestConfig("receiver", backend.socketA(), "52:54:00:e2:e0:01",
                GuestRole.RECEIVER, "10.0.0.1", "10.0.0.2", payloadMiB, extraNicProps);
        GuestConfig senderConfig = new GuestConfig("sender", backend.socketB(), "52:54:00:e2:e0:02",
                GuestRole.SENDER, "10.0.0.2", "10.0.0.1", payloadMiB, extraNicProps);

        try (QemuGuest receiver = QemuGuest.boot(image, receiverConfig, logDir);
             QemuGuest sender = QemuGuest.boot(image, senderConfig, logDir)) {
            try {
                String sentMd5 = sender.awaitValue("SENT_MD5", timeout);
                long sentBytes = Long.parseLong(sender.awaitValue("SENT_BYTES", timeout));
                QemuGuest.Marker receiverPing = receiver.await("PING_OK", timeout);
                QemuGuest.Marker senderPing = sender.await("PING_OK", timeout);
                QemuGuest.Marker receivedMd5 = receiver.await("RECV_MD5", timeout);
                long receivedBytes = Long.parseLong(receiver.awaitValue("RECV_BYTES", timeout));
                String ackMd5 = sender.awaitValue("ACK_MD5", timeout);
                receiver.await("DONE", timeout);
                sender.await("DONE", timeout);
                // Non-short-circuit &: give both guests their chance to power off.
                boolean poweredOff = receiver.awaitPowerOff(POWER_OFF_WAIT) & sender.awaitPowerOff(POWER_OFF_WAIT);
                return new Result(sentMd5, sentBytes, receivedMd5.value(), receivedBytes, ackMd5,
                        receiverPing.sinceBoot(), senderPing.sinceBoot(), receivedMd5.sinceBoot(), poweredOff,
                        receiver.consoleLog(), sender.consoleLog(), backend.logFile());
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError(e.getMessage()
                        + diagnostics(receiver.consoleLog(), sender.consoleLog(), backend.logFile()), e);
            }
        }
    }

    static String diagnostics(Path receiverLog, Path senderLog, Path backendLog) {
        return section("receiver console", receiverLog)
                + section("sender console", senderLog)
                + section("back-end log", backendLog);
    }

    private static String section(String title, Path log) {
        return "\n---- " + title + " (" + log + "), last " + TAIL_LINES + " lines ----\n"
                + ConsoleLog.tail(log, TAIL_LINES);
    }
}
