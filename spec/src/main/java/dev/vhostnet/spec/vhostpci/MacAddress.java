package dev.vhostnet.spec.vhostpci;

/**
 * A MAC as the DEVICE_INFO {@code device_id}: a u64 whose little-endian bytes 0..5 are the MAC in transmission
 * order and bytes 6..7 zero. {@code 52:54:00:12:34:56} is the value {@code 0x0000_5634_1200_5452L}.
 */
public final class MacAddress {
    public static final int LENGTH = 6;
    private static final long MASK = 0x0000_FFFF_FFFF_FFFFL;

    private MacAddress() {
    }

    public static long toDeviceId(final byte[] mac) {
        if (mac.length != LENGTH) {
            throw new IllegalArgumentException("a MAC has 6 bytes, not " + mac.length);
        }
        long v = 0;
        for (int i = 0; i < LENGTH; i++) {
            v |= (mac[i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    public static byte[] fromDeviceId(final long deviceId) {
        final byte[] mac = new byte[LENGTH];
        for (int i = 0; i < LENGTH; i++) {
            mac[i] = (byte) (deviceId >>> (8 * i));
        }
        return mac;
    }

    /** Byte i (0 = first on the wire) of the MAC held in {@code deviceId}. */
    public static int byteAt(final long deviceId, final int i) {
        return (int) (deviceId >>> (8 * i)) & 0xFF;
    }

    /** A device_id is a MAC when its two top bytes are zero. */
    public static boolean isValidDeviceId(final long deviceId) {
        return (deviceId & ~MASK) == 0;
    }

    /** {@code aa:bb:cc:dd:ee:ff} (lower case). */
    public static String format(final long deviceId) {
        final StringBuilder sb = new StringBuilder(17);
        for (int i = 0; i < LENGTH; i++) {
            if (i > 0) {
                sb.append(':');
            }
            final int b = byteAt(deviceId, i);
            sb.append(Character.forDigit(b >>> 4, 16)).append(Character.forDigit(b & 0xF, 16));
        }
        return sb.toString();
    }

    /** Parses {@code aa:bb:cc:dd:ee:ff} (or with '-'), either case. */
    public static long parse(final String text) {
        if (text.length() != 17) {
            throw new IllegalArgumentException("not a MAC: " + text);
        }
        long v = 0;
        for (int i = 0; i < LENGTH; i++) {
            final int at = 3 * i;
            if (i > 0 && text.charAt(at - 1) != ':' && text.charAt(at - 1) != '-') {
                throw new IllegalArgumentException("not a MAC: " + text);
            }
            final int hi = Character.digit(text.charAt(at), 16);
            final int lo = Character.digit(text.charAt(at + 1), 16);
            if (hi < 0 || lo < 0) {
                throw new IllegalArgumentException("not a MAC: " + text);
            }
            v |= (long) (hi << 4 | lo) << (8 * i);
        }
        return v;
    }
}
