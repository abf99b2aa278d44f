package dev.vhostnet.spec;

/**
 * SET_MEM_TABLE payload: nregions (u32), padding (u32), then {@code nregions} region descriptions. One fd per
 * region travels with the message, in region order.
 */
public final class MemoryTableMessage extends Flyweight {
    public static final int HEADER_LENGTH = 8;
    /** VHOST_MEMORY_BASELINE_NREGIONS: the most regions SET_MEM_TABLE carries. */
    public static final int MAX_REGIONS = 8;

    private final MemoryRegionMessage region = new MemoryRegionMessage();

    /** Length of a table with the number of regions currently encoded. */
    @Override
    public int encodedLength() {
        return lengthFor((int) Math.min(nregions(), MAX_REGIONS));
    }

    public static int lengthFor(final int regions) {
        return HEADER_LENGTH + regions * MemoryRegionMessage.LENGTH;
    }

    public long nregions() {
        return u32(0);
    }

    public MemoryTableMessage nregions(final long v) {
        u32(0, v);
        u32(4, 0);
        return this;
    }

    /** The i-th region; the flyweight returned is reused by the next call. */
    public MemoryRegionMessage region(final int i) {
        return region.wrap(buffer, offset + HEADER_LENGTH + i * MemoryRegionMessage.LENGTH);
    }
}
