package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/**
 * DEVICE_INFO payload: op u16 (ADD/DEL), device_type u16, nvqs u32, device_id u64 (net: MAC, see
 * {@link MacAddress}), features u64, reserved u64 (32 bytes), then {@code nvqs} entries: 48-byte
 * {@link VirtqInfo} for ADD, 8-byte {@link VirtqState} for DEL. ADD carries, for each queue in order, its kick
 * eventfd then its call eventfd, as flagged.
 */
public final class DeviceInfoMessage extends Flyweight {
    public static final int HEADER_LENGTH = 32;
    public static final int MAX_LENGTH = HEADER_LENGTH + VhostPci.MAX_VIRTQUEUES * VirtqInfo.LENGTH;

    private final VirtqInfo info = new VirtqInfo();
    private final VirtqState state = new VirtqState();

    @Override
    public int encodedLength() {
        return lengthFor(op(), (int) Math.min(nvqs(), VhostPci.MAX_VIRTQUEUES));
    }

    /** Payload length for {@code op} with {@code nvqs} entries. */
    public static int lengthFor(final int op, final int nvqs) {
        return HEADER_LENGTH + nvqs * (op == VhostPci.OP_ADD ? VirtqInfo.LENGTH : VirtqState.LENGTH);
    }

    public int op() {
        return u16(0);
    }

    public DeviceInfoMessage op(final int v) {
        u16(0, v);
        return this;
    }

    public int deviceType() {
        return u16(2);
    }

    public DeviceInfoMessage deviceType(final int v) {
        u16(2, v);
        return this;
    }

    public long nvqs() {
        return u32(4);
    }

    public DeviceInfoMessage nvqs(final long v) {
        u32(4, v);
        return this;
    }

    public long deviceId() {
        return u64(8);
    }

    public DeviceInfoMessage deviceId(final long v) {
        u64(8, v);
        return this;
    }

    public long features() {
        return u64(16);
    }

    public DeviceInfoMessage features(final long v) {
        u64(16, v);
        u64(24, 0);
        return this;
    }

    /** The i-th queue of an ADD; the flyweight returned is reused by the next call. */
    public VirtqInfo virtq(final int i) {
        return info.wrap(buffer, offset + HEADER_LENGTH + i * VirtqInfo.LENGTH);
    }

    /** The i-th queue state of a DEL; the flyweight returned is reused by the next call. */
    public VirtqState state(final int i) {
        return state.wrap(buffer, offset + HEADER_LENGTH + i * VirtqState.LENGTH);
    }

    /** Fds this message must come with (the entries must be within the buffer). */
    public int expectedFds() {
        if (op() != VhostPci.OP_ADD) {
            return 0;
        }
        final int n = (int) Math.min(nvqs(), VhostPci.MAX_VIRTQUEUES);
        int fds = 0;
        for (int i = 0; i < n; i++) {
            fds += virtq(i).fdCount();
        }
        return fds;
    }
}
