package dev.vhostnet.dataplane.testing;

import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.sys.MemFd;
import org.agrona.concurrent.UnsafeBuffer;

import java.util.List;

/**
 * One memfd-backed guest memory region for ring tests, with distinct guest-physical and front-end virtual
 * bases (so a translation mix-up shows) and a bump allocator.
 */
public final class TestGuest implements AutoCloseable {
    public static final long GPA_BASE = 0x4000_0000L;
    public static final long UVA_BASE = 0x7f00_0000_0000L;

    public final GuestMemory memory;
    public final UnsafeBuffer bytes;
    private final long size;
    private long next = 4096;

    public TestGuest(final long size) {
        this.size = size;
        final int fd = MemFd.create("ring-test", size);
        final GuestRegion region = GuestRegion.map(GPA_BASE, size, UVA_BASE, 0, fd, UnsealedMemory.REFUSE);
        memory = GuestMemory.of(List.of(region));
        bytes = new UnsafeBuffer(region.hostAddr(), (int) size);
    }

    /** Offset of a fresh aligned block. */
    public long alloc(final long length, final int align) {
        next = (next + align - 1) & -align;
        final long at = next;
        next += length;
        if (next > size) {
            throw new IllegalStateException("test guest memory exhausted");
        }
        return at;
    }

    public long gpa(final long offset) {
        return GPA_BASE + offset;
    }

    public long uva(final long offset) {
        return UVA_BASE + offset;
    }

    @Override
    public void close() {
        memory.close();
    }
}
