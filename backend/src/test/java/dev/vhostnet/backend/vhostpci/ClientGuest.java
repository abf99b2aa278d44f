package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VirtqInfo;

import java.util.List;

/**
 * The client's guest as a vhost-pci client hands it over: 4 MiB of memfd-backed guest memory holding an RX and
 * a TX split ring (size 64) with their kick and call eventfds, written by the test as a guest driver would (or
 * as a hostile one would). {@link #rings()} describes both rings for DEVICE_INFO ADD.
 */
final class ClientGuest implements AutoCloseable {
    static final long FEATURES = VirtioFeature.bit(VirtioFeature.VERSION_1);
    static final int SIZE = 64;
    static final int KICK_CALL = VhostPci.FD_KICK | VhostPci.FD_CALL;

    /** One DEVICE_INFO ADD entry, every field the test's choice. */
    record Ring(int index, int lastAvail, int lastUsed, int stateFlags, int size, int format, int fdFlags,
                long desc, long driver, long device, long log) {
        static Ring of(final DriverSplitQueue q) {
            return new Ring(q.index(), q.availIdx(), q.usedIdx(), 0, q.size(), VhostPci.FORMAT_SPLIT, KICK_CALL,
                q.descUva(), q.availUva(), q.usedUva(), 0);
        }

        Ring index(final int i) {
            return new Ring(i, lastAvail, lastUsed, stateFlags, size, format, fdFlags, desc, driver, device, log);
        }

        Ring size(final int s) {
            return new Ring(index, lastAvail, lastUsed, stateFlags, s, format, fdFlags, desc, driver, device, log);
        }

        Ring format(final int f) {
            return new Ring(index, lastAvail, lastUsed, stateFlags, size, f, fdFlags, desc, driver, device, log);
        }

        Ring fdFlags(final int f) {
            return new Ring(index, lastAvail, lastUsed, stateFlags, size, format, f, desc, driver, device, log);
        }

        Ring stateFlags(final int f) {
            return new Ring(index, lastAvail, lastUsed, f, size, format, fdFlags, desc, driver, device, log);
        }

        Ring positions(final int avail, final int used) {
            return new Ring(index, avail, used, stateFlags, size, format, fdFlags, desc, driver, device, log);
        }

        Ring at(final long d, final long a, final long u) {
            return new Ring(index, lastAvail, lastUsed, stateFlags, size, format, fdFlags, d, a, u, log);
        }

        void writeTo(final VirtqInfo v) {
            v.index(index).lastAvailIdx(lastAvail).lastUsedIdx(lastUsed).stateFlags(stateFlags).size(size)
                .format(format).fdFlags(fdFlags).descAddr(desc).driverAddr(driver).deviceAddr(device).logAddr(log);
        }
    }

    final GuestMemoryImage memory;
    final DriverSplitQueue rx;
    final DriverSplitQueue tx;

    ClientGuest() {
        memory = GuestMemoryImage.create(4);
        DriverSplitQueue r = null;
        try {
            r = new DriverSplitQueue(memory, VirtioNetDriver.RX, SIZE);
            tx = new DriverSplitQueue(memory, VirtioNetDriver.TX, SIZE);
            rx = r;
        } catch (final RuntimeException e) {
            if (r != null) {
                r.close();
            }
            memory.close();
            throw e;
        }
    }

    GuestMemoryImage.MemoryRegion region() {
        return memory.region();
    }

    /** Both rings as a well-behaved client describes them. */
    List<Ring> rings() {
        return List.of(Ring.of(rx), Ring.of(tx));
    }

    /** The eventfds that go with {@link #rings()}: RX kick, RX call, TX kick, TX call. */
    int[] ringFds() {
        return new int[] {rx.kickFd().fd(), rx.callFd().fd(), tx.kickFd().fd(), tx.callFd().fd()};
    }

    /** Guest physical address of a fresh buffer of {@code length} bytes. */
    long buffer(final int length) {
        return memory.gpa(memory.allocate(length, 16));
    }

    /** Put a TX frame (virtio-net header + frame) on the TX ring and kick. */
    void transmit(final byte[] frame) {
        final int h = VirtioNetDriver.HEADER_LENGTH;
        final long off = memory.allocate(h + frame.length, 16);
        memory.buffer().putBytes((int) off + h, frame);
        tx.add(List.of(DriverSplitQueue.Segment.readable(memory.gpa(off), h + frame.length)), false);
        tx.publish();
        tx.kick();
    }

    /** Post one 2 KiB receive buffer; its offset in the image. */
    long postReceive() {
        final long off = memory.allocate(2048, 16);
        rx.add(List.of(DriverSplitQueue.Segment.writable(memory.gpa(off), 2048)), false);
        rx.publish();
        return off;
    }

    /** The frame the device side wrote into the buffer at {@code offset} (after the header). */
    byte[] received(final long offset, final int length) {
        final byte[] got = new byte[length];
        memory.buffer().getBytes((int) offset + VirtioNetDriver.HEADER_LENGTH, got);
        return got;
    }

    @Override
    public void close() {
        try {
            rx.close();
            tx.close();
        } finally {
            memory.close();
        }
    }
}
