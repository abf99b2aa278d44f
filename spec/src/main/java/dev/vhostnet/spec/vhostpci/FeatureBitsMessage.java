package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/** FEATURE_BITS payload (16 bytes): features u64, flags u32 (bit 0 NEGOTIATED), reserved u32. */
public final class FeatureBitsMessage extends Flyweight {
    public static final int LENGTH = 16;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long features() {
        return u64(0);
    }

    public FeatureBitsMessage features(final long v) {
        u64(0, v);
        return this;
    }

    public long flags() {
        return u32(8);
    }

    public FeatureBitsMessage flags(final long v) {
        u32(8, v);
        u32(12, 0);
        return this;
    }

    public boolean negotiated() {
        return (flags() & VhostPci.FEATURES_NEGOTIATED) != 0;
    }
}
