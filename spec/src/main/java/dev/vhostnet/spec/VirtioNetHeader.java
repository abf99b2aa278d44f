package dev.vhostnet.spec;

/**
 * {@code struct virtio_net_hdr}: flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16,
 * csum_offset u16 (10 bytes), followed by num_buffers u16 (12 bytes) when VIRTIO_F_VERSION_1 or
 * VIRTIO_NET_F_MRG_RXBUF is negotiated, followed by hash_value u32, hash_report u16 and padding_reserved u16
 * (20 bytes) when VIRTIO_NET_F_HASH_REPORT is negotiated.
 */
public final class VirtioNetHeader extends Flyweight {
    public static final int LEGACY_LENGTH = 10;
    public static final int LENGTH = 12;
    /** Header size with VIRTIO_NET_F_HASH_REPORT: hash_value, hash_report and padding_reserved follow. */
    public static final int HASH_REPORT_LENGTH = 20;

    public static final int F_NEEDS_CSUM = 1;
    public static final int F_DATA_VALID = 2;
    public static final int F_RSC_INFO = 4;

    public static final int GSO_NONE = 0;
    public static final int GSO_TCPV4 = 1;
    public static final int GSO_UDP = 3;
    public static final int GSO_TCPV6 = 4;
    public static final int GSO_UDP_L4 = 5;
    public static final int GSO_ECN = 0x80;

    @Override
    public int encodedLength() {
        return LENGTH;
    }

    /** Header size a driver with these negotiated features puts in front of every frame. */
    public static int lengthFor(final long features) {
        if (VirtioFeature.has(features, VirtioNetFeature.HASH_REPORT)) {
            return HASH_REPORT_LENGTH;
        }
        return VirtioFeature.has(features, VirtioFeature.VERSION_1)
            || VirtioFeature.has(features, VirtioNetFeature.MRG_RXBUF) ? LENGTH : LEGACY_LENGTH;
    }

    public int flags() {
        return u8(0);
    }

    public VirtioNetHeader flags(final int v) {
        u8(0, v);
        return this;
    }

    public int gsoType() {
        return u8(1);
    }

    public VirtioNetHeader gsoType(final int v) {
        u8(1, v);
        return this;
    }

    public int hdrLen() {
        return u16(2);
    }

    public VirtioNetHeader hdrLen(final int v) {
        u16(2, v);
        return this;
    }

    public int gsoSize() {
        return u16(4);
    }

    public VirtioNetHeader gsoSize(final int v) {
        u16(4, v);
        return this;
    }

    public int csumStart() {
        return u16(6);
    }

    public VirtioNetHeader csumStart(final int v) {
        u16(6, v);
        return this;
    }

    public int csumOffset() {
        return u16(8);
    }

    public VirtioNetHeader csumOffset(final int v) {
        u16(8, v);
        return this;
    }

    public int numBuffers() {
        return u16(10);
    }

    public VirtioNetHeader numBuffers(final int v) {
        u16(10, v);
        return this;
    }
}
