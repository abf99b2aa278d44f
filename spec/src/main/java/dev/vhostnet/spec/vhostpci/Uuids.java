package dev.vhostnet.spec.vhostpci;

import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

import java.nio.ByteOrder;
import java.util.UUID;

/**
 * UUIDs on the wire: 16 raw bytes in RFC 4122 network order (the order of the text form), i.e. the most
 * significant long big-endian, then the least significant long big-endian. A byte string, not a number: it is
 * the one field of the protocol that is not little-endian.
 */
public final class Uuids {
    public static final int LENGTH = 16;

    private Uuids() {
    }

    public static void put(final MutableDirectBuffer buffer, final int at, final long msb, final long lsb) {
        buffer.putLong(at, msb, ByteOrder.BIG_ENDIAN);
        buffer.putLong(at + 8, lsb, ByteOrder.BIG_ENDIAN);
    }

    public static void put(final MutableDirectBuffer buffer, final int at, final UUID uuid) {
        put(buffer, at, uuid.getMostSignificantBits(), uuid.getLeastSignificantBits());
    }

    public static long msb(final DirectBuffer buffer, final int at) {
        return buffer.getLong(at, ByteOrder.BIG_ENDIAN);
    }

    public static long lsb(final DirectBuffer buffer, final int at) {
        return buffer.getLong(at + 8, ByteOrder.BIG_ENDIAN);
    }

    /** Allocates; for logs and tables, not for the per-message path. */
    public static UUID get(final DirectBuffer buffer, final int at) {
        return new UUID(msb(buffer, at), lsb(buffer, at));
    }

    public static boolean equals(final DirectBuffer buffer, final int at, final UUID uuid) {
        return msb(buffer, at) == uuid.getMostSignificantBits() && lsb(buffer, at) == uuid.getLeastSignificantBits();
    }

    /** The 16 wire bytes of {@code uuid}. */
    public static byte[] toBytes(final UUID uuid) {
        final byte[] out = new byte[LENGTH];
        final long msb = uuid.getMostSignificantBits();
        final long lsb = uuid.getLeastSignificantBits();
        for (int i = 0; i < 8; i++) {
            out[i] = (byte) (msb >>> (56 - 8 * i));
            out[8 + i] = (byte) (lsb >>> (56 - 8 * i));
        }
        return out;
    }
}
