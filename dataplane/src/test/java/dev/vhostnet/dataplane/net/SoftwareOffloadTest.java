package dev.vhostnet.dataplane.net;

import dev.vhostnet.spec.VirtioNetHeader;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Software checksum completion and segmentation against frames built byte by byte here. Expected header
 * values are written out as numbers, and checksums are verified the way a receiver does: summing the
 * header (plus pseudo-header) including the checksum field must give 0xFFFF.
 */
class SoftwareOffloadTest {
    private static final int PAYLOAD = 3000;
    private static final int MSS = 1448;

    /** Ethernet + IPv4 (20) + TCP (20, PSH|ACK|FIN) + payload, as a TSO sender leaves it. */
    private static byte[] tcp4Frame() {
        final ByteBuffer b = ByteBuffer.allocate(14 + 20 + 20 + PAYLOAD).order(ByteOrder.BIG_ENDIAN);
        b.put(new byte[] {0x52, 0x54, 0, 0, 0, 2}).put(new byte[] {0x52, 0x54, 0, 0, 0, 1}).putShort((short) 0x0800);
        b.put((byte) 0x45).put((byte) 0).putShort((short) (20 + 20 + PAYLOAD)).putShort((short) 0x1234)
            .putShort((short) 0x4000).put((byte) 64).put((byte) 6).putShort((short) 0)
            .put(new byte[] {10, 0, 0, 1}).put(new byte[] {10, 0, 0, 2});
        b.putShort((short) 40000).putShort((short) 5001).putInt(1000).putInt(77)
            .put((byte) 0x50).put((byte) 0x19).putShort((short) 65535).putShort((short) 0).putShort((short) 0);
        for (int i = 0; i < PAYLOAD; i++) {
            b.put((byte) (i * 7));
        }
        return b.array();
    }

    /** Ethernet + IPv6 (40) + TCP (20, PSH|ACK) + payload. */
    private static byte[] tcp6Frame() {
        final ByteBuffer b = ByteBuffer.allocate(14 + 40 + 20 + PAYLOAD).order(ByteOrder.BIG_ENDIAN);
        b.put(new byte[] {0x52, 0x54, 0, 0, 0, 2}).put(new byte[] {0x52, 0x54, 0, 0, 0, 1}).putShort((short) 0x86DD);
        b.putInt(0x60000000).putShort((short) (20 + PAYLOAD)).put((byte) 6).put((byte) 64);
        for (int i = 0; i < 16; i++) {
            b.put((byte) (i == 15 ? 1 : i == 0 ? 0xfd : 0));
        }
        for (int i = 0; i < 16; i++) {
            b.put((byte) (i == 15 ? 2 : i == 0 ? 0xfd : 0));
        }
        b.putShort((short) 40001).putShort((short) 5001).putInt(0xFFFFF000).putInt(5)
            .put((byte) 0x50).put((byte) 0x18).putShort((short) 1000).putShort((short) 0).putShort((short) 0);
        for (int i = 0; i < PAYLOAD; i++) {
            b.put((byte) (i * 13));
        }
        return b.array();
    }

    /** Ethernet + IPv4 + UDP + payload (a USO sender's frame). */
    private static byte[] udp4Frame() {
        final ByteBuffer b = ByteBuffer.allocate(14 + 20 + 8 + PAYLOAD).order(ByteOrder.BIG_ENDIAN);
        b.put(new byte[] {0x52, 0x54, 0, 0, 0, 2}).put(new byte[] {0x52, 0x54, 0, 0, 0, 1}).putShort((short) 0x0800);
        b.put((byte) 0x45).put((byte) 0).putShort((short) (20 + 8 + PAYLOAD)).putShort((short) 7)
            .putShort((short) 0).put((byte) 64).put((byte) 17).putShort((short) 0)
            .put(new byte[] {10, 0, 0, 1}).put(new byte[] {10, 0, 0, 2});
        b.putShort((short) 9999).putShort((short) 53).putShort((short) (8 + PAYLOAD)).putShort((short) 0);
        for (int i = 0; i < PAYLOAD; i++) {
            b.put((byte) (i * 3));
        }
        return b.array();
    }

    private static List<byte[]> segment(final byte[] frame, final int gsoType, final int mss) {
        final List<byte[]> out = new ArrayList<>();
        final UnsafeBuffer in = new UnsafeBuffer(ByteBuffer.allocateDirect(frame.length));
        in.putBytes(0, frame);
        final int n = new SoftwareOffload(65536 + 256).segment(in, frame.length, gsoType, mss, (buf, len) -> {
            final byte[] copy = new byte[len];
            buf.getBytes(0, copy);
            out.add(copy);
            return true;
        });
        assertEquals(out.size(), n);
        return out;
    }

    private static int u16(final byte[] f, final int at) {
        return ((f[at] & 0xFF) << 8) | (f[at + 1] & 0xFF);
    }

    private static long u32(final byte[] f, final int at) {
        return ((long) u16(f, at) << 16) | u16(f, at + 2);
    }

    private static long sum(final byte[] f, final int from, final int len) {
        final UnsafeBuffer b = new UnsafeBuffer(f);
        return Checksum.add(b, from, len, 0);
    }

    /** A receiver's check: folding the sum over the data including its checksum field gives 0xFFFF. */
    private static void assertChecksumValid(final long sum, final String what) {
        assertEquals(0, Checksum.finish(sum), what + " checksum");
    }

    @Test
    void tcpOverIpv4IsCutIntoMssSegmentsWithFixedHeaders() {
        final byte[] frame = tcp4Frame();
        final List<byte[]> segs = segment(frame, VirtioNetHeader.GSO_TCPV4, MSS);
        assertEquals(3, segs.size());
        final int[] sizes = {1448, 1448, 104};
        final long[] seqs = {1000, 2448, 3896};
        for (int n = 0; n < 3; n++) {
            final byte[] s = segs.get(n);
            assertEquals(54 + sizes[n], s.length);
            assertEquals(40 + sizes[n], u16(s, 16), "IPv4 total length");
            assertEquals(0x1234 + n, u16(s, 18), "IPv4 id");
            assertChecksumValid(sum(s, 14, 20), "IPv4 header");
            assertEquals(seqs[n], u32(s, 38), "TCP sequence");
            final int flags = s[47] & 0xFF;
            assertEquals(n == 2 ? 0x19 : 0x10, flags, "only the last segment keeps PSH and FIN");
            final long pseudo = sum(s, 26, 8) + 6 + 20 + sizes[n];
            assertChecksumValid(pseudo + sum(s, 34, 20 + sizes[n]), "TCP");
            final byte[] payload = new byte[sizes[n]];
            System.arraycopy(frame, 54 + n * MSS, payload, 0, sizes[n]);
            final byte[] got = new byte[sizes[n]];
            System.arraycopy(s, 54, got, 0, sizes[n]);
            assertArrayEquals(payload, got, "payload slice " + n);
        }
    }

    @Test
    void tcpOverIpv6IsCutAndSequenceNumbersWrap() {
        final List<byte[]> segs = segment(tcp6Frame(), VirtioNetHeader.GSO_TCPV6, 1000);
        assertEquals(3, segs.size());
        final long[] seqs = {0xFFFFF000L, 0xFFFFF3E8L, 0xFFFFF7D0L};
        for (int n = 0; n < 3; n++) {
            final byte[] s = segs.get(n);
            assertEquals(74 + 1000, s.length);
            assertEquals(20 + 1000, u16(s, 18), "IPv6 payload length");
            assertEquals(seqs[n], u32(s, 58), "TCP sequence");
            final long pseudo = sum(s, 22, 32) + 6 + 20 + 1000;
            assertChecksumValid(pseudo + sum(s, 54, 1020), "TCP over IPv6");
        }
    }

    @Test
    void udpL4IsCutIntoDatagramsWithTheirOwnLengthAndChecksum() {
        final List<byte[]> segs = segment(udp4Frame(), VirtioNetHeader.GSO_UDP_L4, 1200);
        assertEquals(3, segs.size());
        final int[] sizes = {1200, 1200, 600};
        for (int n = 0; n < 3; n++) {
            final byte[] s = segs.get(n);
            assertEquals(8 + sizes[n], u16(s, 38), "UDP length");
            assertEquals(28 + sizes[n], u16(s, 16), "IPv4 total length");
            assertChecksumValid(sum(s, 14, 20), "IPv4 header");
            final long pseudo = sum(s, 26, 8) + 17 + 8 + sizes[n];
            assertChecksumValid(pseudo + sum(s, 34, 8 + sizes[n]), "UDP");
        }
    }

    @Test
    void framesThatAreNotGsoFramesAreRefused() {
        final byte[] arp = new byte[60];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assertEquals(-1, new SoftwareOffload(4096).segment(new UnsafeBuffer(arp), 60, VirtioNetHeader.GSO_TCPV4, 1448, (b, l) -> true));
        final byte[] udp = udp4Frame();
        assertEquals(-1, new SoftwareOffload(65536).segment(new UnsafeBuffer(udp), udp.length, VirtioNetHeader.GSO_TCPV4, 1448, (b, l) -> true),
            "a TCP GSO type on a UDP frame");
        final byte[] tcp = tcp4Frame();
        assertEquals(-1, new SoftwareOffload(65536).segment(new UnsafeBuffer(tcp), tcp.length, VirtioNetHeader.GSO_TCPV4, 0, (b, l) -> true),
            "gso_size 0");
    }

    @Test
    void partialChecksumIsCompletedFromCsumStart() {
        // A CHECKSUM_PARTIAL UDP frame: the checksum field holds the folded pseudo-header sum.
        final byte[] frame = udp4Frame();
        final long pseudo = sum(frame, 26, 8) + 17 + 8 + PAYLOAD;
        final int folded = Checksum.fold(pseudo);
        frame[40] = (byte) (folded >>> 8);
        frame[41] = (byte) folded;
        final UnsafeBuffer b = new UnsafeBuffer(frame);
        assertTrue(SoftwareOffload.completeChecksum(b, frame.length, 34, 6));
        assertChecksumValid(pseudo + sum(frame, 34, 8 + PAYLOAD), "completed UDP");
    }

    @Test
    void checksumOffsetsOutsideTheFrameAreRefused() {
        final byte[] frame = new byte[100];
        final UnsafeBuffer b = new UnsafeBuffer(frame);
        assertFalse(SoftwareOffload.completeChecksum(b, 100, 100, 0));
        assertFalse(SoftwareOffload.completeChecksum(b, 100, 90, 9), "field would end past the frame");
        assertFalse(SoftwareOffload.completeChecksum(b, 100, 0, 65535));
        assertTrue(SoftwareOffload.completeChecksum(b, 100, 90, 8));
    }
}
