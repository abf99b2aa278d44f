package dev.vhostnet.dataplane.memory;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.Mapping;
import sun.misc.Unsafe;

/**
 * The shared dirty-page bitmap of live migration (SET_LOG_BASE): bit n set means guest physical page n
 * (4 KiB) was written by the back-end. The front-end clears bits concurrently while it copies pages, so
 * bits are set with atomic read-modify-write on 32-bit words, never with plain stores. Callers mark a range
 * only after writing it (a store-store fence orders the data before the bit).
 */
public final class DirtyLog implements AutoCloseable {
    public static final int PAGE_SHIFT = 12;
    private static final Unsafe UNSAFE = org.agrona.UnsafeAccess.UNSAFE;

    private final Mapping mapping;
    private final long base;
    private final long size;
    private final int fd;

    private DirtyLog(final Mapping mapping, final long base, final long size, final int fd) {
        this.mapping = mapping;
        this.base = base;
        this.size = size;
        this.fd = fd;
    }

    /** Map the log; takes ownership of {@code fd}, sealed against shrinking first (see {@link ShrinkSeal}). */
    public static DirtyLog map(final int fd, final long size, final long offset, final UnsealedMemory unsealed) {
        try {
            ShrinkSeal.apply(fd, unsealed, "dirty log");
            if (size <= 0 || offset < 0 || Long.MAX_VALUE - offset < size) {
                throw new InvalidMemoryException("dirty log size " + size + " / offset " + offset + " invalid");
            }
            if (offset + size > FileDescriptors.size(fd)) {
                throw new InvalidMemoryException("dirty log extends beyond its fd");
            }
            final long start = Mapping.alignDown(offset, Mapping.PAGE_SIZE);
            final long end = Mapping.alignUp(offset + size, Mapping.PAGE_SIZE);
            final Mapping m = Mapping.map(fd, start, end - start, true);
            return new DirtyLog(m, m.address() + (offset - start), size, fd);
        } catch (final RuntimeException e) {
            FileDescriptors.closeQuietly(fd);
            throw e;
        }
    }

    public long size() {
        return size;
    }

    /** Mark guest physical range [gpa, gpa+len) dirty. Pages beyond the log are ignored. */
    public void mark(final long gpa, final long len) {
        if (len <= 0 || gpa < 0) {
            return;
        }
        java.lang.invoke.VarHandle.storeStoreFence();
        final long first = gpa >>> PAGE_SHIFT;
        final long last = (gpa + len - 1) >>> PAGE_SHIFT;
        for (long page = first; page <= last; page++) {
            final long byteIndex = page >>> 3;
            if (byteIndex >= size) {
                return;
            }
            final long wordAddr = (base + byteIndex) & ~3L;
            if (wordAddr < base) {
                continue; // word would start before the log (unaligned log base): skip rather than touch outside
            }
            final int bit = (int) (((base + byteIndex) & 3) * 8 + (page & 7));
            final int mask = 1 << bit;
            int old;
            do {
                old = UNSAFE.getIntVolatile(null, wordAddr);
                if ((old & mask) != 0) {
                    break;
                }
            } while (!UNSAFE.compareAndSwapInt(null, wordAddr, old, old | mask));
        }
    }

    /** Whether page n is marked (tests). */
    public boolean isDirty(final long page) {
        final long byteIndex = page >>> 3;
        return byteIndex < size && (UNSAFE.getByteVolatile(null, base + byteIndex) & (1 << (page & 7))) != 0;
    }

    @Override
    public void close() {
        mapping.close();
        FileDescriptors.closeQuietly(fd);
    }
}
