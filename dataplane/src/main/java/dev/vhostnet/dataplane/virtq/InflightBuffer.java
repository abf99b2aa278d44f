package dev.vhostnet.dataplane.virtq;

import dev.vhostnet.dataplane.memory.InvalidMemoryException;
import dev.vhostnet.dataplane.memory.ShrinkSeal;
import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.Mapping;
import dev.vhostnet.dataplane.sys.MemFd;

/**
 * The shared inflight-tracking buffer of VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD: one region per queue, back to
 * back, each sized for {@code queueSize} descriptors. The back-end creates it (GET_INFLIGHT_FD), the front-end
 * keeps it across back-end restarts and hands it back (SET_INFLIGHT_FD), so a new back-end process finds the
 * descriptors the old one had taken and not completed.
 *
 * <p>The region format depends on the ring format (split: 16-byte header and 16-byte entries; packed: 32 and
 * 32), which may not be negotiated yet when the front-end asks for the buffer: every region is sized for the
 * larger (packed) layout, rounded to a cache line, so either fits. The stride is a function of the queue size
 * only, so the back-end that receives the buffer again computes the same layout.
 *
 * <p>Owned by the control thread; queues hold {@link Region} views, so the buffer must be detached from every
 * queue (on the dataplane thread) before it is closed.
 */
public final class InflightBuffer implements AutoCloseable {
    public static final int MAX_QUEUE_SIZE = 32768;
    /** Largest buffer accepted or created: 1024 queues of 32768 entries would be 1 GiB; we stop well before. */
    public static final long MAX_SIZE = 256L << 20;

    private final Mapping mapping;
    private final long base;
    private final long size;
    private final int numQueues;
    private final int queueSize;

    private InflightBuffer(final Mapping mapping, final long base, final long size, final int numQueues,
                           final int queueSize) {
        this.mapping = mapping;
        this.base = base;
        this.size = size;
        this.numQueues = numQueues;
        this.queueSize = queueSize;
    }

    /** Bytes one queue's region takes (either layout fits), a multiple of 64. */
    public static long queueRegionSize(final int queueSize) {
        final long packed = PackedInflight.HEADER + (long) PackedInflight.ENTRY * queueSize;
        return Mapping.alignUp(packed, 64);
    }

    /** Bytes the whole buffer takes for {@code numQueues} queues of {@code queueSize}. */
    public static long bufferSize(final int numQueues, final int queueSize) {
        return numQueues * queueRegionSize(queueSize);
    }

    private static void checkGeometry(final int numQueues, final int queueSize) {
        if (numQueues < 1 || numQueues > 0xFFFF || queueSize < 1 || queueSize > MAX_QUEUE_SIZE) {
            throw new InvalidMemoryException("inflight buffer for " + numQueues + " queues of " + queueSize
                + " (1..65535 queues, 1.." + MAX_QUEUE_SIZE + " entries)");
        }
        if (bufferSize(numQueues, queueSize) > MAX_SIZE) {
            throw new InvalidMemoryException("inflight buffer for " + numQueues + " queues of " + queueSize
                + " would exceed " + MAX_SIZE + " bytes");
        }
    }

    /**
     * A fresh, zeroed buffer (GET_INFLIGHT_FD): a memfd of {@link #bufferSize} bytes, mapped. Returns the
     * buffer and, through {@code fdOut[0]}, the memfd, which the caller sends to the front-end and closes.
     */
    public static InflightBuffer create(final int numQueues, final int queueSize, final int[] fdOut) {
        checkGeometry(numQueues, queueSize);
        final long size = bufferSize(numQueues, queueSize);
        // Sealed: the front-end keeps this fd and must not be able to shrink it under our mapping.
        final int fd = MemFd.createSealed("vhost-user-inflight", size);
        try {
            final Mapping m = Mapping.map(fd, 0, size, true);
            fdOut[0] = fd;
            return new InflightBuffer(m, m.address(), size, numQueues, queueSize);
        } catch (final RuntimeException e) {
            FileDescriptors.closeQuietly(fd);
            throw e;
        }
    }

    /**
     * Map a buffer the front-end hands back (SET_INFLIGHT_FD), sealed against shrinking first (see
     * {@link ShrinkSeal}). Closes {@code fd} in every case: the mapping keeps the memory alive.
     */
    public static InflightBuffer map(final int fd, final long mmapSize, final long mmapOffset, final int numQueues,
                                     final int queueSize, final UnsealedMemory unsealed) {
        try {
            ShrinkSeal.apply(fd, unsealed, "inflight buffer");
            checkGeometry(numQueues, queueSize);
            if (mmapOffset < 0 || mmapSize <= 0 || mmapSize > MAX_SIZE || Long.MAX_VALUE - mmapOffset < mmapSize) {
                throw new InvalidMemoryException("inflight buffer size " + mmapSize + " / offset " + mmapOffset + " invalid");
            }
            final long needed = bufferSize(numQueues, queueSize);
            if (mmapSize < needed) {
                throw new InvalidMemoryException("inflight buffer of " + mmapSize + " bytes is smaller than the "
                    + needed + " that " + numQueues + " queues of " + queueSize + " need");
            }
            if (mmapOffset + mmapSize > FileDescriptors.size(fd)) {
                throw new InvalidMemoryException("inflight buffer extends beyond its fd");
            }
            final long start = Mapping.alignDown(mmapOffset, Mapping.PAGE_SIZE);
            final long end = Mapping.alignUp(mmapOffset + mmapSize, Mapping.PAGE_SIZE);
            final Mapping m = Mapping.map(fd, start, end - start, true);
            return new InflightBuffer(m, m.address() + (mmapOffset - start), mmapSize, numQueues, queueSize);
        } finally {
            FileDescriptors.closeQuietly(fd);
        }
    }

    public long size() {
        return size;
    }

    public int numQueues() {
        return numQueues;
    }

    public int queueSize() {
        return queueSize;
    }

    /** Queue {@code index}'s region, or null if the buffer does not cover that queue. */
    public Region region(final int index) {
        if (index < 0 || index >= numQueues) {
            return null;
        }
        final long stride = queueRegionSize(queueSize);
        return new Region(base + index * stride, stride, queueSize);
    }

    @Override
    public void close() {
        mapping.close();
    }

    /** One queue's part of the buffer: host address, length, and entries (the front-end's queue size). */
    public record Region(long address, long length, int entries) {
    }
}
