package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/**
 * A queue of DEVICE_INFO ADD (48 bytes): the 8-byte {@link VirtqState} layout (index, last_avail_idx,
 * last_used_idx, state_flags, reserved), then size u16, format u8 (split/packed), fd_flags u8 (KICK, CALL),
 * reserved u32, desc_addr u64, driver_addr u64 (avail ring / driver area), device_addr u64 (used ring / device
 * area), log_addr u64. Ring addresses are in the client front-end's (QEMU's) address space.
 */
public final class VirtqInfo extends Flyweight {
    public static final int LENGTH = 48;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int index() {
        return u16(0);
    }

    public VirtqInfo index(final int v) {
        u16(0, v);
        return this;
    }

    public int lastAvailIdx() {
        return u16(2);
    }

    public VirtqInfo lastAvailIdx(final int v) {
        u16(2, v);
        return this;
    }

    public int lastUsedIdx() {
        return u16(4);
    }

    public VirtqInfo lastUsedIdx(final int v) {
        u16(4, v);
        return this;
    }

    public int stateFlags() {
        return u8(6);
    }

    public VirtqInfo stateFlags(final int v) {
        u8(6, v);
        u8(7, 0);
        return this;
    }

    public int size() {
        return u16(8);
    }

    public VirtqInfo size(final int v) {
        u16(8, v);
        return this;
    }

    public int format() {
        return u8(10);
    }

    public VirtqInfo format(final int v) {
        u8(10, v);
        return this;
    }

    public int fdFlags() {
        return u8(11);
    }

    public VirtqInfo fdFlags(final int v) {
        u8(11, v);
        u32(12, 0);
        return this;
    }

    public boolean hasKick() {
        return (fdFlags() & VhostPci.FD_KICK) != 0;
    }

    public boolean hasCall() {
        return (fdFlags() & VhostPci.FD_CALL) != 0;
    }

    /** Number of eventfds attached for this queue (0..2). */
    public int fdCount() {
        return Integer.bitCount(fdFlags() & (VhostPci.FD_KICK | VhostPci.FD_CALL));
    }

    public long descAddr() {
        return u64(16);
    }

    public VirtqInfo descAddr(final long v) {
        u64(16, v);
        return this;
    }

    public long driverAddr() {
        return u64(24);
    }

    public VirtqInfo driverAddr(final long v) {
        u64(24, v);
        return this;
    }

    public long deviceAddr() {
        return u64(32);
    }

    public VirtqInfo deviceAddr(final long v) {
        u64(32, v);
        return this;
    }

    public long logAddr() {
        return u64(40);
    }

    public VirtqInfo logAddr(final long v) {
        u64(40, v);
        return this;
    }
}
