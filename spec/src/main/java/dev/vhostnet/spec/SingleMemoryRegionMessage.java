package dev.vhostnet.spec;

/** ADD_MEM_REG / REM_MEM_REG payload: 8 bytes of padding, then one region description (40 bytes in all). */
public final class SingleMemoryRegionMessage extends Flyweight {
    public static final int LENGTH = 8 + MemoryRegionMessage.LENGTH;

    private final MemoryRegionMessage region = new MemoryRegionMessage();

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public MemoryRegionMessage region() {
        return region.wrap(buffer, offset + 8);
    }
}
