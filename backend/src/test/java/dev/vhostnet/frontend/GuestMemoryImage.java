package dev.vhostnet.frontend;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.Mapping;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.sys.Seals;
import org.agrona.concurrent.UnsafeBuffer;

import java.util.Map;
import java.util.TreeMap;

/**
 * Guest memory as a front-end owns it: a memfd mapped into this process, plus an allocator for rings and
 * buffers. Guest physical addresses are {@code gpaBase + offset} and the front-end's "user" addresses are
 * {@code uvaBase + offset}, with different bases, so a back-end that confuses the two address spaces (or
 * uses either as a pointer) fails loudly instead of working by accident.
 */
public final class GuestMemoryImage implements AutoCloseable {
    public static final long DEFAULT_GPA_BASE = 0x1_0000_0000L;
    public static final long DEFAULT_UVA_BASE = 0x7f00_0000_0000L;

    private final int fd;
    private final Mapping mapping;
    private final UnsafeBuffer buffer;
    private final long size;
    private final long gpaBase;
    private final long uvaBase;
    /** Free blocks: offset to length, coalesced on free. */
    private final TreeMap<Long, Long> free = new TreeMap<>();
    private final Map<Long, Long> allocated = new TreeMap<>();

    private GuestMemoryImage(final int fd, final Mapping mapping, final long size, final long gpaBase, final long uvaBase) {
        this.fd = fd;
        this.mapping = mapping;
        this.size = size;
        this.gpaBase = gpaBase;
        this.uvaBase = uvaBase;
        this.buffer = new UnsafeBuffer(mapping.address(), (int) size);
        free.put(0L, size);
    }

    public static GuestMemoryImage create(final int mebibytes) {
        return create(mebibytes, DEFAULT_GPA_BASE, DEFAULT_UVA_BASE);
    }

    /** How the image's memfd is created, as the front-ends of the wild create theirs. */
    public enum Backing {
        /** Sealable, no seals yet (memory-backend-memfd with seal=off): the back-end adds F_SEAL_SHRINK. */
        SEALABLE,
        /** F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL, as QEMU's memory-backend-memfd seals by default. */
        SEALED,
        /** Without MFD_ALLOW_SEALING (as DPDK's no-huge memory): born with F_SEAL_SEAL, never sealable. */
        UNSEALABLE
    }

    public static GuestMemoryImage create(final int mebibytes, final long gpaBase, final long uvaBase) {
        return create(mebibytes, gpaBase, uvaBase, Backing.SEALABLE);
    }

    public static GuestMemoryImage create(final int mebibytes, final long gpaBase, final long uvaBase,
                                          final Backing backing) {
        final long size = (long) mebibytes << 20;
        final int fd = backing == Backing.UNSEALABLE ? MemFd.create("vhostnet-test-guest", size, LibC.MFD_CLOEXEC)
            : MemFd.create("vhostnet-test-guest", size);
        if (backing == Backing.SEALED && Seals.add(fd, MemFd.HANDED_OUT_SEALS) != 0) {
            FileDescriptors.closeQuietly(fd);
            throw new IllegalStateException("cannot seal the guest memfd");
        }
        try {
            return new GuestMemoryImage(fd, Mapping.map(fd, 0, size, true), size, gpaBase, uvaBase);
        } catch (final RuntimeException e) {
            FileDescriptors.closeQuietly(fd);
            throw e;
        }
    }

    /** The memfd; the front-end sends it with SET_MEM_TABLE / ADD_MEM_REG and keeps it open. */
    public int fd() {
        return fd;
    }

    public long size() {
        return size;
    }

    public long gpaBase() {
        return gpaBase;
    }

    public long uvaBase() {
        return uvaBase;
    }

    public long gpa(final long offset) {
        return gpaBase + offset;
    }

    public long uva(final long offset) {
        return uvaBase + offset;
    }

    /** The whole image, for reading and writing guest memory by offset. */
    public UnsafeBuffer buffer() {
        return buffer;
    }

    /** Address of {@code offset} in this process. */
    public long address(final long offset) {
        return mapping.address() + offset;
    }

    /** The region covering the whole image, as SET_MEM_TABLE describes it. */
    public MemoryRegion region() {
        return window(0, size);
    }

    /** A region covering [offset, offset+length) of the image (mmap_offset = offset). */
    public MemoryRegion window(final long offset, final long length) {
        return new MemoryRegion(gpa(offset), length, uva(offset), offset, fd);
    }

    /** First-fit allocation of {@code length} bytes aligned to {@code alignment} (a power of two). */
    public synchronized long allocate(final long length, final long alignment) {
        if (length <= 0) {
            throw new IllegalArgumentException("length " + length);
        }
        for (final Map.Entry<Long, Long> block : free.entrySet()) {
            final long start = block.getKey();
            final long end = start + block.getValue();
            final long aligned = Mapping.alignUp(start, alignment);
            if (aligned + length <= end) {
                free.remove(start);
                if (aligned > start) {
                    free.put(start, aligned - start);
                }
                if (aligned + length < end) {
                    free.put(aligned + length, end - aligned - length);
                }
                allocated.put(aligned, length);
                buffer.setMemory((int) aligned, (int) length, (byte) 0);
                return aligned;
            }
        }
        throw new IllegalStateException("guest memory image full: cannot allocate " + length + " bytes");
    }

    /** Allocate exactly [offset, offset+length), which must be free (to place a buffer on a region boundary). */
    public synchronized long reserve(final long offset, final long length) {
        final Map.Entry<Long, Long> block = free.floorEntry(offset);
        if (block == null || block.getKey() + block.getValue() < offset + length) {
            throw new IllegalStateException("[" + offset + ", +" + length + ") is not free");
        }
        final long start = block.getKey();
        final long end = start + block.getValue();
        free.remove(start);
        if (offset > start) {
            free.put(start, offset - start);
        }
        if (offset + length < end) {
            free.put(offset + length, end - offset - length);
        }
        allocated.put(offset, length);
        buffer.setMemory((int) offset, (int) length, (byte) 0);
        return offset;
    }

    public synchronized void free(final long offset) {
        final Long length = allocated.remove(offset);
        if (length == null) {
            throw new IllegalArgumentException("offset " + offset + " is not allocated");
        }
        long start = offset;
        long len = length;
        final Map.Entry<Long, Long> before = free.floorEntry(start);
        if (before != null && before.getKey() + before.getValue() == start) {
            free.remove(before.getKey());
            start = before.getKey();
            len += before.getValue();
        }
        final Long after = free.get(start + len);
        if (after != null) {
            free.remove(start + len);
            len += after;
        }
        free.put(start, len);
    }

    @Override
    public void close() {
        mapping.close();
        FileDescriptors.closeQuietly(fd);
    }

    /** One memory region description as the vhost-user messages carry it, plus the fd that backs it. */
    public record MemoryRegion(long guestPhysAddr, long size, long userAddr, long mmapOffset, int fd) {
        public MemoryRegion withFd(final int otherFd) {
            return new MemoryRegion(guestPhysAddr, size, userAddr, mmapOffset, otherFd);
        }

        public MemoryRegion withSize(final long otherSize) {
            return new MemoryRegion(guestPhysAddr, otherSize, userAddr, mmapOffset, fd);
        }

        public MemoryRegion movedTo(final long gpa, final long uva) {
            return new MemoryRegion(gpa, size, uva, mmapOffset, fd);
        }
    }
}
