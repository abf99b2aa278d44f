package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/** PEER_CONNECTION payload (8 bytes): state u16 (OFF = 0, ON = 1), 6 reserved bytes. */
public final class PeerConnectionMessage extends Flyweight {
    public static final int LENGTH = 8;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int state() {
        return u16(0);
    }

    public PeerConnectionMessage state(final int v) {
        u16(0, v);
        u16(2, 0);
        u32(4, 0);
        return this;
    }
}
