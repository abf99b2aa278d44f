package dev.vhostnet.spec.vhostpci;

import org.agrona.concurrent.UnsafeBuffer;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Byte-exact test helpers: layouts are wrapped at an odd offset inside guard bytes, so that wrong offsets and
 * writes outside the layout show up.
 */
final class Bytes {
    static final int AT = 7;
    static final int GUARD = 16;
    static final byte GUARD_BYTE = (byte) 0xA5;

    private Bytes() {
    }

    static byte[] bytes(final int... values) {
        final byte[] out = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            if (values[i] < 0 || values[i] > 0xFF) {
                throw new IllegalArgumentException("not a byte: " + values[i]);
            }
            out[i] = (byte) values[i];
        }
        return out;
    }

    static byte[] concat(final byte[]... parts) {
        int n = 0;
        for (final byte[] p : parts) {
            n += p.length;
        }
        final byte[] out = new byte[n];
        int at = 0;
        for (final byte[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    static byte[] zeros(final int n) {
        return new byte[n];
    }

    static byte[] repeat(final byte[] part, final int times) {
        final byte[] out = new byte[part.length * times];
        for (int i = 0; i < times; i++) {
            System.arraycopy(part, 0, out, i * part.length, part.length);
        }
        return out;
    }

    /** Little-endian encodings, for building expected arrays of large messages. */
    static byte[] le16(final int v) {
        return bytes(v & 0xFF, (v >>> 8) & 0xFF);
    }

    static byte[] le32(final long v) {
        return bytes((int) (v & 0xFF), (int) ((v >>> 8) & 0xFF), (int) ((v >>> 16) & 0xFF), (int) ((v >>> 24) & 0xFF));
    }

    static byte[] le64(final long v) {
        return concat(le32(v & 0xFFFF_FFFFL), le32(v >>> 32));
    }

    static UnsafeBuffer guarded(final int length) {
        final byte[] raw = new byte[AT + length + GUARD];
        Arrays.fill(raw, GUARD_BYTE);
        return new UnsafeBuffer(raw);
    }

    /** Zeroed layout area of {@code length} bytes at {@link #AT}, guards around it. */
    static UnsafeBuffer zeroed(final int length) {
        final UnsafeBuffer b = guarded(length);
        b.setMemory(AT, length, (byte) 0);
        return b;
    }

    static UnsafeBuffer holding(final byte[] content) {
        final UnsafeBuffer buffer = guarded(content.length);
        buffer.putBytes(AT, content);
        return buffer;
    }

    static void assertLayout(final byte[] expected, final UnsafeBuffer buffer) {
        final byte[] actual = new byte[expected.length];
        buffer.getBytes(AT, actual);
        assertArrayEquals(expected, actual, () -> "expected " + hex(expected) + "\n but was " + hex(actual));
        for (int i = 0; i < AT; i++) {
            assertEquals(GUARD_BYTE, buffer.getByte(i), "guard byte before the layout overwritten at " + i);
        }
        for (int i = AT + expected.length; i < buffer.capacity(); i++) {
            assertEquals(GUARD_BYTE, buffer.getByte(i), "guard byte after the layout overwritten at " + i);
        }
    }

    static String hex(final byte[] b) {
        final StringBuilder sb = new StringBuilder();
        for (int i = 0; i < b.length; i++) {
            sb.append(i == 0 ? "" : " ").append(String.format("%02X", b[i] & 0xFF));
        }
        return sb.toString();
    }
}
