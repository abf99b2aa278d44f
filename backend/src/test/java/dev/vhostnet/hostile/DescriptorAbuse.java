package dev.vhostnet.hostile;

import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static dev.vhostnet.spec.SplitRingLayout.DESC_F_INDIRECT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_NEXT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_WRITE;
import static dev.vhostnet.spec.SplitRingLayout.DESC_SIZE;

/**
 * Garbage a guest writes into its split TX ring once traffic flows, each with the error the queue must break
 * with ({@code null}: any error). One catalogue for both hostile suites, so the vhost-user port and the
 * vhost-pci device side (which walks a client's rings with the same virtqueue code) face the same abuses.
 *
 * @param name     the case name
 * @param expected the queue error, or null for any
 * @param indirect whether the driver negotiates VIRTIO_F_RING_INDIRECT_DESC for this case
 * @param abuse    what the guest writes; {@code head} is a descriptor index the suite's driver leaves unused
 */
public record DescriptorAbuse(String name, QueueError expected, boolean indirect, Abuse abuse) {

    /** What the guest does to its TX ring. */
    public interface Abuse {
        void run(DriverSplitQueue tx, GuestMemoryImage m, int head);
    }

    /** Guest physical address of a fresh 64-byte buffer holding a frame header (for chains built by hand). */
    public static long frame(final GuestMemoryImage m) {
        return m.gpa(m.allocate(64, 16));
    }

    /** Guest physical address of a fresh zeroed indirect table of {@code n} descriptors. */
    static long table(final GuestMemoryImage m, final int n) {
        return m.gpa(m.allocate((long) DESC_SIZE * n, 16));
    }

    public static List<DescriptorAbuse> catalogue() {
        final List<DescriptorAbuse> all = new ArrayList<>();
        add(all, "avail ring entry beyond the queue size", QueueError.HEAD_OUT_OF_RANGE, (tx, m, d) -> tx.pushAvail(tx.size() + 3));
        add(all, "avail ring entry 0xFFFF", QueueError.HEAD_OUT_OF_RANGE, (tx, m, d) -> tx.pushAvail(0xFFFF));
        add(all, "next index beyond the table", QueueError.NEXT_OUT_OF_RANGE, (tx, m, d) -> {
            tx.writeRawDescriptor(d, frame(m), 64, DESC_F_NEXT, 4000);
            tx.pushAvail(d);
        });
        add(all, "descriptor loop", QueueError.CHAIN_TOO_LONG, (tx, m, d) -> {
            tx.writeRawDescriptor(d, frame(m), 64, DESC_F_NEXT, d + 1);
            tx.writeRawDescriptor(d + 1, frame(m), 64, DESC_F_NEXT, d);
            tx.pushAvail(d);
        });
        add(all, "descriptor pointing at itself", QueueError.CHAIN_TOO_LONG, (tx, m, d) -> {
            tx.writeRawDescriptor(d, frame(m), 64, DESC_F_NEXT, d);
            tx.pushAvail(d);
        });
        add(all, "buffer outside guest memory", QueueError.BUFFER_UNMAPPED, (tx, m, d) -> {
            tx.writeRawDescriptor(d, m.gpa(m.size()) + 4096, 64, 0, 0);
            tx.pushAvail(d);
        });
        add(all, "buffer address + length wrapping around 2^64", QueueError.BUFFER_UNMAPPED, (tx, m, d) -> {
            tx.writeRawDescriptor(d, -16L, 64, 0, 0);
            tx.pushAvail(d);
        });
        add(all, "buffer length 2^32-1 running past the end of memory", QueueError.BUFFER_UNMAPPED, (tx, m, d) -> {
            tx.writeRawDescriptor(d, m.gpa(m.size() - 4096), -1, 0, 0);
            tx.pushAvail(d);
        });
        add(all, "buffer at a front-end virtual address (not guest physical)", QueueError.BUFFER_UNMAPPED, (tx, m, d) -> {
            tx.writeRawDescriptor(d, m.uva(0x100000), 64, 0, 0);
            tx.pushAvail(d);
        });
        add(all, "device-readable after device-writable", QueueError.READABLE_AFTER_WRITABLE, (tx, m, d) -> {
            tx.writeRawDescriptor(d, frame(m), 64, DESC_F_NEXT | DESC_F_WRITE, d + 1);
            tx.writeRawDescriptor(d + 1, frame(m), 64, 0, 0);
            tx.pushAvail(d);
        });
        add(all, "indirect table with the NEXT flag", QueueError.INDIRECT_WITH_NEXT, (tx, m, d) -> {
            tx.writeRawDescriptor(d, table(m, 2), 32, DESC_F_INDIRECT | DESC_F_NEXT, d + 1);
            tx.writeRawDescriptor(d + 1, frame(m), 64, 0, 0);
            tx.pushAvail(d);
        });
        add(all, "nested indirect table", QueueError.NESTED_INDIRECT, (tx, m, d) -> {
            final long inner = table(m, 1);
            final long outer = table(m, 1);
            m.buffer().putLong((int) (outer - m.gpaBase()), inner);
            m.buffer().putInt((int) (outer - m.gpaBase()) + 8, 16);
            m.buffer().putShort((int) (outer - m.gpaBase()) + 12, (short) DESC_F_INDIRECT);
            tx.writeRawDescriptor(d, outer, 16, DESC_F_INDIRECT, 0);
            tx.pushAvail(d);
        });
        for (final int len : new int[] {0, 24, DESC_SIZE * 32768 + DESC_SIZE, Integer.MIN_VALUE}) {
            add(all, "indirect table of " + Integer.toUnsignedString(len) + " bytes", QueueError.BAD_INDIRECT_SIZE, (tx, m, d) -> {
                tx.writeRawDescriptor(d, table(m, 2), len, DESC_F_INDIRECT, 0);
                tx.pushAvail(d);
            });
        }
        add(all, "indirect table outside guest memory", QueueError.INDIRECT_UNMAPPED, (tx, m, d) -> {
            tx.writeRawDescriptor(d, m.gpa(m.size()) + 65536, 64, DESC_F_INDIRECT, 0);
            tx.pushAvail(d);
        });
        add(all, "indirect table running past the end of memory", QueueError.INDIRECT_UNMAPPED, (tx, m, d) -> {
            tx.writeRawDescriptor(d, m.gpa(m.size() - 32), 64, DESC_F_INDIRECT, 0);
            tx.pushAvail(d);
        });
        add(all, "indirect table of random bytes", null, (tx, m, d) -> {
            final long t = table(m, 64);
            final byte[] junk = new byte[DESC_SIZE * 64];
            new Random(5).nextBytes(junk);
            m.buffer().putBytes((int) (t - m.gpaBase()), junk);
            tx.writeRawDescriptor(d, t, junk.length, DESC_F_INDIRECT, 0);
            tx.pushAvail(d);
        });
        add(all, "loop inside an indirect table", QueueError.CHAIN_TOO_LONG, (tx, m, d) -> {
            final long t = table(m, 2);
            final int at = (int) (t - m.gpaBase());
            for (int i = 0; i < 2; i++) {
                m.buffer().putLong(at + i * 16, frame(m));
                m.buffer().putInt(at + i * 16 + 8, 32);
                m.buffer().putShort(at + i * 16 + 12, (short) DESC_F_NEXT);
                m.buffer().putShort(at + i * 16 + 14, (short) (1 - i));
            }
            tx.writeRawDescriptor(d, t, 32, DESC_F_INDIRECT, 0);
            tx.pushAvail(d);
        });
        add(all, "next index beyond an indirect table", QueueError.NEXT_OUT_OF_RANGE, (tx, m, d) -> {
            final long t = table(m, 2);
            final int at = (int) (t - m.gpaBase());
            m.buffer().putLong(at, frame(m));
            m.buffer().putInt(at + 8, 32);
            m.buffer().putShort(at + 12, (short) DESC_F_NEXT);
            m.buffer().putShort(at + 14, (short) 2);
            tx.writeRawDescriptor(d, t, 32, DESC_F_INDIRECT, 0);
            tx.pushAvail(d);
        });
        all.add(new DescriptorAbuse("indirect descriptor without RING_INDIRECT_DESC", QueueError.INDIRECT_NOT_NEGOTIATED,
            false, (tx, m, d) -> {
                tx.writeRawDescriptor(d, table(m, 1), 16, DESC_F_INDIRECT, 0);
                tx.pushAvail(d);
            }));
        add(all, "available index jumping by queue size + 1", QueueError.AVAIL_IDX_JUMP,
            (tx, m, d) -> tx.setAvailIdx(tx.availIdx() + tx.size() + 1));
        add(all, "available index going backwards", QueueError.AVAIL_IDX_JUMP, (tx, m, d) -> tx.setAvailIdx(tx.availIdx() - 1));
        add(all, "available index jumping by 0x8000", QueueError.AVAIL_IDX_JUMP, (tx, m, d) -> tx.setAvailIdx(tx.availIdx() + 0x8000));
        return Collections.unmodifiableList(all);
    }

    private static void add(final List<DescriptorAbuse> all, final String name, final QueueError expected, final Abuse abuse) {
        all.add(new DescriptorAbuse(name, expected, true, abuse));
    }
}
