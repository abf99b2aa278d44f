package dev.vhostnet.dataplane.sys;

/** A shared mmap of (part of) a file. Unmapped exactly once by {@link #close()}. */
public final class Mapping implements AutoCloseable {
    public static final long PAGE_SIZE = 4096;

    private final long address;
    private final long length;
    private boolean closed;

    private Mapping(final long address, final long length) {
        this.address = address;
        this.length = length;
    }

    /** Map {@code length} bytes of {@code fd} from {@code offset}, which must be page-aligned. */
    public static Mapping map(final int fd, final long offset, final long length, final boolean writable) {
        if (length <= 0 || offset < 0 || (offset & (PAGE_SIZE - 1)) != 0) {
            throw new IllegalArgumentException("bad mapping: offset=" + offset + " length=" + length);
        }
        final int prot = LibC.PROT_READ | (writable ? LibC.PROT_WRITE : 0);
        final long addr = RawMmap.mmap(length, prot, LibC.MAP_SHARED, fd, offset);
        if (addr == LibC.MAP_FAILED) {
            throw new NativeException("mmap(fd=" + fd + ", offset=" + offset + ", length=" + length + ")", RawMmap.lastErrno());
        }
        return new Mapping(addr, length);
    }

    public long address() {
        return address;
    }

    public long length() {
        return length;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            LibC.INSTANCE.munmap(address, length);
        }
    }

    public static long alignDown(final long value, final long alignment) {
        return value & -alignment;
    }

    public static long alignUp(final long value, final long alignment) {
        return (value + alignment - 1) & -alignment;
    }
}
