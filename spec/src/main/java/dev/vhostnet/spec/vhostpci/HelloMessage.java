package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

/**
 * HELLO payload (32 bytes; later versions may append fields, which are ignored): role u8, reserved u8,
 * min_version u16, max_version u16, reserved u16, capabilities u64, heartbeat_interval_ms u32,
 * heartbeat_timeout_ms u32, max_regions u32, max_virtqueues u32.
 */
public final class HelloMessage extends Flyweight {
    public static final int LENGTH = 32;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int role() {
        return u8(0);
    }

    public HelloMessage role(final int v) {
        u8(0, v);
        u8(1, 0);
        return this;
    }

    public int minVersion() {
        return u16(2);
    }

    public HelloMessage minVersion(final int v) {
        u16(2, v);
        return this;
    }

    public int maxVersion() {
        return u16(4);
    }

    public HelloMessage maxVersion(final int v) {
        u16(4, v);
        u16(6, 0);
        return this;
    }

    public long capabilities() {
        return u64(8);
    }

    public HelloMessage capabilities(final long v) {
        u64(8, v);
        return this;
    }

    public long heartbeatIntervalMs() {
        return u32(16);
    }

    public HelloMessage heartbeatIntervalMs(final long v) {
        u32(16, v);
        return this;
    }

    public long heartbeatTimeoutMs() {
        return u32(20);
    }

    public HelloMessage heartbeatTimeoutMs(final long v) {
        u32(20, v);
        return this;
    }

    public long maxRegions() {
        return u32(24);
    }

    public HelloMessage maxRegions(final long v) {
        u32(24, v);
        return this;
    }

    public long maxVirtqueues() {
        return u32(28);
    }

    public HelloMessage maxVirtqueues(final long v) {
        u32(28, v);
        return this;
    }
}
