package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;
import dev.vhostnet.spec.MemoryRegionMessage;

/**
 * MEMORY_INFO payload: op u16 (ADD/DEL), reserved u16, nregions u32, then {@code nregions} 32-byte regions
 * (guest_phys_addr, memory_size, user_addr, mmap_offset; the vhost-user region layout). ADD carries one fd
 * per region in region order; DEL carries none.
 */
public final class MemoryInfoMessage extends Flyweight {
    public static final int HEADER_LENGTH = 8;
    public static final int REGION_LENGTH = MemoryRegionMessage.LENGTH;
    public static final int MAX_LENGTH = HEADER_LENGTH + VhostPci.MAX_REGIONS * REGION_LENGTH;

    private final MemoryRegionMessage region = new MemoryRegionMessage();

    /** Length with the number of regions currently encoded (capped at the limit). */
    @Override
    public int encodedLength() {
        return lengthFor((int) Math.min(nregions(), VhostPci.MAX_REGIONS));
    }

    public static int lengthFor(final int regions) {
        return HEADER_LENGTH + regions * REGION_LENGTH;
    }

    public int op() {
        return u16(0);
    }

    public MemoryInfoMessage op(final int v) {
        u16(0, v);
        u16(2, 0);
        return this;
    }

    public long nregions() {
        return u32(4);
    }

    public MemoryInfoMessage nregions(final long v) {
        u32(4, v);
        return this;
    }

    /** Fds this message must come with. */
    public int expectedFds() {
        return op() == VhostPci.OP_ADD ? (int) Math.min(nregions(), VhostPci.MAX_REGIONS) : 0;
    }

    /** The i-th region; the flyweight returned is reused by the next call. */
    public MemoryRegionMessage region(final int i) {
        return region.wrap(buffer, offset + HEADER_LENGTH + i * REGION_LENGTH);
    }
}
