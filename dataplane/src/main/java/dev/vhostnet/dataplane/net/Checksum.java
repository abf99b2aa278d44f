package dev.vhostnet.dataplane.net;

import org.agrona.DirectBuffer;

import java.nio.ByteOrder;

/** The Internet checksum (RFC 1071): ones' complement sum of 16-bit big-endian words. */
public final class Checksum {
    private Checksum() {
    }

    /** Partial (unfolded) sum of buffer[offset, offset+length), added to {@code sum}. */
    public static long add(final DirectBuffer buffer, final int offset, final int length, final long sum) {
        long s = sum;
        int i = offset;
        final int end = offset + length;
        for (; i + 1 < end; i += 2) {
            s += buffer.getShort(i, ByteOrder.BIG_ENDIAN) & 0xFFFF;
        }
        if (i < end) {
            s += (buffer.getByte(i) & 0xFF) << 8;
        }
        return s;
    }

    /** Fold a partial sum to 16 bits and complement it: the value to store in a checksum field. */
    public static int finish(final long sum) {
        long s = sum;
        while ((s >>> 16) != 0) {
            s = (s & 0xFFFF) + (s >>> 16);
        }
        return (int) (~s & 0xFFFF);
    }

    /** Fold without complementing (the pseudo-header sum a CHECKSUM_PARTIAL sender leaves in the field). */
    public static int fold(final long sum) {
        long s = sum;
        while ((s >>> 16) != 0) {
            s = (s & 0xFFFF) + (s >>> 16);
        }
        return (int) s;
    }
}
