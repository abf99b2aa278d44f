package dev.vhostnet.spec;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static dev.vhostnet.spec.Wire.AT;
import static dev.vhostnet.spec.Wire.assertLayout;
import static dev.vhostnet.spec.Wire.bytes;
import static dev.vhostnet.spec.Wire.guarded;
import static dev.vhostnet.spec.Wire.holding;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * struct virtio_net_hdr: flags u8, gso_type u8, hdr_len le16, gso_size le16, csum_start le16, csum_offset le16
 * (10 bytes), num_buffers le16 (12 bytes; always with VERSION_1, only with MRG_RXBUF for legacy), then
 * hash_value le32, hash_report le16, padding_reserved le16 with HASH_REPORT (20 bytes).
 */
class VirtioNetHeaderTest {

    // Feature bits written out from the virtio spec, independent of the constants under test.
    private static final long VERSION_1 = 1L << 32;
    private static final long MRG_RXBUF = 1L << 15;
    private static final long HASH_REPORT = 1L << 57;
    private static final long CSUM = 1L << 0;
    private static final long GUEST_TSO4 = 1L << 7;
    private static final long EVENT_IDX = 1L << 29;

    @Test
    void lengthsMatchTheSpec() {
        assertEquals(10, VirtioNetHeader.LEGACY_LENGTH);
        assertEquals(12, VirtioNetHeader.LENGTH);
        assertEquals(20, VirtioNetHeader.HASH_REPORT_LENGTH);
        assertEquals(12, new VirtioNetHeader().wrap(guarded(12), AT).encodedLength());
    }

    @Test
    void flagAndGsoValuesMatchTheSpec() {
        assertEquals(1, VirtioNetHeader.F_NEEDS_CSUM);
        assertEquals(2, VirtioNetHeader.F_DATA_VALID);
        assertEquals(4, VirtioNetHeader.F_RSC_INFO);
        assertEquals(0, VirtioNetHeader.GSO_NONE);
        assertEquals(1, VirtioNetHeader.GSO_TCPV4);
        assertEquals(3, VirtioNetHeader.GSO_UDP);
        assertEquals(4, VirtioNetHeader.GSO_TCPV6);
        assertEquals(5, VirtioNetHeader.GSO_UDP_L4);
        assertEquals(0x80, VirtioNetHeader.GSO_ECN);
    }

    @Test
    void encodesTso4WithPartialChecksum() {
        final UnsafeBuffer buffer = guarded(12);
        final VirtioNetHeader msg = new VirtioNetHeader().wrap(buffer, AT);
        msg
            .flags(1)
            .gsoType(0x81)
            .hdrLen(54)
            .gsoSize(1448)
            .csumStart(34)
            .csumOffset(16)
            .numBuffers(1);

        assertLayout(bytes(
            0x01, 0x81,
            0x36, 0x00,
            0xA8, 0x05,
            0x22, 0x00,
            0x10, 0x00,
            0x01, 0x00), buffer);
    }

    @Test
    void decodesEveryFieldUnsigned() {
        final VirtioNetHeader hdr = new VirtioNetHeader().wrap(holding(bytes(
            0x82, 0x80,
            0xFF, 0xFF,
            0x00, 0x80,
            0x01, 0x80,
            0xFE, 0xFF,
            0x03, 0x80)), AT);

        assertEquals(0x82, hdr.flags());
        assertEquals(0x80, hdr.gsoType());
        assertEquals(65535, hdr.hdrLen());
        assertEquals(32768, hdr.gsoSize());
        assertEquals(0x8001, hdr.csumStart());
        assertEquals(65534, hdr.csumOffset());
        assertEquals(0x8003, hdr.numBuffers());
    }

    @Test
    void legacyHeaderWithoutMergeableBuffersIsTenBytes() {
        assertEquals(10, VirtioNetHeader.lengthFor(0));
        assertEquals(10, VirtioNetHeader.lengthFor(CSUM | GUEST_TSO4 | EVENT_IDX));
    }

    @ParameterizedTest(name = "features {0} -> {1} bytes")
    @CsvSource({
        // legacy + MRG_RXBUF
        "0x0000000000008000, 12",
        // VERSION_1 alone: num_buffers is always there
        "0x0000000100000000, 12",
        // VERSION_1 + MRG_RXBUF
        "0x0000000100008000, 12",
        // VERSION_1 + MRG_RXBUF + offloads
        "0x0000000100008181, 12",
        // VERSION_1 + HASH_REPORT
        "0x0200000100000000, 20",
        // VERSION_1 + MRG_RXBUF + HASH_REPORT
        "0x0200000100008000, 20",
    })
    void headerLengthFollowsNegotiatedFeatures(final String features, final int expected) {
        assertEquals(expected, VirtioNetHeader.lengthFor(Long.decode(features)));
    }

    @Test
    void hashReportBitIsFiftySeven() {
        assertEquals(HASH_REPORT, 0x0200_0000_0000_0000L);
        assertEquals(20, VirtioNetHeader.lengthFor(VERSION_1 | HASH_REPORT));
        assertEquals(12, VirtioNetHeader.lengthFor(VERSION_1 | MRG_RXBUF));
    }
}
