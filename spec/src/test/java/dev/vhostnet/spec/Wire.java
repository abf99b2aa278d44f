package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Test helpers for byte-exact checks. Every flyweight is wrapped at a non-zero, odd offset inside a buffer
 * whose surroundings hold a guard byte, so that wrong offsets and writes outside the layout show up.
 */
final class Wire {
    /** Where the flyweight under test starts inside the buffer. */
    static final int AT = 5;
    /** Guard bytes on each side of the layout. */
    static final int GUARD = 16;
    static final byte GUARD_BYTE = (byte) 0xA5;

    private Wire() {
    }

    /** Literal bytes, written as ints so that {@code 0xFF} needs no cast. */
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

    /** A buffer of guard bytes with room for {@code length} bytes at {@link #AT}. */
    static UnsafeBuffer guarded(final int length) {
        final byte[] raw = new byte[AT + length + GUARD];
        Arrays.fill(raw, GUARD_BYTE);
        return new UnsafeBuffer(raw);
    }

    /** A guarded buffer holding {@code content} at {@link #AT}. */
    static UnsafeBuffer holding(final byte[] content) {
        final UnsafeBuffer buffer = guarded(content.length);
        buffer.putBytes(AT, content);
        return buffer;
    }

    /** The bytes at {@link #AT} equal {@code expected}, and no guard byte around them was touched. */
    static void assertLayout(final byte[] expected, final UnsafeBuffer buffer) {
        final byte[] actual = new byte[expected.length];
        buffer.getBytes(AT, actual);
        assertArrayEquals(expected, actual, () -> "expected " + hex(expected) + " but was " + hex(actual));
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
