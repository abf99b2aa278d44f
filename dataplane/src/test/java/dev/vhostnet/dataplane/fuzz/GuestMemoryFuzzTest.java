package dev.vhostnet.dataplane.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.memory.InvalidMemoryException;
import dev.vhostnet.dataplane.testing.TestMemory;
import org.agrona.UnsafeAccess;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;

/**
 * Fuzz target: memory tables from fuzzed region descriptions (guest physical address, size, user address,
 * mmap offset, anywhere in the 64-bit space) over one memfd, then fuzzed translations checked against a
 * model in unbounded integers. A finding is: a region accepted that does not fit its fd, wraps around 2^64 or
 * is empty (or one refused that is fine); an overlapping table accepted; any translation that differs from
 * the model (an address outside the region, an overflow that wrapped into one); any exception other than
 * {@link InvalidMemoryException}. Every translated range is also touched at both ends, so a host address
 * outside the mapping would fault.
 */
class GuestMemoryFuzzTest {
    private static final long FILE = 256 << 10;
    private static final TestMemory FD = new TestMemory(FILE);
    private static final BigInteger TWO_64 = BigInteger.ONE.shiftLeft(64);

    /** A region description the fuzzer made, as the model sees it. */
    private record Desc(long gpa, long size, long uva, long offset) {
        boolean valid() {
            return size > 0 && offset >= 0 && u(offset).add(u(size)).compareTo(BigInteger.valueOf(FILE)) <= 0
                && u(gpa).add(u(size)).compareTo(TWO_64) <= 0 && u(uva).add(u(size)).compareTo(TWO_64) <= 0;
        }

        boolean overlaps(final Desc o) {
            return u(gpa).compareTo(u(o.gpa).add(u(o.size))) < 0 && u(o.gpa).compareTo(u(gpa).add(u(size))) < 0;
        }
    }

    @FuzzTest(maxDuration = "25s")
    void translate(final FuzzedDataProvider data) {
        final int count = data.consumeInt(1, 4);
        final List<Desc> descs = new ArrayList<>();
        final List<GuestRegion> regions = new ArrayList<>();
        try {
            for (int i = 0; i < count; i++) {
                final Desc d = new Desc(address(data), size(data), address(data), offset(data));
                GuestRegion r = null;
                try {
                    r = FD.region(d.gpa, d.uva, d.offset, d.size);
                } catch (final InvalidMemoryException e) {
                    if (d.valid()) {
                        throw new AssertionError("valid region refused: " + d + ": " + e.getMessage());
                    }
                }
                if (r != null) {
                    if (!d.valid()) {
                        throw new AssertionError("invalid region accepted: " + d);
                    }
                    regions.add(r);
                    descs.add(d);
                }
            }
            if (regions.isEmpty()) {
                return;
            }
            boolean overlap = false;
            for (int i = 0; i < descs.size(); i++) {
                for (int j = i + 1; j < descs.size(); j++) {
                    overlap |= descs.get(i).overlaps(descs.get(j));
                }
            }
            final GuestMemory memory;
            try {
                memory = GuestMemory.of(regions);
            } catch (final InvalidMemoryException e) {
                if (!overlap) {
                    throw new AssertionError("table without overlap refused: " + descs, e);
                }
                return;
            }
            regions.clear(); // owned by the table now
            try {
                if (overlap) {
                    throw new AssertionError("overlapping table accepted: " + descs);
                }
                queries(data, memory, descs);
                if (data.consumeBoolean()) {
                    final Desc gone = descs.get(data.consumeInt(0, descs.size() - 1));
                    try (GuestMemory smaller = memory.withoutRegion(gone.gpa, gone.size, gone.uva)) {
                        final List<Desc> rest = new ArrayList<>(descs);
                        rest.remove(gone);
                        queries(data, smaller, rest);
                    }
                }
            } finally {
                memory.close();
            }
        } finally {
            regions.forEach(GuestRegion::close);
        }
    }

    private static void queries(final FuzzedDataProvider data, final GuestMemory memory, final List<Desc> descs) {
        if (descs.isEmpty()) {
            if (memory.gpaToHost(data.consumeLong(), data.consumeLong()) != GuestMemory.UNMAPPED) {
                throw new AssertionError("an empty table translated an address");
            }
            return;
        }
        final int n = data.consumeInt(1, 16);
        for (int q = 0; q < n; q++) {
            final Desc near = descs.get(data.consumeInt(0, descs.size() - 1));
            final boolean physical = data.consumeBoolean();
            final long base = physical ? near.gpa : near.uva;
            final long addr = data.consumeBoolean() ? data.consumeLong() : base + data.consumeLong(-16, 16)
                + (data.consumeBoolean() ? near.size : 0);
            final long len = data.consumeBoolean() ? data.consumeLong()
                : data.consumeLong(0, near.size + 16 < 0 ? Long.MAX_VALUE : near.size + 16);
            final long host = physical ? memory.gpaToHost(addr, len) : memory.uvaToHost(addr, len);
            final long expected = model(memory, descs, physical, addr, len);
            if (host != expected) {
                throw new AssertionError(String.format("%s(0x%x, %d) = 0x%x, expected 0x%x in %s",
                    physical ? "gpaToHost" : "uvaToHost", addr, len, host, expected, descs));
            }
            if (host != GuestMemory.UNMAPPED && len > 0) {
                UnsafeAccess.UNSAFE.getByte(host);
                UnsafeAccess.UNSAFE.getByte(host + len - 1);
            }
            if (physical) {
                final long start = memory.gpaToHostStart(addr);
                final long contiguous = memory.contiguousBytes(addr);
                final long single = model(memory, descs, true, addr, 1);
                if (start != single || (single == GuestMemory.UNMAPPED) != (contiguous == 0)) {
                    throw new AssertionError(String.format("gpaToHostStart/contiguousBytes(0x%x) = 0x%x/%d", addr, start, contiguous));
                }
                if (contiguous > 0 && model(memory, descs, true, addr, contiguous) != start) {
                    throw new AssertionError(String.format("contiguousBytes(0x%x) = %d is not all mapped", addr, contiguous));
                }
            } else {
                final long gpa = memory.uvaToGpa(addr);
                final long viaGpa = gpa == -1 ? GuestMemory.UNMAPPED : memory.gpaToHost(gpa, 1);
                if (viaGpa != model(memory, descs, false, addr, 1) && gpa != -1) {
                    throw new AssertionError(String.format("uvaToGpa(0x%x) = 0x%x leads elsewhere", addr, gpa));
                }
            }
        }
    }

    /** Host address of [addr, addr+len) by the model: the (unique) region containing the whole range. */
    private static long model(final GuestMemory memory, final List<Desc> descs, final boolean physical,
                              final long addr, final long len) {
        final BigInteger a = u(addr);
        final BigInteger end = a.add(u(len));
        for (int i = 0; i < descs.size(); i++) {
            final Desc d = descs.get(i);
            final BigInteger start = u(physical ? d.gpa : d.uva);
            final BigInteger limit = start.add(u(d.size));
            if (a.compareTo(start) >= 0 && a.compareTo(limit) < 0 && end.compareTo(limit) <= 0) {
                return memory.regions().get(i).hostAddr() + (addr - (physical ? d.gpa : d.uva));
            }
        }
        return GuestMemory.UNMAPPED;
    }

    private static long address(final FuzzedDataProvider data) {
        switch (data.consumeInt(0, 3)) {
            case 0:
                return data.consumeLong();
            case 1:
                return -data.consumeLong(0, 1 << 20); // near 2^64
            default:
                return data.consumeLong(0, 1L << 34) & ~0xFFFL;
        }
    }

    private static long size(final FuzzedDataProvider data) {
        return data.consumeBoolean() ? data.consumeLong(0, FILE + 4096) : data.consumeLong();
    }

    private static long offset(final FuzzedDataProvider data) {
        return data.consumeBoolean() ? data.consumeLong(0, FILE) & ~0xFFFL : data.consumeLong();
    }

    private static BigInteger u(final long v) {
        return new BigInteger(Long.toUnsignedString(v));
    }
}
