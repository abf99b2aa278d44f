package dev.vhostnet.dataplane.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.vhostnet.dataplane.virtq.DescriptorChain;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.SplitVirtqueue;

import static dev.vhostnet.dataplane.fuzz.FuzzGuest.RING0;
import static dev.vhostnet.dataplane.fuzz.FuzzGuest.RING1;
import static dev.vhostnet.dataplane.fuzz.FuzzGuest.RING2;
import static dev.vhostnet.dataplane.fuzz.FuzzGuest.UVA;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_IDX;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_RING;
import static dev.vhostnet.spec.SplitRingLayout.DESC_SIZE;

/**
 * Fuzz target: the device side of a split virtqueue walking rings whose every byte the fuzzer chose (queue
 * size, features, base, descriptors, indirect tables, avail ring and index), with the guest rewriting ring
 * bytes between bursts, through available / pop / addUsed / mark / rewind / publishUsed / kick suppression.
 *
 * <p>A finding is any exception (a violation must surface as pop() returning false with a {@link QueueError},
 * never as an exception), a chain segment outside guest memory, a failed pop that leaves the queue running,
 * or a device write outside the used ring.
 */
class SplitRingFuzzTest {
    private static final FuzzGuest GUEST = new FuzzGuest();
    private static final DescriptorChain CHAIN = new DescriptorChain(8);

    @FuzzTest(maxDuration = "25s")
    void walk(final FuzzedDataProvider data) {
        GUEST.clear();
        final int size = 1 << data.consumeInt(0, 8);
        final boolean eventIdx = data.consumeBoolean();
        final boolean indirect = data.consumeBoolean();
        final int base = data.consumeInt(0, 0xFFFF);

        final int descriptors = data.consumeInt(0, size);
        for (int i = 0; i < descriptors; i++) {
            writeDescriptor(data, RING0 + i * DESC_SIZE);
        }
        // Indirect tables (and buffers) elsewhere in guest memory, straddling the region boundary included.
        final int tables = data.consumeInt(0, 3);
        for (int t = 0; t < tables; t++) {
            final int at = data.pickValue(new int[] {0x4000, 0x5000, FuzzGuest.REGION_A - 32, FuzzGuest.MEMORY - 256});
            final int n = data.consumeInt(1, 8);
            for (int i = 0; i < n && at + (i + 1) * DESC_SIZE <= FuzzGuest.MEMORY; i++) {
                writeDescriptor(data, at + i * DESC_SIZE);
            }
        }
        GUEST.putShort(RING1 + AVAIL_FLAGS, data.consumeInt(0, 1));
        final int heads = data.consumeInt(0, size);
        for (int i = 0; i < heads; i++) {
            GUEST.putShort(RING1 + AVAIL_RING + 2 * ((base + i) & (size - 1)),
                data.consumeBoolean() ? data.consumeInt(0, size - 1) : data.consumeInt(0, 0xFFFF));
        }
        GUEST.putShort(RING1 + AVAIL_IDX, data.consumeBoolean() ? (base + heads) & 0xFFFF : data.consumeInt(0, 0xFFFF));

        final SplitVirtqueue q = new SplitVirtqueue(1, new QueueCounters());
        q.setFeatures(eventIdx, indirect);
        q.setEnabled(true);
        final boolean odd = data.consumeInt(0, 15) == 0; // now and then, ring addresses the fuzzer picks
        final long desc = odd ? data.consumeLong() : UVA + RING0;
        final long avail = odd ? data.consumeLong() : UVA + RING1;
        final long used = odd ? data.consumeLong() : UVA + RING2;
        final QueueError started = q.start(GUEST.memory, size, desc, avail, used, base);
        if (started != QueueError.NONE) {
            FuzzGuest.checkBroken(q);
            return;
        }

        final int rounds = data.consumeInt(1, 6);
        for (int r = 0; r < rounds && q.isRunning(); r++) {
            if (data.consumeBoolean()) {
                // The guest scribbles over its rings while the device works.
                final int at = data.pickValue(new int[] {RING0, RING1, RING2}) + data.consumeInt(0, 2047);
                GUEST.putBytes(at, data.consumeBytes(data.consumeInt(1, 32)));
            }
            final long mark = q.mark();
            int taken = 0;
            int n = q.available();
            if (n > size) {
                throw new AssertionError("available() = " + n + " exceeds the queue size " + size);
            }
            while (n > 0 && taken < 2 * size) {
                if (!q.pop(CHAIN)) {
                    FuzzGuest.checkBroken(q);
                    break;
                }
                GUEST.checkChain(CHAIN);
                if (CHAIN.head() < 0 || CHAIN.head() >= size) {
                    throw new AssertionError("head " + CHAIN.head() + " out of range");
                }
                q.addUsed(CHAIN, data.consumeInt(0, 1 << 16));
                taken++;
                n = q.available();
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
        q.stop();
        // The device writes only the used ring (flags, idx, entries, avail_event).
        GUEST.checkDeviceWrites(new int[] {RING2}, new int[] {6 + 8 * size});
    }

    private static void writeDescriptor(final FuzzedDataProvider data, final int at) {
        GUEST.putLong(at, FuzzGuest.gpa(data));
        GUEST.putInt(at + 8, FuzzGuest.length(data));
        GUEST.putShort(at + 12, data.consumeBoolean() ? data.consumeInt(0, 7) : data.consumeInt(0, 0xFFFF));
        GUEST.putShort(at + 14, data.consumeBoolean() ? data.consumeInt(0, 15) : data.consumeInt(0, 0xFFFF));
    }
}
