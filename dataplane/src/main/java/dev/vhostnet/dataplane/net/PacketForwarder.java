package dev.vhostnet.dataplane.net;

import dev.vhostnet.dataplane.memory.DirtyLog;
import dev.vhostnet.dataplane.virtq.DescriptorChain;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.Virtqueue;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import dev.vhostnet.spec.VirtioNetHeader;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import sun.misc.Unsafe;

/**
 * Moves frames from one port's transmit queues into another port's receive queues with a single copy,
 * guest memory to guest memory. Pair i forwards to pair i when both sides run the same number of pairs,
 * otherwise a flow hash spreads frames over the receiver's pairs. A frame the destination cannot take now
 * (absent, not running, no buffers, too small buffers) is dropped and counted, never waited for: one slow
 * guest must not stall the other.
 *
 * <p>The virtio-net header is passed through when the receiver negotiated the offload the sender used
 * (partial checksum, TSO, USO), so two guests exchange 64 KiB segments without either one segmenting. When
 * it did not, the frame is linearized and the checksum completed or the frame segmented in software.
 *
 * <p>Used entries and interrupts are batched: at most one publish and one interrupt per queue per burst.
 */
public final class PacketForwarder implements SoftwareOffload.FrameSink {
    /** Frames taken from a transmit queue per burst. */
    public static final int BURST = 64;
    /** Largest frame accepted from a guest: 64 KiB (a GSO frame) plus link headers. */
    public static final int MAX_FRAME = 65536 + 256;
    private static final int MAX_PAIRS = 128;
    /** deliver(): the receiver's translation is pending; retry the frame later. */
    private static final int RETRY = -2;

    private static final Unsafe UNSAFE = org.agrona.UnsafeAccess.UNSAFE;

    private final DescriptorChain txChain = new DescriptorChain(256 + 8);
    private final DescriptorChain rxChain = new DescriptorChain(256 + 8);

    // The frame as a list of source segments: [receiver's header][payload segments...].
    private long[] srcAddr = new long[256 + 8];
    private int[] srcLen = new int[256 + 8];
    private final UnsafeBuffer header = new UnsafeBuffer(BufferUtil.allocateDirectAligned(64, 64));
    private final long headerAddr = header.addressOffset();
    private final UnsafeBuffer senderHeader = new UnsafeBuffer(BufferUtil.allocateDirectAligned(64, 64));
    private final UnsafeBuffer linear = new UnsafeBuffer(BufferUtil.allocateDirectAligned(MAX_FRAME + 256, 64));
    private final SoftwareOffload software = new SoftwareOffload(MAX_FRAME);

    private final int[] rxFrames = new int[MAX_PAIRS];
    private final long[] rxBytes = new long[MAX_PAIRS];

    // Destination of the frame being delivered (for the software-offload sink).
    private VirtioNetPort sinkPort;
    private Virtqueue sinkRx;
    /** Frame bytes the sink delivered during one software segmentation. */
    private long sinkBytes;

    /**
     * Forward up to one burst from each of {@code from}'s running TX queues to {@code to}.
     *
     * @return the number of frames taken from TX queues (0: idle)
     */
    public int forward(final VirtioNetPort from, final VirtioNetPort to) {
        return forward(from, to, 0, 1);
    }

    /**
     * Forward the pairs this caller owns: pair p with p % stride == offset (one dataplane thread of
     * {@code stride}). Destination pairs are chosen among the same owned pairs, so no queue is shared
     * between threads.
     */
    public int forward(final VirtioNetPort from, final VirtioNetPort to, final int offset, final int stride) {
        int work = 0;
        final int pairs = from.maxPairs();
        for (int p = offset; p < pairs; p += stride) {
            if (from.tx(p).isRunning()) {
                work += forwardPair(from, p, to, offset, stride);
            }
        }
        return work;
    }

    private int forwardPair(final VirtioNetPort from, final int pair, final VirtioNetPort to, final int offset,
                            final int stride) {
        final Virtqueue tx = from.tx(pair);
        if (tx.available() == 0) {
            return 0;
        }
        final int toPairs = to == null ? 0 : to.receivingPairs();
        final boolean samePairs = toPairs == from.transmittingPairs();
        // Receiving pairs of `to` this thread owns: offset, offset + stride, ...
        final int ownedTargets = toPairs > offset ? (toPairs - offset + stride - 1) / stride : 0;
        final int srcHeader = from.headerLength();
        final QueueCounters txCounters = tx.counters();
        long txBytes = 0;
        int drops = 0;
        int errors = 0;
        int done = 0;
        Throwable fault = null;
        // Best effort for memory that can still shrink (--unsealed-memory allow; sealed memory cannot fault): a
        // fault in guest memory can surface asynchronously anywhere (HotSpot raises the SIGBUS errors it survives
        // at its next check), also between pop() and the bookkeeping after it, so no flag here can tell whether the chain in
        // hand was popped or completed. If anything escapes this burst, nothing of it is published: the worker's
        // contain() rewinds the queue to its last published position (Virtqueue#recoverAfterFault) and the
        // burst's chains are taken again. The sender never loses a buffer because of someone else's memory.
        boolean burstDone = false;
        try {
            while (done < BURST && tx.available() > 0) {
                final long txMark = tx.mark();
                if (!tx.pop(txChain)) {
                    break; // queue broken (the control plane reports it) or waiting for an IOTLB translation
                }
                done++;
                final long frameLen = txChain.readBytes() - srcHeader;
                if (frameLen <= 0 || frameLen > MAX_FRAME || txChain.writeCount() > 0) {
                    errors++;
                    drops++;
                } else if (ownedTargets == 0) {
                    drops++;
                } else {
                    final int dstPair = samePairs && pair < toPairs ? pair
                        : offset + stride * Integer.remainderUnsigned(flowHash(srcHeader), ownedTargets);
                    int delivered;
                    try {
                        delivered = deliver(from, to, dstPair, (int) frameLen);
                    } catch (final Throwable t) {
                        // E.g. the receiver's allowed unsealed memory was truncated (SIGBUS): complete the sender's chain
                        // anyway, so the surviving guest does not lose a buffer, then let the dataplane contain it.
                        delivered = -1;
                        fault = t;
                    }
                    if (delivered == RETRY) {
                        // The receiver's buffers are waiting for IOTLB translations: leave this frame in the sender's
                        // ring (backpressure) instead of dropping it, and retry once the front-end has answered.
                        tx.rewind(txMark);
                        done--;
                        break;
                    }
                    if (delivered > 0) {
                        txBytes += frameLen;
                    } else {
                        drops++;
                        if (delivered < 0) {
                            errors++;
                        }
                    }
                }
                tx.addUsed(txChain, 0);
                if (fault != null) {
                    break;
                }
            }
            burstDone = true;
        } finally {
            if (burstDone) {
                tx.publishUsed();
            }
        }
        txCounters.add(QueueCounters.PACKETS, done - drops);
        txCounters.add(QueueCounters.BYTES, txBytes);
        if (drops > 0) {
            txCounters.add(QueueCounters.DROPS, drops);
        }
        if (errors > 0) {
            txCounters.add(QueueCounters.ERRORS, errors);
        }
        for (int p = offset; p < toPairs; p += stride) {
            if (rxFrames[p] > 0) {
                final Virtqueue rx = to.rx(p);
                rx.publishUsed();
                rx.counters().add(QueueCounters.PACKETS, rxFrames[p]);
                rx.counters().add(QueueCounters.BYTES, rxBytes[p]);
                rxFrames[p] = 0;
                rxBytes[p] = 0;
            }
        }
        if (fault != null) {
            throwUnchecked(fault);
        }
        return done;
    }

    private static void throwUnchecked(final Throwable t) {
        if (t instanceof RuntimeException) {
            throw (RuntimeException) t;
        }
        if (t instanceof Error) {
            throw (Error) t;
        }
        throw new IllegalStateException(t);
    }

    /**
     * Deliver the frame in {@link #txChain} to {@code to}'s pair {@code dstPair}.
     *
     * @return frames delivered (segmentation may make several), 0 if dropped, -1 if the frame was invalid
     */
    private int deliver(final VirtioNetPort from, final VirtioNetPort to, final int dstPair, final int frameLen) {
        final Virtqueue rx = to.rx(dstPair);
        final int srcHeader = from.headerLength();
        final int flags;
        final int gsoType;
        if (txChain.readLen(0) >= VirtioNetHeader.LEGACY_LENGTH) {
            // Common case: the header is in the first buffer; peek at it in place.
            final long h = txChain.readAddr(0);
            flags = UNSAFE.getByte(h) & VirtioNetHeader.F_NEEDS_CSUM;
            gsoType = UNSAFE.getByte(h + 1) & 0xFF;
            if (flags != 0 || gsoType != VirtioNetHeader.GSO_NONE) {
                UNSAFE.copyMemory(h, senderHeader.addressOffset(), VirtioNetHeader.LEGACY_LENGTH);
            }
        } else {
            gather(txChain, 0, senderHeader.addressOffset(), Math.min(srcHeader, VirtioNetHeader.LEGACY_LENGTH));
            flags = senderHeader.getByte(0) & VirtioNetHeader.F_NEEDS_CSUM;
            gsoType = senderHeader.getByte(1) & 0xFF;
        }
        if (flags == 0 && gsoType == VirtioNetHeader.GSO_NONE) {
            plainHeader();
            buildSource(srcHeader, to.headerLength());
            final boolean copied = copyToRx(to, rx, (long) to.headerLength() + frameLen);
            return !copied && rx.awaitingTranslation() ? RETRY : count(dstPair, frameLen, copied);
        }
        final long senderFeatures = from.features();
        final int gsoSize = senderHeader.getShort(4) & 0xFFFF;
        final int csumStart = senderHeader.getShort(6) & 0xFFFF;
        final int csumOffset = senderHeader.getShort(8) & 0xFFFF;
        if (flags != 0 && (!VirtioFeature.has(senderFeatures, VirtioNetFeature.CSUM)
            || csumStart >= frameLen || csumOffset > frameLen - csumStart - 2)) {
            return -1; // partial checksum the sender may not use, or offsets outside the frame
        }
        if (gsoType != VirtioNetHeader.GSO_NONE && (gsoSize == 0 || !senderMayUse(senderFeatures, gsoType))) {
            return -1;
        }
        final OffloadSupport accepts = to.receiverOffloads();
        final boolean passThrough = gsoType == VirtioNetHeader.GSO_NONE
            ? accepts.partialChecksum()
            : receiverAccepts(accepts, gsoType);
        if (passThrough) {
            header.putLong(0, 0);
            header.putInt(8, 0);
            header.putByte(0, (byte) flags);
            header.putByte(1, (byte) gsoType);
            header.putShort(2, senderHeader.getShort(2));
            header.putShort(4, (short) gsoSize);
            header.putShort(6, (short) csumStart);
            header.putShort(8, (short) csumOffset);
            header.putShort(10, (short) 1);
            buildSource(srcHeader, to.headerLength());
            final boolean copied = copyToRx(to, rx, (long) to.headerLength() + frameLen);
            return !copied && rx.awaitingTranslation() ? RETRY : count(dstPair, frameLen, copied);
        }
        // The receiver cannot take it as is: linearize, then finish the work the sender's offload skipped.
        gather(txChain, srcHeader, linear.addressOffset(), frameLen);
        sinkPort = to;
        sinkRx = rx;
        if (gsoType != VirtioNetHeader.GSO_NONE) {
            sinkBytes = 0;
            final int frames = software.segment(linear, frameLen, gsoType, gsoSize, this);
            if (frames < 0) {
                return -1;
            }
            rxFrames[dstPair] += frames;
            rxBytes[dstPair] += sinkBytes; // what the segments (each with its own headers) occupy, not the GSO frame
            return frames;
        }
        if (!SoftwareOffload.completeChecksum(linear, frameLen, csumStart, csumOffset)) {
            return -1;
        }
        return count(dstPair, frameLen, frame(linear, frameLen));
    }

    private int count(final int pair, final int frameLen, final boolean delivered) {
        if (!delivered) {
            return 0;
        }
        rxFrames[pair]++;
        rxBytes[pair] += frameLen;
        return 1;
    }

    /** Sink for software-offload output: deliver buffer[0, length) as a plain frame. */
    @Override
    public boolean frame(final UnsafeBuffer buffer, final int length) {
        plainHeader();
        srcAddr[0] = headerAddr;
        srcLen[0] = sinkPort.headerLength();
        srcAddr[1] = buffer.addressOffset();
        srcLen[1] = length;
        final boolean delivered = copyToRx(sinkPort, sinkRx, (long) sinkPort.headerLength() + length);
        if (delivered) {
            sinkBytes += length;
        }
        return delivered;
    }

    private static boolean senderMayUse(final long features, final int gsoType) {
        switch (gsoType & ~VirtioNetHeader.GSO_ECN) {
            case VirtioNetHeader.GSO_TCPV4:
                return VirtioFeature.has(features, VirtioNetFeature.HOST_TSO4);
            case VirtioNetHeader.GSO_TCPV6:
                return VirtioFeature.has(features, VirtioNetFeature.HOST_TSO6);
            case VirtioNetHeader.GSO_UDP_L4:
                return VirtioFeature.has(features, VirtioNetFeature.HOST_USO);
            default:
                return false; // UFO is not offered
        }
    }

    private static boolean receiverAccepts(final OffloadSupport accepts, final int gsoType) {
        if ((gsoType & VirtioNetHeader.GSO_ECN) != 0 && !accepts.ecn()) {
            return false;
        }
        switch (gsoType & ~VirtioNetHeader.GSO_ECN) {
            case VirtioNetHeader.GSO_TCPV4:
                return accepts.tso4();
            case VirtioNetHeader.GSO_TCPV6:
                return accepts.tso6();
            case VirtioNetHeader.GSO_UDP_L4:
                return accepts.uso4() && accepts.uso6();
            default:
                return false;
        }
    }

    /**
     * Deliver a frame the back-end makes itself (e.g. a RARP announcement) into {@code to}'s first RX queue.
     * Control path only (runs as a dataplane command); returns whether it was delivered.
     */
    public boolean inject(final byte[] frame, final VirtioNetPort to) {
        if (to == null || !to.canReceive() || frame.length > linear.capacity()) {
            return false;
        }
        linear.putBytes(0, frame);
        sinkPort = to;
        sinkRx = to.rx();
        final boolean ok = frame(linear, frame.length);
        if (ok) {
            sinkRx.publishUsed();
            sinkRx.counters().add(QueueCounters.PACKETS, 1);
            sinkRx.counters().add(QueueCounters.BYTES, frame.length);
        }
        return ok;
    }

    /** Scatter the source segments ({@link #srcAddr}/{@link #srcLen}, {@code total} bytes) into RX chains. */
    private boolean copyToRx(final VirtioNetPort to, final Virtqueue rx, final long total) {
        final int dstHeader = to.headerLength();
        final boolean mergeable = to.mergeable();
        final long mark = rx.mark();
        int chains = 0;
        int si = 0;
        int sOff = 0;
        long copied = 0;
        long numBuffersLo = 0;
        long numBuffersHi = 0;
        while (copied < total) {
            if (rx.available() == 0 || !rx.pop(rxChain)) {
                rx.rewind(mark);
                return false;
            }
            if (++chains > 1 && !mergeable) {
                rx.rewind(mark);
                return false;
            }
            int dOff = 0;
            long written = 0;
            if (chains == 1) {
                if (rxChain.writeCount() > 0 && rxChain.writeLen(0) >= dstHeader) {
                    // Common case: the header fits the first buffer; write it with plain stores, no copy call.
                    final long h = rxChain.writeAddr(0);
                    UNSAFE.putLong(h, header.getLong(0));
                    if (dstHeader == VirtioNetHeader.LENGTH) {
                        UNSAFE.putInt(h + 8, header.getInt(8));
                        numBuffersLo = h + 10;
                        numBuffersHi = h + 11;
                    } else {
                        UNSAFE.putShort(h + 8, header.getShort(8));
                    }
                    si = 1;
                    dOff = dstHeader;
                    copied = dstHeader;
                    written = dstHeader;
                } else if (dstHeader == VirtioNetHeader.LENGTH) {
                    numBuffersLo = addressInChain(rxChain, 10);
                    numBuffersHi = addressInChain(rxChain, 11);
                    if (numBuffersLo == 0 || numBuffersHi == 0) {
                        rx.rewind(mark); // the chain cannot even hold the header
                        return false;
                    }
                }
            }
            final DirtyLog log = rx.log();
            for (int di = 0; di < rxChain.writeCount() && copied < total; di++) {
                final long dAddr = rxChain.writeAddr(di);
                final int dLen = rxChain.writeLen(di);
                while (dOff < dLen && copied < total) {
                    final int n = Math.min(dLen - dOff, srcLen[si] - sOff);
                    UNSAFE.copyMemory(srcAddr[si] + sOff, dAddr + dOff, n);
                    dOff += n;
                    sOff += n;
                    copied += n;
                    written += n;
                    if (sOff == srcLen[si]) {
                        si++;
                        sOff = 0;
                    }
                }
                if (log != null) {
                    rx.memory().logWrite(log, dAddr, dOff); // live migration: this guest page changed
                }
                dOff = 0;
            }
            if (written == 0) {
                rx.rewind(mark); // a chain with no writable bytes cannot carry anything
                return false;
            }
            rx.addUsed(rxChain, (int) written);
        }
        if (numBuffersLo != 0) {
            UNSAFE.putByte(numBuffersLo, (byte) chains);
            UNSAFE.putByte(numBuffersHi, (byte) (chains >>> 8));
            if (rx.log() != null) {
                // Marked again after the patch, so a page copied between the two writes is copied again.
                rx.memory().logWrite(rx.log(), numBuffersLo, 1);
                rx.memory().logWrite(rx.log(), numBuffersHi, 1);
            }
        }
        return true;
    }

    /**
     * Describe the frame to copy: the receiver's header (already in {@link #header}), then the sender's
     * payload segments with the sender's header skipped.
     */
    private void buildSource(final int srcHeader, final int dstHeader) {
        final int segments = txChain.readCount() + 1;
        if (segments > srcAddr.length) {
            srcAddr = new long[segments * 2];
            srcLen = new int[segments * 2];
        }
        int count = 0;
        srcAddr[count] = headerAddr;
        srcLen[count++] = dstHeader;
        int skip = srcHeader;
        for (int i = 0; i < txChain.readCount(); i++) {
            final int len = txChain.readLen(i);
            if (skip >= len) {
                skip -= len;
                continue;
            }
            srcAddr[count] = txChain.readAddr(i) + skip;
            srcLen[count++] = len - skip;
            skip = 0;
        }
    }

    /** A header saying "plain frame, one buffer". */
    private void plainHeader() {
        header.putLong(0, 0);
        header.putInt(8, 0);
        header.putShort(10, (short) 1);
    }

    /** Copy {@code len} bytes of the chain's readable stream, from {@code skip}, to {@code dst}. */
    private static void gather(final DescriptorChain chain, final long skip, final long dst, final int len) {
        long toSkip = skip;
        int done = 0;
        for (int i = 0; i < chain.readCount() && done < len; i++) {
            final int segLen = chain.readLen(i);
            if (toSkip >= segLen) {
                toSkip -= segLen;
                continue;
            }
            final int n = (int) Math.min(segLen - toSkip, len - done);
            UNSAFE.copyMemory(chain.readAddr(i) + toSkip, dst + done, n);
            done += n;
            toSkip = 0;
        }
    }

    /**
     * A hash of the frame's IPv4/IPv6 addresses and TCP/UDP ports (0 for anything else), read from the
     * first segment after the virtio-net header; frames of one flow always land on the same queue.
     */
    private int flowHash(final int srcHeader) {
        int i = 0;
        int skip = srcHeader;
        while (i < txChain.readCount() && skip >= txChain.readLen(i)) {
            skip -= txChain.readLen(i);
            i++;
        }
        if (i == txChain.readCount()) {
            return 0;
        }
        final long p = txChain.readAddr(i) + skip;
        final int avail = txChain.readLen(i) - skip;
        if (avail < 14 + 40 + 4) {
            return 0;
        }
        final int etherType = ((UNSAFE.getByte(p + 12) & 0xFF) << 8) | (UNSAFE.getByte(p + 13) & 0xFF);
        int h;
        int l4;
        int proto;
        if (etherType == 0x0800) {
            h = UNSAFE.getInt(p + 26) ^ UNSAFE.getInt(p + 30);
            proto = UNSAFE.getByte(p + 23) & 0xFF;
            l4 = 14 + (UNSAFE.getByte(p + 14) & 0x0F) * 4;
        } else if (etherType == 0x86DD) {
            h = 0;
            for (int k = 0; k < 32; k += 4) {
                h ^= UNSAFE.getInt(p + 22 + k);
            }
            proto = UNSAFE.getByte(p + 20) & 0xFF;
            l4 = 54;
        } else {
            return 0;
        }
        if ((proto == 6 || proto == 17) && l4 + 4 <= avail) {
            final int ports = UNSAFE.getInt(p + l4);
            h ^= (ports >>> 16) ^ (ports & 0xFFFF); // symmetric in source and destination port
        }
        h ^= h >>> 16;
        h *= 0x45d9f3b;
        h ^= h >>> 16;
        return h;
    }

    /** Host address of byte {@code offset} of the chain's writable area, or 0 if the chain is shorter. */
    private static long addressInChain(final DescriptorChain chain, final int offset) {
        int remaining = offset;
        for (int i = 0; i < chain.writeCount(); i++) {
            if (remaining < chain.writeLen(i)) {
                return chain.writeAddr(i) + remaining;
            }
            remaining -= chain.writeLen(i);
        }
        return 0;
    }
}
