package dev.vhostnet.spec;

/**
 * {@code VhostUserInflight} (GET/SET_INFLIGHT_FD): mmap_size (u64), mmap_offset (u64), num_queues (u16),
 * queue_size (u16), then 4 bytes of tail padding: the C struct is 8-byte aligned, so it travels as 24 bytes
 * and front-ends (QEMU, libvhost-user, DPDK) reject any other payload size.
 */
public final class InflightMessage extends Flyweight {
    /** Payload size on the wire, tail padding included. */
    public static final int LENGTH = 24;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long mmapSize() {
        return u64(0);
    }

    public InflightMessage mmapSize(final long v) {
        u64(0, v);
        return this;
    }

    public long mmapOffset() {
        return u64(8);
    }

    public InflightMessage mmapOffset(final long v) {
        u64(8, v);
        return this;
    }

    public int numQueues() {
        return u16(16);
    }

    public InflightMessage numQueues(final int v) {
        u16(16, v);
        return this;
    }

    public int queueSize() {
        return u16(18);
    }

    public InflightMessage queueSize(final int v) {
        u16(18, v);
        return this;
    }
}
