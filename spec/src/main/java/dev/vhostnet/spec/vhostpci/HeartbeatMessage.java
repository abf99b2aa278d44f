package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/**
 * HEARTBEAT payload (24 bytes): op u16 (PING = 0, PONG = 1), 6 reserved bytes, ping_seq u64 (PONG: msg_seq of
 * the PING answered), timestamp_ns u64 (PING: sender's monotonic clock; PONG: copied from the PING).
 */
public final class HeartbeatMessage extends Flyweight {
    public static final int LENGTH = 24;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int op() {
        return u16(0);
    }

    public HeartbeatMessage op(final int v) {
        u16(0, v);
        u16(2, 0);
        u32(4, 0);
        return this;
    }

    public long pingSeq() {
        return u64(8);
    }

    public HeartbeatMessage pingSeq(final long v) {
        u64(8, v);
        return this;
    }

    public long timestampNs() {
        return u64(16);
    }

    public HeartbeatMessage timestampNs(final long v) {
        u64(16, v);
        return this;
    }
}
