package dev.vhostnet.dataplane.net;

import dev.vhostnet.dataplane.virtq.DescriptorChain;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.SplitVirtqueue;
import dev.vhostnet.spec.VirtioNetHeader;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import sun.misc.Unsafe;

/**
 * Moves frames from one port's transmit queue into another port's receive queue with a single copy, guest
 * memory to guest memory. A frame the destination cannot take now (absent, not running, no buffers, too
 * small buffers) is dropped and counted, never waited for: one slow guest must not stall the other.
 *
 * <p>Used entries and interrupts are batched: one release store of used->idx and at most one interrupt per
 * queue per burst.
 */
public final class PacketForwarder {
    /** Frames taken from a transmit queue per burst. */
    public static final int BURST = 64;
    /** Largest frame accepted from a guest: 64 KiB (a GSO frame) plus link headers. */
    public static final int MAX_FRAME = 65536 + 256;

    private static final Unsafe UNSAFE = org.agrona.UnsafeAccess.UNSAFE;

    private final DescriptorChain txChain = new DescriptorChain(256 + 8);
    private final DescriptorChain rxChain = new DescriptorChain(256 + 8);

    // The frame as a list of source segments: [header scratch][tx payload segments...].
    private long[] srcAddr = new long[256 + 8];
    private int[] srcLen = new int[256 + 8];
    private final UnsafeBuffer header = new UnsafeBuffer(BufferUtil.allocateDirectAligned(64, 64));
    private final long headerAddr = header.addressOffset();
    private final UnsafeBuffer injectBuffer = new UnsafeBuffer(BufferUtil.allocateDirectAligned(2048, 64));

    /**
     * Forward up to one burst from {@code from}'s TX queue to {@code to}'s RX queue.
     *
     * @return the number of frames taken from the TX queue (0: idle)
     */
    public int forward(final VirtioNetPort from, final VirtioNetPort to) {
        final SplitVirtqueue tx = from.tx();
        final int n = Math.min(tx.available(), BURST);
        if (n == 0) {
            return 0;
        }
        final SplitVirtqueue rx = to == null ? null : to.rx();
        final QueueCounters txCounters = tx.counters();
        long txBytes = 0;
        int drops = 0;
        int delivered = 0;
        long rxBytes = 0;
        int done = 0;
        for (; done < n; done++) {
            if (!tx.pop(txChain)) {
                break; // queue broken; the control plane reports it
            }
            final long frameLen = txChain.readBytes() - from.headerLength();
            if (frameLen <= 0 || frameLen > MAX_FRAME || txChain.writeCount() > 0) {
                txCounters.add(QueueCounters.ERRORS, 1);
                drops++;
            } else if (rx != null && to.canReceive() && deliver(from, to, rx, (int) frameLen)) {
                delivered++;
                rxBytes += frameLen;
                txBytes += frameLen;
            } else {
                drops++;
            }
            tx.addUsed(txChain.head(), 0);
        }
        tx.publishUsed();
        txCounters.add(QueueCounters.PACKETS, done - drops);
        txCounters.add(QueueCounters.BYTES, txBytes);
        if (drops > 0) {
            txCounters.add(QueueCounters.DROPS, drops);
        }
        if (delivered > 0) {
            rx.publishUsed();
            rx.counters().add(QueueCounters.PACKETS, delivered);
            rx.counters().add(QueueCounters.BYTES, rxBytes);
        }
        return Math.max(done, 1);
    }

    /** Copy the frame in {@link #txChain} into one (or, mergeable, several) RX chains of {@code to}. */
    private boolean deliver(final VirtioNetPort from, final VirtioNetPort to, final SplitVirtqueue rx, final int frameLen) {
        buildSource(from.headerLength(), to.headerLength());
        return copyToRx(to, rx, (long) to.headerLength() + frameLen);
    }

    /**
     * Deliver a frame the back-end makes itself (e.g. a RARP announcement) into {@code to}'s RX queue.
     * Control path only (runs as a dataplane command); returns whether it was delivered.
     */
    public boolean inject(final byte[] frame, final VirtioNetPort to) {
        if (to == null || !to.canReceive() || frame.length > injectBuffer.capacity()) {
            return false;
        }
        injectBuffer.putBytes(0, frame);
        resetHeader();
        srcAddr[0] = headerAddr;
        srcLen[0] = to.headerLength();
        srcAddr[1] = injectBuffer.addressOffset();
        srcLen[1] = frame.length;
        final SplitVirtqueue rx = to.rx();
        final boolean ok = copyToRx(to, rx, (long) to.headerLength() + frame.length);
        if (ok) {
            rx.publishUsed();
            rx.counters().add(QueueCounters.PACKETS, 1);
            rx.counters().add(QueueCounters.BYTES, frame.length);
        }
        return ok;
    }

    /** Scatter the source segments ({@link #srcAddr}/{@link #srcLen}, {@code total} bytes) into RX chains. */
    private boolean copyToRx(final VirtioNetPort to, final SplitVirtqueue rx, final long total) {
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
            int di = 0;
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
            for (; di < rxChain.writeCount() && copied < total; di++) {
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
                dOff = 0;
            }
            if (written == 0) {
                rx.rewind(mark); // a chain with no writable bytes cannot carry anything
                return false;
            }
            rx.addUsed(rxChain.head(), (int) written);
        }
        if (numBuffersLo != 0) {
            UNSAFE.putByte(numBuffersLo, (byte) chains);
            UNSAFE.putByte(numBuffersHi, (byte) (chains >>> 8));
        }
        return true;
    }

    /**
     * Describe the frame to copy: our header for the receiver, then the sender's payload segments with the
     * sender's header skipped.
     */
    private void buildSource(final int srcHeader, final int dstHeader) {
        final int segments = txChain.readCount() + 1;
        if (segments > srcAddr.length) {
            srcAddr = new long[segments * 2];
            srcLen = new int[segments * 2];
        }
        resetHeader();
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

    /** No offloads are negotiated in this version: the receiver's header says "plain frame, one buffer". */
    private void resetHeader() {
        header.setMemory(0, VirtioNetHeader.LENGTH, (byte) 0);
        header.putShort(10, (short) 1);
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
