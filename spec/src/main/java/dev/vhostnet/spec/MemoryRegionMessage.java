package dev.vhostnet.spec;

/**
 * One memory region description (32 bytes): guest physical address, size, front-end virtual address and the
 * offset into the region's fd at which the region starts (all u64).
 */
public final class MemoryRegionMessage extends Flyweight {
    public static final int LENGTH = 32;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public long guestPhysAddr() {
        return u64(0);
    }

    public MemoryRegionMessage guestPhysAddr(final long v) {
        u64(0, v);
        return this;
    }

    public long memorySize() {
        return u64(8);
    }

    public MemoryRegionMessage memorySize(final long v) {
        u64(8, v);
        return this;
    }

    public long userAddr() {
        return u64(16);
    }

    public MemoryRegionMessage userAddr(final long v) {
        u64(16, v);
        return this;
    }

    public long mmapOffset() {
        return u64(24);
    }

    public MemoryRegionMessage mmapOffset(final long v) {
        u64(24, v);
        return this;
    }
}
