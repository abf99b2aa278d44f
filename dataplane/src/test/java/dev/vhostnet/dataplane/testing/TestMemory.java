package dev.vhostnet.dataplane.testing;

import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.Mapping;
import dev.vhostnet.dataplane.sys.MemFd;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * A memfd standing for guest memory, mapped into the test (the driver's view). The device's view is built
 * from {@link GuestRegion}s over dups of the same fd, so the two sides share bytes but not addresses.
 */
public final class TestMemory implements AutoCloseable {
    private final int fd;
    private final Mapping local;
    private final UnsafeBuffer buffer;

    public TestMemory(final long size) {
        fd = MemFd.create("vhostnet-unit", size);
        local = Mapping.map(fd, 0, size, true);
        buffer = new UnsafeBuffer(local.address(), (int) size);
    }

    /** The driver's view: read and write guest memory by offset in the memfd. */
    public UnsafeBuffer buffer() {
        return buffer;
    }

    public long size() {
        return local.length();
    }

    /** A device-side region for [offset, offset+size) of the memfd at the given guest and user addresses. */
    public GuestRegion region(final long gpa, final long uva, final long offset, final long size) {
        return GuestRegion.map(gpa, size, uva, offset, FileDescriptors.dup(fd), UnsealedMemory.REFUSE);
    }

    @Override
    public void close() {
        local.close();
        FileDescriptors.closeQuietly(fd);
    }
}
