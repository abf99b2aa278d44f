package dev.vhostnet.e2e.migration;

import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A paused guest's RAM, read from the shared file QEMU keeps it in ({@code memory-backend-file}); guest
 * physical address n is at file offset n (one node below 4 GiB). Read-only: the test only looks.
 */
final class GuestRam {
    static final int PAGE = 4096;

    private final Path file;
    private final MappedByteBuffer map;

    private GuestRam(Path file, MappedByteBuffer map) {
        this.file = file;
        this.map = map;
    }

    static GuestRam open(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            if (ch.size() > Integer.MAX_VALUE) {
                throw new IOException(file + " is larger than this reader handles");
            }
            MappedByteBuffer m = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size());
            m.order(ByteOrder.LITTLE_ENDIAN);
            return new GuestRam(file, m);
        }
    }

    Path file() {
        return file;
    }

    long size() {
        return map.capacity();
    }

    long pages() {
        return size() / PAGE;
    }

    boolean contains(long gpa, long len) {
        return gpa >= 0 && len >= 0 && gpa <= size() - len;
    }

    int u8(long gpa) {
        return map.get((int) gpa) & 0xFF;
    }

    int u16(long gpa) {
        return map.getShort((int) gpa) & 0xFFFF;
    }

    long u32(long gpa) {
        return map.getInt((int) gpa) & 0xFFFF_FFFFL;
    }

    long u64(long gpa) {
        return map.getLong((int) gpa);
    }

    /** A copy of page n. */
    byte[] page(long page) {
        byte[] b = new byte[PAGE];
        map.get((int) (page * PAGE), b);
        return b;
    }

    /** Whether page n holds the same bytes here and in {@code other}. */
    boolean samePage(GuestRam other, long page) {
        int at = (int) (page * PAGE);
        for (int i = 0; i < PAGE; i += 8) {
            if (map.getLong(at + i) != other.map.getLong(at + i)) {
                return false;
            }
        }
        return true;
    }

    /** Offsets within page n of the first and last differing byte, as {first, last}. */
    int[] differingSpan(GuestRam other, long page) {
        int at = (int) (page * PAGE);
        int first = -1;
        int last = -1;
        for (int i = 0; i < PAGE; i++) {
            if (map.get(at + i) != other.map.get(at + i)) {
                if (first < 0) {
                    first = i;
                }
                last = i;
            }
        }
        return new int[] {first, last};
    }
}
