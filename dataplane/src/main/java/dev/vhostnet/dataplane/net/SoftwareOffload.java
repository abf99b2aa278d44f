package dev.vhostnet.dataplane.net;

import dev.vhostnet.spec.VirtioNetHeader;
import org.agrona.concurrent.UnsafeBuffer;

import java.nio.ByteOrder;

/**
 * What a switch does for a receiver that did not negotiate an offload the sender used: complete a partial
 * checksum, or cut a GSO frame (TCP over IPv4/IPv6, UDP_L4) into MSS-sized frames with their own headers
 * and full checksums. Works on a linear copy of the frame; never allocates.
 */
public final class SoftwareOffload {
    /** Receives each frame produced. */
    public interface FrameSink {
        /** Deliver buffer[0, length) as a plain frame; false if the receiver could not take it. */
        boolean frame(UnsafeBuffer buffer, int length);
    }

    private static final ByteOrder BE = ByteOrder.BIG_ENDIAN;
    private static final int ETH_HLEN = 14;
    private static final int ETH_P_IP = 0x0800;
    private static final int ETH_P_IPV6 = 0x86DD;
    private static final int ETH_P_8021Q = 0x8100;
    private static final int IPPROTO_TCP = 6;
    private static final int IPPROTO_UDP = 17;
    private static final int TCP_FIN = 0x01;
    private static final int TCP_PSH = 0x08;
    private static final int TCP_CWR = 0x80;

    private final UnsafeBuffer segment;

    public SoftwareOffload(final int maxFrame) {
        segment = new UnsafeBuffer(org.agrona.BufferUtil.allocateDirectAligned(maxFrame + 256, 64));
    }

    /**
     * Complete a partial checksum in place: sum from csumStart to the end (the field holds the pseudo-header
     * sum already) and store the result at csumStart + csumOffset.
     *
     * @return false if the offsets do not fit the frame
     */
    public static boolean completeChecksum(final UnsafeBuffer frame, final int length, final int csumStart,
                                           final int csumOffset) {
        if (csumStart >= length || csumOffset > length - csumStart - 2) {
            return false;
        }
        final int field = csumStart + csumOffset;
        final long sum = Checksum.add(frame, csumStart, length - csumStart, 0);
        int value = Checksum.finish(sum);
        if (value == 0 && csumOffset == 6) {
            value = 0xFFFF; // UDP: a computed zero is sent as all ones
        }
        frame.putShort(field, (short) value, BE);
        return true;
    }

    /**
     * Cut a GSO frame into frames of at most {@code gsoSize} payload bytes and hand each to {@code sink}.
     *
     * @return the number of frames delivered, or -1 if the frame is not a GSO frame we can parse
     */
    public int segment(final UnsafeBuffer frame, final int length, final int gsoType, final int gsoSize,
                       final FrameSink sink) {
        if (gsoSize <= 0 || length <= ETH_HLEN) {
            return -1;
        }
        int l3 = ETH_HLEN;
        int etherType = frame.getShort(12, BE) & 0xFFFF;
        if (etherType == ETH_P_8021Q) {
            if (length < ETH_HLEN + 4) {
                return -1;
            }
            etherType = frame.getShort(16, BE) & 0xFFFF;
            l3 += 4;
        }
        final boolean v4;
        final int l4;
        final int proto;
        if (etherType == ETH_P_IP) {
            if (length < l3 + 20) {
                return -1;
            }
            final int ihl = (frame.getByte(l3) & 0x0F) * 4;
            if (ihl < 20 || length < l3 + ihl) {
                return -1;
            }
            v4 = true;
            proto = frame.getByte(l3 + 9) & 0xFF;
            l4 = l3 + ihl;
        } else if (etherType == ETH_P_IPV6) {
            if (length < l3 + 40) {
                return -1;
            }
            v4 = false;
            proto = frame.getByte(l3 + 6) & 0xFF; // extension headers are not segmented
            l4 = l3 + 40;
        } else {
            return -1;
        }
        final int base = gsoType & ~VirtioNetHeader.GSO_ECN;
        final boolean tcp = base == VirtioNetHeader.GSO_TCPV4 || base == VirtioNetHeader.GSO_TCPV6;
        if (tcp && proto != IPPROTO_TCP || base == VirtioNetHeader.GSO_UDP_L4 && proto != IPPROTO_UDP
            || !tcp && base != VirtioNetHeader.GSO_UDP_L4) {
            return -1;
        }
        final int l4len;
        if (tcp) {
            if (length < l4 + 20) {
                return -1;
            }
            l4len = ((frame.getByte(l4 + 12) & 0xF0) >>> 4) * 4;
            if (l4len < 20 || length < l4 + l4len) {
                return -1;
            }
        } else {
            l4len = 8;
            if (length < l4 + 8) {
                return -1;
            }
        }
        final int headers = l4 + l4len;
        final int payload = length - headers;
        final long seq = tcp ? frame.getInt(l4 + 4, BE) & 0xFFFF_FFFFL : 0;
        final int tcpFlags = tcp ? frame.getByte(l4 + 13) & 0xFF : 0;
        final int ipId = v4 ? frame.getShort(l3 + 4, BE) & 0xFFFF : 0;
        int delivered = 0;
        int n = 0;
        for (int off = 0; off < payload || (payload == 0 && n == 0); off += gsoSize, n++) {
            final int chunk = Math.min(gsoSize, payload - off);
            final boolean last = off + chunk >= payload;
            segment.putBytes(0, frame, 0, headers);
            segment.putBytes(headers, frame, headers + off, chunk);
            final int segLen = headers + chunk;
            final int l4Total = l4len + chunk;
            if (v4) {
                segment.putShort(l3 + 2, (short) (l4 - l3 + l4Total), BE);
                segment.putShort(l3 + 4, (short) (ipId + n), BE);
                segment.putShort(l3 + 10, (short) 0);
                segment.putShort(l3 + 10, (short) Checksum.finish(Checksum.add(segment, l3, l4 - l3, 0)), BE);
            } else {
                segment.putShort(l3 + 4, (short) l4Total, BE);
            }
            final long pseudo = pseudoHeaderSum(segment, l3, v4, tcp ? IPPROTO_TCP : IPPROTO_UDP, l4Total);
            if (tcp) {
                segment.putInt(l4 + 4, (int) (seq + off), BE);
                int f = tcpFlags;
                if (!last) {
                    f &= ~(TCP_FIN | TCP_PSH);
                }
                if (n > 0) {
                    f &= ~TCP_CWR;
                }
                segment.putByte(l4 + 13, (byte) f);
                segment.putShort(l4 + 16, (short) 0);
                segment.putShort(l4 + 16, (short) Checksum.finish(Checksum.add(segment, l4, l4Total, pseudo)), BE);
            } else {
                segment.putShort(l4 + 4, (short) l4Total, BE);
                segment.putShort(l4 + 6, (short) 0);
                int c = Checksum.finish(Checksum.add(segment, l4, l4Total, pseudo));
                segment.putShort(l4 + 6, (short) (c == 0 ? 0xFFFF : c), BE);
            }
            if (sink.frame(segment, segLen)) {
                delivered++;
            }
            if (payload == 0) {
                break;
            }
        }
        return delivered;
    }

    private static long pseudoHeaderSum(final UnsafeBuffer b, final int l3, final boolean v4, final int proto,
                                        final int l4Length) {
        long sum;
        if (v4) {
            sum = Checksum.add(b, l3 + 12, 8, 0);
        } else {
            sum = Checksum.add(b, l3 + 8, 32, 0);
        }
        return sum + proto + l4Length;
    }
}
