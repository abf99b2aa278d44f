package dev.vhostnet.dataplane.testing;

import dev.vhostnet.spec.PackedRingLayout;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The driver side of a packed ring, written straight from virtio 1.x section 2.8, for tests: makes chains
 * available (head flags written last) and reaps used buffers, advancing by each buffer's descriptor count.
 */
public final class DriverPackedRing {
    public final int size;
    public final long ringOffset;
    public final long driverEventOffset;
    public final long deviceEventOffset;
    private final TestGuest guest;
    private final UnsafeBuffer b;
    private int nextAvail;
    private boolean availWrap = true;
    private int nextUsed;
    private boolean usedWrap = true;
    private int free;
    private final int[] descsOfId;

    public DriverPackedRing(final TestGuest guest, final int size) {
        this.guest = guest;
        this.size = size;
        this.b = guest.bytes;
        ringOffset = guest.alloc((long) PackedRingLayout.DESC_SIZE * size, 16);
        driverEventOffset = guest.alloc(4, 4);
        deviceEventOffset = guest.alloc(4, 4);
        free = size;
        descsOfId = new int[size];
    }

    public int free() {
        return free;
    }

    /** Make a chain of buffers (gpa, len, writable) available as buffer {@code id}. */
    public void add(final int id, final long[] gpas, final int[] lens, final boolean[] writable) {
        final int n = gpas.length;
        if (n > free) {
            throw new IllegalStateException("ring full");
        }
        final int headPos = nextAvail;
        final boolean headWrap = availWrap;
        int headFlags = 0;
        for (int i = 0; i < n; i++) {
            final int at = (int) ringOffset + nextAvail * PackedRingLayout.DESC_SIZE;
            b.putLong(at + PackedRingLayout.DESC_ADDR, gpas[i]);
            b.putInt(at + PackedRingLayout.DESC_LEN, lens[i]);
            b.putShort(at + PackedRingLayout.DESC_ID, (short) id);
            int flags = (availWrap ? PackedRingLayout.DESC_F_AVAIL : PackedRingLayout.DESC_F_USED)
                | (writable[i] ? PackedRingLayout.DESC_F_WRITE : 0)
                | (i < n - 1 ? PackedRingLayout.DESC_F_NEXT : 0);
            if (i == 0) {
                headFlags = flags;
            } else {
                b.putShortVolatile(at + PackedRingLayout.DESC_FLAGS, (short) flags);
            }
            if (++nextAvail == size) {
                nextAvail = 0;
                availWrap = !availWrap;
            }
        }
        descsOfId[id] = n;
        free -= n;
        // The head last: until then the device must not see any of the chain.
        b.putShortVolatile((int) ringOffset + headPos * PackedRingLayout.DESC_SIZE + PackedRingLayout.DESC_FLAGS,
            (short) headFlags);
        if (headWrap != availWrap && headPos != 0) {
            assert true; // chain wrapped around the end of the ring
        }
    }

    /** Reap every used buffer without allocating (benchmarks); returns how many. */
    public int reapAll() {
        int n = 0;
        while (reapOne() >= 0) {
            n++;
        }
        return n;
    }

    /** Reap one used buffer: {id, len}, or null if none. */
    public int[] pollUsed() {
        final int at = (int) ringOffset + nextUsed * PackedRingLayout.DESC_SIZE;
        final int id = reapOne(); // acquire: the flags are read first, then the entry
        return id < 0 ? null : new int[] {id, b.getInt(at + PackedRingLayout.DESC_LEN)};
    }

    /** Reap one used buffer and return its id, or -1. */
    private int reapOne() {
        final int at = (int) ringOffset + nextUsed * PackedRingLayout.DESC_SIZE;
        final int flags = b.getShortVolatile(at + PackedRingLayout.DESC_FLAGS) & 0xFFFF;
        final boolean avail = (flags & PackedRingLayout.DESC_F_AVAIL) != 0;
        final boolean used = (flags & PackedRingLayout.DESC_F_USED) != 0;
        if (avail != usedWrap || used != usedWrap) {
            return -1;
        }
        final int id = b.getShort(at + PackedRingLayout.DESC_ID) & 0xFFFF;
        final int n = descsOfId[id];
        nextUsed += n;
        if (nextUsed >= size) {
            nextUsed -= size;
            usedWrap = !usedWrap;
        }
        free += n;
        return id;
    }
}
