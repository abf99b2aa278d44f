package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/**
 * A queue position (8 bytes): index u16, last_avail_idx u16, last_used_idx u16, state_flags u8 (AVAIL_WRAP,
 * USED_WRAP, LOG), reserved u8. Entries of DEVICE_INFO DEL and of the DEL_DONE ACK; also the first 8 bytes of
 * a {@link VirtqInfo}.
 */
public final class VirtqState extends Flyweight {
    public static final int LENGTH = 8;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int index() {
        return u16(0);
    }

    public VirtqState index(final int v) {
        u16(0, v);
        return this;
    }

    public int lastAvailIdx() {
        return u16(2);
    }

    public VirtqState lastAvailIdx(final int v) {
        u16(2, v);
        return this;
    }

    public int lastUsedIdx() {
        return u16(4);
    }

    public VirtqState lastUsedIdx(final int v) {
        u16(4, v);
        return this;
    }

    public int stateFlags() {
        return u8(6);
    }

    public VirtqState stateFlags(final int v) {
        u8(6, v);
        u8(7, 0);
        return this;
    }

    public boolean availWrap() {
        return (stateFlags() & VhostPci.STATE_AVAIL_WRAP) != 0;
    }

    public boolean usedWrap() {
        return (stateFlags() & VhostPci.STATE_USED_WRAP) != 0;
    }
}
