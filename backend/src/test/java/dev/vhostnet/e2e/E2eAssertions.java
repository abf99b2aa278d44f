package dev.vhostnet.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The checks every two-guest test makes, with logs attached to any failure. */
public final class E2eAssertions {
    private E2eAssertions() {
    }

    /** Both guests pinged (implied by the Result existing) and every flow's payload arrived unchanged. */
    public static void assertTransferIntact(TwoGuestScenario.Result r) {
        for (TwoGuestScenario.Flow f : r.flows()) {
            assertEquals(r.sentBytes(), f.receivedBytes(),
                    () -> "flow " + f.index() + ": received byte count differs" + r.diagnostics());
            assertEquals(r.sentMd5(), f.receivedMd5(),
                    () -> "flow " + f.index() + ": receiver's md5 differs from sender's" + r.diagnostics());
            assertEquals(r.sentMd5(), f.ackMd5(),
                    () -> "flow " + f.index() + ": md5 acknowledged to the sender differs" + r.diagnostics());
        }
        System.out.printf("e2e: %d flow(s) of %d bytes intact (md5 %s); PING_OK after %ss (receiver) / %ss (sender); "
                        + "received %ss after boot; both powered off: %s; logs: %s%n",
                r.flows().size(), r.sentBytes(), r.sentMd5(), secs(r.receiverPingOk()), secs(r.senderPingOk()),
                secs(r.received()), r.bothPoweredOff(), r.receiverLog().getParent());
    }

    static String secs(java.time.Duration d) {
        return String.format("%.1f", d.toMillis() / 1000.0);
    }
}
