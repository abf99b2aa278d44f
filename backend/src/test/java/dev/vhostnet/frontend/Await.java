package dev.vhostnet.frontend;

import java.time.Duration;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/** Waiting for a condition with a deadline, instead of sleeping and hoping. */
public final class Await {
    public static final Duration DEFAULT = Duration.ofSeconds(5);

    private Await() {
    }

    /** Poll {@code condition} until true; fail with {@code what} and the last observed value after the timeout. */
    public static void until(final String what, final BooleanSupplier condition) {
        until(what, DEFAULT, condition, () -> "");
    }

    public static void until(final String what, final Duration timeout, final BooleanSupplier condition,
                             final Supplier<String> observed) {
        final long deadline = System.nanoTime() + timeout.toNanos();
        long pause = 1;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout.toMillis() + " ms waiting for " + what
                    + observedSuffix(observed.get()));
            }
            try {
                Thread.sleep(pause);
            } catch (final InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for " + what, e);
            }
            pause = Math.min(pause * 2, 20);
        }
    }

    private static String observedSuffix(final String observed) {
        return observed.isEmpty() ? "" : " (last seen: " + observed + ")";
    }
}
