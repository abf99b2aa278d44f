package dev.vhostnet.dataplane.memory;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.Mapping;
import java.util.logging.Logger;
import sun.misc.Unsafe;

/**
 * The shared dirty-page bitmap of live migration (SET_LOG_BASE): bit n set means guest physical page n
 * (4 KiB) was written by the back-end. The front-end clears bits concurrently while it copies pages, so
 * bits are set with atomic read-modify-write on 32-bit words, never with plain stores, and never skipped
 * (see {@link #mark}). Callers mark a range only after writing it.
 */
public final class DirtyLog implements AutoCloseable {
    public static final int PAGE_SHIFT = 12;
    private static final Unsafe UNSAFE = org.agrona.UnsafeAccess.UNSAFE;
    private static final Logger LOG = Logger.getLogger(DirtyLog.class.getName());

    private final Mapping mapping;
    private final long base;
    private final long size;
    private final int fd;
    /** Pages marked beyond the end of the log (the front-end's log is too small for its memory). */
    private long pagesNotLogged;
    /** Bytes written outside every memory region (see {@link GuestMemory#logWrite}). */
    private long bytesOutsideRegions;

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

    /**
     * Mark guest physical range [gpa, gpa+len) dirty, after the data written there. Pages beyond the log
     * cannot be marked: they are counted ({@link #pagesNotLogged()}) and reported once.
     *
     * <p>Every word is updated with an atomic read-modify-write even when its bits already look set. The
     * front-end syncs by atomically exchanging a word with 0 and then copying the pages whose bits it took.
     * Skipping the write because a bit reads as set is a lost update: on x86 a load may pass our earlier
     * data stores still in the store buffer, so we can read "set" just before the front-end takes the bit,
     * and the front-end then copies the page before our data is visible; nothing marks the page again and
     * the destination keeps the old contents. A compare-and-swap (a locked instruction on x86, a full
     * barrier elsewhere through its volatile semantics) cannot pass the data stores: once the front-end
     * sees our bit, it sees the data; if it took the bit before, our swap sets it again. This is what DPDK
     * does (a release fence, then an unconditional atomic OR).
     */
    public void mark(final long gpa, final long len) {
        if (len <= 0 || gpa < 0) {
            return;
        }
        java.lang.invoke.VarHandle.releaseFence();
        final long first = gpa >>> PAGE_SHIFT;
        final long last = (gpa + len - 1) >>> PAGE_SHIFT;
        long word = -1;
        int mask = 0;
        for (long page = first; page <= last; page++) {
            final long byteIndex = page >>> 3;
            if (byteIndex >= size) {
                notLogged(last - page + 1);
                break;
            }
            final long wordAddr = (base + byteIndex) & ~3L;
            if (wordAddr < base) {
                continue; // word would start before the log (unaligned log base): skip rather than touch outside
            }
            if (wordAddr != word) {
                orWord(word, mask);
                word = wordAddr;
                mask = 0;
            }
            mask |= 1 << (int) (((base + byteIndex) & 3) * 8 + (page & 7));
        }
        orWord(word, mask);
    }

    private void notLogged(final long pages) {
        if (pagesNotLogged == 0) {
            LOG.warning("dirty log of " + size + " bytes is too small: a write at page " + (size * 8) + " or above"
                + " cannot be logged (live migration would miss it)");
        }
        pagesNotLogged += pages;
    }

    /**
     * A write of {@code bytes} at a host address in no memory region: it cannot be translated to a guest page,
     * so it cannot be logged. Never expected (every address the dataplane writes came from the table); counted
     * and reported once rather than silently skipped.
     */
    void outsideRegions(final long host, final long bytes) {
        if (bytesOutsideRegions == 0) {
            LOG.warning(String.format("a write of %d bytes at host address 0x%x lies in no memory region: not"
                + " logged (live migration would miss it)", bytes, host));
        }
        bytesOutsideRegions += bytes;
    }

    /** Pages that could not be marked because they lie beyond the log (dataplane thread's count). */
    public long pagesNotLogged() {
        return pagesNotLogged;
    }

    /** Bytes that could not be marked because they lie in no memory region (dataplane thread's count). */
    public long bytesOutsideRegions() {
        return bytesOutsideRegions;
    }

    /** Clears page n's bit as the front-end's sync does (tests). */
    void clearForTest(final long page) {
        final long byteAddr = base + (page >>> 3);
        final long wordAddr = byteAddr & ~3L;
        final int mask = 1 << (int) ((byteAddr & 3) * 8 + (page & 7));
        int old;
        do {
            old = UNSAFE.getIntVolatile(null, wordAddr);
        } while (!UNSAFE.compareAndSwapInt(null, wordAddr, old, old & ~mask));
    }

    /** Atomically set {@code mask} in the log word at {@code wordAddr} (no-op for mask 0). */
    private static void orWord(final long wordAddr, final int mask) {
        if (mask == 0) {
            return;
        }
        int old;
        do {
            old = UNSAFE.getIntVolatile(null, wordAddr);
        } while (!UNSAFE.compareAndSwapInt(null, wordAddr, old, old | mask));
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
