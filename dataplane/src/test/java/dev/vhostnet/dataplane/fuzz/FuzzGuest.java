package dev.vhostnet.dataplane.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.testing.TestMemory;
import dev.vhostnet.dataplane.virtq.DescriptorChain;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.Virtqueue;
import org.agrona.concurrent.UnsafeBuffer;

import java.util.List;

/**
 * Guest memory for the ring walker fuzz targets, mapped once per JVM: a 64 KiB memfd described to the device
 * as two adjacent regions (so buffers can straddle them), the second one ending 100 bytes before the end of
 * its last page. Those 100 bytes are mapped by the device but are not guest memory: a walker that hands out a
 * host address there, or anywhere outside the two regions, is caught by {@link #checkChain}.
 *
 * <p>The driver's view (the fuzzer's writes) goes through the test's own mapping of the memfd, and a copy of
 * every byte the fuzzer wrote is kept, so {@link #checkDeviceWrites} can tell which bytes the device changed.
 */
final class FuzzGuest {
    static final int MEMORY = 64 << 10;
    static final int REGION_A = 32 << 10;
    static final int TAIL_GAP = 100;
    static final long GPA = 0x4000_0000L;
    static final long UVA = 0x7f12_0000_0000L;
    /** Where the three ring parts live (offsets in the memfd); queue sizes are at most 256. */
    static final int RING0 = 0x1000;
    static final int RING1 = 0x2000;
    static final int RING2 = 0x3000;
    static final int MAX_QUEUE = 256;

    final TestMemory file = new TestMemory(MEMORY);
    final UnsafeBuffer driver = file.buffer();
    final GuestRegion a = file.region(GPA, UVA, 0, REGION_A);
    final GuestRegion b = file.region(GPA + REGION_A, UVA + REGION_A, REGION_A, MEMORY - REGION_A - TAIL_GAP);
    final GuestMemory memory = GuestMemory.of(List.of(a, b));
    private final byte[] expected = new byte[MEMORY];
    private final byte[] actual = new byte[MEMORY];

    /** Start an execution: all zero. */
    void clear() {
        driver.setMemory(0, MEMORY, (byte) 0);
        java.util.Arrays.fill(expected, (byte) 0);
    }

    void putShort(final int offset, final int value) {
        driver.putShort(offset, (short) value);
        expected[offset] = (byte) value;
        expected[offset + 1] = (byte) (value >>> 8);
    }

    void putInt(final int offset, final int value) {
        putShort(offset, value & 0xFFFF);
        putShort(offset + 2, value >>> 16);
    }

    void putLong(final int offset, final long value) {
        putInt(offset, (int) value);
        putInt(offset + 4, (int) (value >>> 32));
    }

    void putBytes(final int offset, final byte[] bytes) {
        final int n = Math.min(bytes.length, MEMORY - offset);
        driver.putBytes(offset, bytes, 0, n);
        System.arraycopy(bytes, 0, expected, offset, n);
    }

    /** A guest physical address the fuzzer picks: mostly inside (or just around) guest memory, sometimes anything. */
    static long gpa(final FuzzedDataProvider data) {
        switch (data.consumeInt(0, 3)) {
            case 0:
                return data.consumeLong();
            case 1:
                return GPA + data.consumeInt(-64, MEMORY + 64);
            default:
                return GPA + data.consumeInt(0, MEMORY - 1);
        }
    }

    /** A buffer length: mostly small, sometimes any u32. */
    static int length(final FuzzedDataProvider data) {
        return data.consumeBoolean() ? data.consumeInt(0, 4096) : data.consumeInt();
    }

    /** The device may change only [from, from + len) ranges; any other byte must be what the fuzzer wrote. */
    void checkDeviceWrites(final int[] allowedFrom, final int[] allowedLen) {
        driver.getBytes(0, actual);
        for (int i = 0; i < MEMORY; i++) {
            if (actual[i] != expected[i] && !allowed(i, allowedFrom, allowedLen)) {
                throw new AssertionError("device wrote byte " + i + " of guest memory, outside its rings");
            }
        }
    }

    private static boolean allowed(final int at, final int[] from, final int[] len) {
        for (int k = 0; k < from.length; k++) {
            if (at >= from[k] && at < from[k] + len[k]) {
                return true;
            }
        }
        return false;
    }

    /** Every segment of a popped chain must be guest memory: inside one region, as a host address range. */
    void checkChain(final DescriptorChain chain) {
        long read = 0;
        for (int i = 0; i < chain.readCount(); i++) {
            checkSegment(chain.readAddr(i), chain.readLen(i));
            read += chain.readLen(i);
        }
        long written = 0;
        for (int i = 0; i < chain.writeCount(); i++) {
            checkSegment(chain.writeAddr(i), chain.writeLen(i));
            written += chain.writeLen(i);
        }
        if (read != chain.readBytes() || written != chain.writeBytes()) {
            throw new AssertionError("chain byte counts disagree with its segments");
        }
    }

    private void checkSegment(final long host, final int len) {
        if (len <= 0) {
            throw new AssertionError("empty or negative segment " + len);
        }
        if (!inside(a, host, len) && !inside(b, host, len)) {
            throw new AssertionError(String.format("segment [0x%x, +%d) is outside guest memory", host, len));
        }
    }

    private static boolean inside(final GuestRegion r, final long host, final int len) {
        final long off = host - r.hostAddr();
        return off >= 0 && off < r.size() && len <= r.size() - off;
    }

    /** A queue that refused a chain must say why and stop. */
    static void checkBroken(final Virtqueue q) {
        if (q.error() == QueueError.NONE || q.isRunning() || q.available() != 0) {
            throw new AssertionError("pop failed but the queue is not broken: " + q);
        }
    }
}
