package dev.vhostnet.spec.vhostpci;

import dev.vhostnet.spec.Flyweight;

import java.util.UUID;

/**
 * The 32-byte header of every vhost-pci socket message: msg_type u16, msg_version u16, msg_len u32 (payload
 * bytes after the header), msg_seq u64, sender UUID (16 bytes, RFC 4122 order).
 */
public final class VhostPciHeader extends Flyweight {
    public static final int LENGTH = 32;
    public static final int TYPE_OFFSET = 0;
    public static final int VERSION_OFFSET = 2;
    public static final int LEN_OFFSET = 4;
    public static final int SEQ_OFFSET = 8;
    public static final int UUID_OFFSET = 16;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    public int type() {
        return u16(TYPE_OFFSET);
    }

    public VhostPciHeader type(final int v) {
        u16(TYPE_OFFSET, v);
        return this;
    }

    public int version() {
        return u16(VERSION_OFFSET);
    }

    public VhostPciHeader version(final int v) {
        u16(VERSION_OFFSET, v);
        return this;
    }

    /** Payload length, unsigned: may exceed the int range in a hostile header. */
    public long length() {
        return u32(LEN_OFFSET);
    }

    public VhostPciHeader length(final long v) {
        u32(LEN_OFFSET, v);
        return this;
    }

    public long seq() {
        return u64(SEQ_OFFSET);
    }

    public VhostPciHeader seq(final long v) {
        u64(SEQ_OFFSET, v);
        return this;
    }

    public long senderMsb() {
        return Uuids.msb(buffer, offset + UUID_OFFSET);
    }

    public long senderLsb() {
        return Uuids.lsb(buffer, offset + UUID_OFFSET);
    }

    public VhostPciHeader sender(final long msb, final long lsb) {
        Uuids.put(buffer, offset + UUID_OFFSET, msb, lsb);
        return this;
    }

    public VhostPciHeader sender(final UUID uuid) {
        return sender(uuid.getMostSignificantBits(), uuid.getLeastSignificantBits());
    }

    /** Allocates. */
    public UUID sender() {
        return new UUID(senderMsb(), senderLsb());
    }

    public boolean senderIs(final UUID uuid) {
        return senderMsb() == uuid.getMostSignificantBits() && senderLsb() == uuid.getLeastSignificantBits();
    }

    /** Offset of the payload relative to the header start. */
    public static int payloadOffset() {
        return LENGTH;
    }
}
