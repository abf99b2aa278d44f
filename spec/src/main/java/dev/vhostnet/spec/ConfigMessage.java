package dev.vhostnet.spec;

/** GET_CONFIG / SET_CONFIG payload: offset (u32), size (u32), flags (u32), then up to 256 bytes of config space. */
public final class ConfigMessage extends Flyweight {
    public static final int HEADER_LENGTH = 12;
    public static final int MAX_CONFIG_SIZE = 256;
    /** flags: the write is part of a live migration (SET_CONFIG). */
    public static final int F_MIGRATION = 1;

    @Override
    public int encodedLength() {
        return HEADER_LENGTH + (int) Math.min(size(), MAX_CONFIG_SIZE);
    }

    public long configOffset() {
        return u32(0);
    }

    public ConfigMessage configOffset(final long v) {
        u32(0, v);
        return this;
    }

    public long size() {
        return u32(4);
    }

    public ConfigMessage size(final long v) {
        u32(4, v);
        return this;
    }

    public long flags() {
        return u32(8);
    }

    public ConfigMessage flags(final long v) {
        u32(8, v);
        return this;
    }

    /** Offset, within the wrapped buffer, of the first config-space byte. */
    public int payloadOffset() {
        return offset + HEADER_LENGTH;
    }
}
