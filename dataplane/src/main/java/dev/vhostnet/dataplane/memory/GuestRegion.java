package dev.vhostnet.dataplane.memory;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.Mapping;
import dev.vhostnet.dataplane.sys.NativeException;

/**
 * One region of guest memory as the front-end described it (guest physical address, size, front-end
 * virtual address, offset into its fd), mapped into this process. Owns the fd and the mapping; the fd is
 * kept open so the region can be re-exported (vhost-pci) and compared on REM_MEM_REG.
 */
public final class GuestRegion implements AutoCloseable {
    /** Alignments tried for the mapping, so that hugetlbfs-backed files map too. */
    private static final long[] MAP_ALIGNMENTS = {Mapping.PAGE_SIZE, 2L << 20, 1L << 30};

    private final long guestPhysAddr;
    private final long size;
    private final long userAddr;
    private final long mmapOffset;
    private final int fd;
    private final Mapping mapping;
    private final long hostAddr;
    /** False once the file is sealed against shrinking: then it always covers the region. */
    private final boolean shrinkable;
    private int references = 1;

    private GuestRegion(final long guestPhysAddr, final long size, final long userAddr, final long mmapOffset,
                        final int fd, final Mapping mapping, final long hostAddr, final boolean shrinkable) {
        this.guestPhysAddr = guestPhysAddr;
        this.size = size;
        this.userAddr = userAddr;
        this.mmapOffset = mmapOffset;
        this.fd = fd;
        this.mapping = mapping;
        this.hostAddr = hostAddr;
        this.shrinkable = shrinkable;
    }

    /**
     * Validate and map a region. Takes ownership of {@code fd}: on failure it is closed. The file is sealed
     * against shrinking (or found sealed, or let through by {@code unsealed}) before its size is checked.
     *
     * @throws InvalidMemoryException if the description is impossible (overflow, empty, beyond the fd) or
     *                                the file can shrink and {@code unsealed} refuses that
     */
    public static GuestRegion map(final long guestPhysAddr, final long size, final long userAddr,
                                  final long mmapOffset, final int fd, final UnsealedMemory unsealed) {
        try {
            final boolean shrinkable = ShrinkSeal.apply(fd, unsealed, "memory region at guest address 0x"
                + Long.toHexString(guestPhysAddr)) == ShrinkSeal.Outcome.UNSEALED;
            if (size <= 0) {
                throw new InvalidMemoryException("region size " + Long.toUnsignedString(size) + " is not positive");
            }
            if (mmapOffset < 0 || Long.MAX_VALUE - mmapOffset < size) {
                throw new InvalidMemoryException("region mmap_offset + size overflows");
            }
            if (Long.compareUnsigned(guestPhysAddr, -size) > 0 || Long.compareUnsigned(userAddr, -size) > 0) {
                throw new InvalidMemoryException("region address range wraps around 2^64");
            }
            final long fileSize = FileDescriptors.size(fd);
            if (mmapOffset + size > fileSize) {
                throw new InvalidMemoryException("region [" + mmapOffset + ", +" + size + ") is beyond the end of its fd ("
                    + fileSize + " bytes)");
            }
            NativeException last = null;
            for (final long alignment : MAP_ALIGNMENTS) {
                final long start = Mapping.alignDown(mmapOffset, alignment);
                final long end = Mapping.alignUp(mmapOffset + size, alignment);
                try {
                    final Mapping mapping = Mapping.map(fd, start, end - start, true);
                    return new GuestRegion(guestPhysAddr, size, userAddr, mmapOffset, fd, mapping,
                        mapping.address() + (mmapOffset - start), shrinkable);
                } catch (final NativeException e) {
                    last = e;
                }
            }
            throw new InvalidMemoryException("cannot map region: " + last.getMessage());
        } catch (final RuntimeException e) {
            FileDescriptors.closeQuietly(fd);
            throw e;
        }
    }

    public long guestPhysAddr() {
        return guestPhysAddr;
    }

    public long size() {
        return size;
    }

    public long userAddr() {
        return userAddr;
    }

    public long mmapOffset() {
        return mmapOffset;
    }

    public int fd() {
        return fd;
    }

    /** Address in this process of the region's first byte. */
    public long hostAddr() {
        return hostAddr;
    }

    /** Whether the file can still shrink under the mapping (it could not be sealed; see {@link UnsealedMemory}). */
    public boolean isShrinkable() {
        return shrinkable;
    }

    /**
     * Whether the fd still covers the whole region: always, once sealed. An unsealed file (let through by
     * {@link UnsealedMemory#ALLOW}) can be truncated under the live mapping; touching the lost pages raises
     * SIGBUS, which HotSpot turns into an InternalError in the accessing thread only for some instructions
     * (otherwise the JVM aborts). When it does, the dataplane uses this to tell which memory went away.
     */
    public boolean isIntact() {
        if (!shrinkable) {
            return true;
        }
        try {
            return FileDescriptors.size(fd) >= mmapOffset + size;
        } catch (final RuntimeException e) {
            return false;
        }
    }

    /** Same region as a REM_MEM_REG description: compared on guest address, size and user address. */
    public boolean describes(final long gpa, final long regionSize, final long uva) {
        return gpa == guestPhysAddr && regionSize == size && uva == userAddr;
    }

    /** Whether [gpa, gpa+len) of the guest physical space overlaps this region. */
    public boolean overlapsGuest(final long gpa, final long len) {
        return Long.compareUnsigned(gpa, guestPhysAddr + size - 1) <= 0
            && Long.compareUnsigned(guestPhysAddr, gpa + len - 1) <= 0;
    }

    /** A table sharing this region takes a reference; the region is unmapped when the last one closes. */
    synchronized GuestRegion retain() {
        references++;
        return this;
    }

    @Override
    public synchronized void close() {
        if (references > 0 && --references == 0) {
            mapping.close();
            FileDescriptors.closeQuietly(fd);
        }
    }

    @Override
    public String toString() {
        return String.format("region{gpa=0x%x size=0x%x uva=0x%x offset=0x%x fd=%d}",
            guestPhysAddr, size, userAddr, mmapOffset, fd);
    }
}
