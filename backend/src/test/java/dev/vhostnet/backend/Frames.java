package dev.vhostnet.backend;

import java.util.Random;

/** Ethernet frames with recognisable contents, so a corrupted or misplaced byte shows in the comparison. */
public final class Frames {
    private Frames() {
    }

    /** dst, src, an experimental EtherType, then a payload derived from {@code seed}. */
    public static byte[] frame(final byte[] dst, final byte[] src, final int length, final long seed) {
        final byte[] f = new byte[length];
        System.arraycopy(dst, 0, f, 0, 6);
        System.arraycopy(src, 0, f, 6, 6);
        f[12] = (byte) 0x88;
        f[13] = (byte) 0xB5; // local experimental EtherType
        final Random r = new Random(seed);
        for (int i = 14; i < length; i++) {
            f[i] = (byte) r.nextInt();
        }
        return f;
    }

    public static byte[] frame(final int length, final long seed) {
        return frame(InProcessBackend.MAC_B, InProcessBackend.MAC_A, length, seed);
    }
}
