package dev.vhostnet.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The checks every two-guest test makes, with logs attached to any failure. */
public final class E2eAssertions {
    private E2eAssertions() {
    }

    /** Both guests pinged (implied by the Result existing) and the payload arrived unchanged. */
    public static void assertTransferIntact(TwoGuestScenario.Result r) {
        assertEquals(r.sentBytes(), r.receivedBytes(), () -> "received byte count differs" + r.diagnostics());
        assertEquals(r.sentMd5(), r.receivedMd5(), () -> "receiver's md5 differs from sender's" + r.diagnostics());
        assertEquals(r.sentMd5(), r.ackMd5(), () -> "md5 acknowledged to the sender differs" + r.diagnostics());
        System.out.printf("e2e: %d bytes intact (md5 %s); PING_OK after %ss (receiver) / %ss (sender); "
                        + "received %ss after boot; both powered off: %s; logs: %s%n",
                r.receivedBytes(), r.receivedMd5(), secs(r.receiverPingOk()), secs(r.senderPingOk()),
                secs(r.received()), r.bothPoweredOff(), r.receiverLog().getParent());
    }

    private static String secs(java.time.Duration d) {
        return String.format("%.1f", d.toMillis() / 1000.0);
    }
}
