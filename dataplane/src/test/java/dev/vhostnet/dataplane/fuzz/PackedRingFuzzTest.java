package dev.vhostnet.dataplane.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.vhostnet.dataplane.virtq.DescriptorChain;
import dev.vhostnet.dataplane.virtq.PackedVirtqueue;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.QueueError;

import static dev.vhostnet.dataplane.fuzz.FuzzGuest.RING0;
import static dev.vhostnet.dataplane.fuzz.FuzzGuest.RING1;
import static dev.vhostnet.dataplane.fuzz.FuzzGuest.RING2;
import static dev.vhostnet.dataplane.fuzz.FuzzGuest.UVA;
import static dev.vhostnet.spec.PackedRingLayout.DESC_F_AVAIL;
import static dev.vhostnet.spec.PackedRingLayout.DESC_F_USED;
import static dev.vhostnet.spec.PackedRingLayout.DESC_SIZE;

/**
 * Fuzz target: the device side of a packed virtqueue over a descriptor ring, driver and device event areas
 * and indirect tables the fuzzer wrote (flags with any avail/used wrap bits, ids, lengths), with the guest
 * rewriting the ring between bursts. Same findings as {@link SplitRingFuzzTest}: any exception, a segment
 * outside guest memory, a failed pop that leaves the queue running, a buffer id out of range, or a device
 * write outside the descriptor ring and the device event area.
 */
class PackedRingFuzzTest {
    private static final FuzzGuest GUEST = new FuzzGuest();
    private static final DescriptorChain CHAIN = new DescriptorChain(8);

    @FuzzTest(maxDuration = "25s")
    void walk(final FuzzedDataProvider data) {
        GUEST.clear();
        final int size = data.consumeBoolean() ? 1 << data.consumeInt(0, 8) : data.consumeInt(1, FuzzGuest.MAX_QUEUE);
        final boolean eventIdx = data.consumeBoolean();
        final boolean indirect = data.consumeBoolean();
        final int base = data.consumeBoolean() ? data.consumeInt(0, size - 1) | (data.consumeBoolean() ? 0x8000 : 0)
            : data.consumeInt();

        final int descriptors = data.consumeInt(0, size);
        final boolean wrap = (base & 0x8000) != 0;
        final int start = base & 0x7FFF;
        for (int i = 0; i < descriptors; i++) {
            final int slot = (start + i) % size;
            final boolean w = start + i < size == wrap;
            writeDescriptor(data, RING0 + slot * DESC_SIZE, w);
        }
        final int tables = data.consumeInt(0, 3);
        for (int t = 0; t < tables; t++) {
            final int at = data.pickValue(new int[] {0x5000, 0x6000, FuzzGuest.REGION_A - 32, FuzzGuest.MEMORY - 256});
            final int n = data.consumeInt(1, 8);
            for (int i = 0; i < n && at + (i + 1) * DESC_SIZE <= FuzzGuest.MEMORY; i++) {
                writeDescriptor(data, at + i * DESC_SIZE, data.consumeBoolean());
            }
        }
        GUEST.putInt(RING1, data.consumeInt()); // driver event suppression: off/wrap, flags

        final PackedVirtqueue q = new PackedVirtqueue(1, new QueueCounters());
        q.setFeatures(eventIdx, indirect);
        q.setEnabled(true);
        final boolean odd = data.consumeInt(0, 15) == 0;
        final long ring = odd ? data.consumeLong() : UVA + RING0;
        final long driverArea = odd ? data.consumeLong() : UVA + RING1;
        final long deviceArea = odd ? data.consumeLong() : UVA + RING2;
        final QueueError started = q.start(GUEST.memory, size, ring, driverArea, deviceArea, base);
        if (started != QueueError.NONE) {
            FuzzGuest.checkBroken(q);
            return;
        }

        final int rounds = data.consumeInt(1, 6);
        for (int r = 0; r < rounds && q.isRunning(); r++) {
            if (data.consumeBoolean()) {
                final int at = RING0 + data.consumeInt(0, DESC_SIZE * size - 1);
                GUEST.putBytes(at, data.consumeBytes(data.consumeInt(1, 32)));
            }
            if (data.consumeBoolean()) {
                // The guest offers a few more descriptors at arbitrary slots (honest or not).
                final int more = data.consumeInt(1, 4);
                for (int i = 0; i < more; i++) {
                    writeDescriptor(data, RING0 + data.consumeInt(0, size - 1) * DESC_SIZE, data.consumeBoolean());
                }
            }
            final long mark = q.mark();
            int taken = 0;
            while (q.available() > 0 && taken < 3 * size) {
                if (!q.pop(CHAIN)) {
                    FuzzGuest.checkBroken(q);
                    break;
                }
                GUEST.checkChain(CHAIN);
                if (CHAIN.head() < 0 || CHAIN.head() >= size) {
                    throw new AssertionError("buffer id " + CHAIN.head() + " out of range");
                }
                q.addUsed(CHAIN, data.consumeInt(0, 1 << 16));
                taken++;
            }
            if (data.consumeInt(0, 7) == 0) {
                q.rewind(mark);
            }
            q.publishUsed();
            if (data.consumeBoolean()) {
                q.enableKicks();
            } else {
                q.disableKicks();
            }
        }
        final int position = q.stop();
        if ((position & 0x7FFF) >= size || ((position >>> 16) & 0x7FFF) >= size) {
            throw new AssertionError("stop() returned position 0x" + Integer.toHexString(position) + " for size " + size);
        }
        GUEST.checkDeviceWrites(new int[] {RING0, RING2}, new int[] {DESC_SIZE * size, 4});
    }

    /** A descriptor; {@code wrap}: marked available for that wrap counter value (mostly), or any flags. */
    private static void writeDescriptor(final FuzzedDataProvider data, final int at, final boolean wrap) {
        GUEST.putLong(at, FuzzGuest.gpa(data));
        GUEST.putInt(at + 8, FuzzGuest.length(data));
        GUEST.putShort(at + 12, data.consumeBoolean() ? data.consumeInt(0, FuzzGuest.MAX_QUEUE) : data.consumeInt(0, 0xFFFF));
        final int low = data.consumeInt(0, 7); // NEXT, WRITE, INDIRECT
        final int flags;
        if (data.consumeInt(0, 3) != 0) {
            flags = low | (wrap ? DESC_F_AVAIL : DESC_F_USED);
        } else {
            flags = data.consumeInt(0, 0xFFFF);
        }
        GUEST.putShort(at + 14, flags);
    }
}
