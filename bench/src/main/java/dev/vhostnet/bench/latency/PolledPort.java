package dev.vhostnet.bench.latency;

import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.SplitRingLayout;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;

import static dev.vhostnet.spec.SplitRingLayout.AVAIL_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_F_NO_INTERRUPT;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_IDX;
import static dev.vhostnet.spec.SplitRingLayout.AVAIL_RING;
import static dev.vhostnet.spec.SplitRingLayout.DESC_ADDR;
import static dev.vhostnet.spec.SplitRingLayout.DESC_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_WRITE;
import static dev.vhostnet.spec.SplitRingLayout.DESC_LEN;
import static dev.vhostnet.spec.SplitRingLayout.DESC_NEXT;
import static dev.vhostnet.spec.SplitRingLayout.DESC_SIZE;
import static dev.vhostnet.spec.SplitRingLayout.USED_ELEM_ID;
import static dev.vhostnet.spec.SplitRingLayout.USED_ELEM_LEN;
import static dev.vhostnet.spec.SplitRingLayout.USED_ELEM_SIZE;
import static dev.vhostnet.spec.SplitRingLayout.USED_FLAGS;
import static dev.vhostnet.spec.SplitRingLayout.USED_F_NO_NOTIFY;
import static dev.vhostnet.spec.SplitRingLayout.USED_IDX;
import static dev.vhostnet.spec.SplitRingLayout.USED_RING;

/**
 * One virtio-net port driven the way a polling guest driver (a DPDK virtio PMD) drives it, on top of the
 * project's test front-end ({@link VirtioNetDriver} for the connection, guest memory and ring layout).
 *
 * <p>Differences from {@link VirtioNetDriver#negotiate()}, which accepts every protocol feature the
 * back-end offers: this adapter acks only what it implements ({@code REPLY_ACK}), so a back-end that
 * changes behaviour on a negotiated feature (DPDK's vhost library, for example, waits for
 * {@code SET_STATUS(DRIVER_OK)} before starting a device that negotiated {@code STATUS}) sees a
 * consistent front-end. Virtio features: {@code VERSION_1}, {@code VHOST_USER_F_PROTOCOL_FEATURES} and
 * optionally {@code MRG_RXBUF}; no EVENT_IDX, no indirect descriptors, so notification suppression is
 * the plain flag pair: both rings carry {@code VRING_AVAIL_F_NO_INTERRUPT} (no calls, ever: the driver
 * polls the used rings), and the driver kicks only when the device clears {@code VRING_USED_F_NO_NOTIFY}.
 *
 * <p>Every descriptor is pre-built once: TX descriptor {@code i} points at its own header+frame buffer,
 * RX descriptor {@code i} at its own receive buffer, and all RX descriptors are posted at start. The
 * per-frame operations ({@link #transmit}, {@link #pollRx}, {@link #repostRx}, {@link #reapTx}) write a
 * few ring fields and allocate nothing.
 */
public final class PolledPort implements AutoCloseable {
    /** virtio-net header with VERSION_1 (num_buffers present), no offloads: all zero. */
    public static final int HEADER = VirtioNetDriver.HEADER_LENGTH;
    public static final int RX_BUFFER = 2048;

    private final String name;
    private final VirtioNetDriver driver;
    private final int size;
    private final int mask;
    private final UnsafeBuffer image;
    private final UnsafeBuffer txDesc;
    private final UnsafeBuffer txAvail;
    private final UnsafeBuffer txUsed;
    private final UnsafeBuffer rxDesc;
    private final UnsafeBuffer rxAvail;
    private final UnsafeBuffer rxUsed;
    private final DriverSplitQueue txQueue;
    private final DriverSplitQueue rxQueue;
    /** Image offsets of each descriptor's buffer. */
    private final long[] txBuf;
    private final long[] rxBuf;
    private final long features;
    private final long protocolFeatures;
    private int txAvailIdx;
    private int txLastUsed;
    private int rxAvailIdx;
    private int rxLastUsed;
    private int nextTxDesc;
    private long kicks;
    /** Filled by {@link #pollRx()}: the used entry's head and length. */
    private int lastRxId;
    private int lastRxLen;

    private PolledPort(final String name, final VirtioNetDriver driver, final long features, final long protocolFeatures) {
        this.name = name;
        this.driver = driver;
        this.features = features;
        this.protocolFeatures = protocolFeatures;
        final GuestMemoryImage memory = driver.memory();
        this.image = memory.buffer();
        this.txQueue = driver.tx();
        this.rxQueue = driver.rx();
        this.size = txQueue.size();
        this.mask = size - 1;
        txDesc = ringView(memory, txQueue.descUva(), SplitRingLayout.descTableSize(size));
        txAvail = ringView(memory, txQueue.availUva(), SplitRingLayout.availRingSize(size));
        txUsed = ringView(memory, txQueue.usedUva(), SplitRingLayout.usedRingSize(size));
        rxDesc = ringView(memory, rxQueue.descUva(), SplitRingLayout.descTableSize(size));
        rxAvail = ringView(memory, rxQueue.availUva(), SplitRingLayout.availRingSize(size));
        rxUsed = ringView(memory, rxQueue.usedUva(), SplitRingLayout.usedRingSize(size));
        txBuf = new long[size];
        rxBuf = new long[size];
    }

    private static UnsafeBuffer ringView(final GuestMemoryImage memory, final long uva, final long length) {
        return new UnsafeBuffer(memory.address(uva - memory.uvaBase()), (int) length);
    }

    /** What to negotiate. */
    public record Settings(boolean mergeable, int queueSize, int frameLength) {
        public static Settings defaults() {
            return new Settings(false, 256, 64);
        }
    }

    /**
     * Connect to {@code socket}, negotiate (QEMU's order: SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES,
     * SET_FEATURES, SET_MEM_TABLE, per ring NUM/BASE/ADDR/KICK/CALL, SET_VRING_ENABLE), post every RX buffer
     * and enable the rings.
     */
    public static PolledPort open(final String name, final Path socket, final Settings settings) throws IOException {
        final int memMiB = Math.max(4, (int) (((long) settings.queueSize() * (RX_BUFFER + 256) * 2 >> 20) + 2));
        final VirtioNetDriver driver = VirtioNetDriver.connect(socket,
            VirtioNetDriver.Options.defaults().queueSize(settings.queueSize()).memoryMiB(memMiB)
                .eventIdx(false).indirect(false).mergeable(settings.mergeable()));
        try {
            final VhostUserFrontend fe = driver.frontend();
            fe.setOwner();
            final long offered = fe.getFeatures();
            long want = VirtioFeature.bit(VirtioFeature.VERSION_1) | VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
            if (settings.mergeable()) {
                want |= VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF);
            }
            if ((offered & want) != want) {
                throw new IOException(name + ": back-end offers features 0x" + Long.toHexString(offered)
                    + ", missing 0x" + Long.toHexString(want & ~offered));
            }
            final long protocolOffered = fe.getProtocolFeatures();
            final long protocol = protocolOffered & ProtocolFeature.bit(ProtocolFeature.REPLY_ACK);
            fe.setProtocolFeatures(protocol);
            fe.setFeatures(want);
            fe.setMemTable(driver.memoryTable());
            final PolledPort port = new PolledPort(name, driver, want, protocol);
            port.layOut(settings.frameLength());
            driver.setUpRing(driver.rx()); // q.availIdx() is 0: BASE 0, and eventIdx() is false (not negotiated via the driver)
            driver.setUpRing(driver.tx());
            driver.enableRings(true);
            return port;
        } catch (final IOException | RuntimeException e) {
            driver.close();
            throw e;
        }
    }

    private void layOut(final int frameLength) {
        final GuestMemoryImage memory = driver.memory();
        txAvail.putShortVolatile(AVAIL_FLAGS, (short) AVAIL_F_NO_INTERRUPT);
        rxAvail.putShortVolatile(AVAIL_FLAGS, (short) AVAIL_F_NO_INTERRUPT);
        for (int i = 0; i < size; i++) {
            txBuf[i] = memory.allocate(HEADER + Math.max(frameLength, 64), 64);
            writeDesc(txDesc, i, memory.gpa(txBuf[i]), HEADER + frameLength, 0);
            rxBuf[i] = memory.allocate(RX_BUFFER, 64);
            writeDesc(rxDesc, i, memory.gpa(rxBuf[i]), RX_BUFFER, DESC_F_WRITE);
            rxAvail.putShort(AVAIL_RING + 2 * i, (short) i);
        }
        rxAvailIdx = size;
        rxAvail.putShortVolatile(AVAIL_IDX, (short) rxAvailIdx);
    }

    private static void writeDesc(final UnsafeBuffer table, final int i, final long gpa, final int len, final int flags) {
        final int at = i * DESC_SIZE;
        table.putLong(at + DESC_ADDR, gpa);
        table.putInt(at + DESC_LEN, len);
        table.putShort(at + DESC_FLAGS, (short) flags);
        table.putShort(at + DESC_NEXT, (short) 0);
    }

    public String name() {
        return name;
    }

    public long features() {
        return features;
    }

    public long protocolFeatures() {
        return protocolFeatures;
    }

    public long kicks() {
        return kicks;
    }

    public int queueSize() {
        return size;
    }

    // ---------------------------------------------------------------------------------------------
    // TX

    /** The guest memory of the TX buffer the next {@link #transmit} sends: header (zeroed) then the frame. */
    public int nextTxFrameOffset() {
        return (int) txBuf[nextTxDesc] + HEADER;
    }

    public UnsafeBuffer image() {
        return image;
    }

    /** Whether a TX descriptor is free (the device returned all but at most size-1). */
    public boolean txRoom() {
        return ((txAvailIdx - txLastUsed) & 0xFFFF) < size;
    }

    /**
     * Make the frame written at {@link #nextTxFrameOffset()} available (release store of avail->idx) and kick
     * if the device asked for kicks. Returns true if it kicked.
     */
    public boolean transmit() {
        txAvail.putShort(AVAIL_RING + 2 * (txAvailIdx & mask), (short) nextTxDesc);
        nextTxDesc = (nextTxDesc + 1) & mask;
        txAvailIdx = (txAvailIdx + 1) & 0xFFFF;
        txAvail.putShortVolatile(AVAIL_IDX, (short) txAvailIdx);
        return kickIfWanted(txUsed, txQueue);
    }

    private boolean kickIfWanted(final UnsafeBuffer used, final DriverSplitQueue q) {
        VarHandle.fullFence(); // avail->idx store before the flags load (StoreLoad), as the spec requires
        if ((used.getShortVolatile(USED_FLAGS) & USED_F_NO_NOTIFY) == 0) {
            q.kickFd().signal();
            kicks++;
            return true;
        }
        return false;
    }

    /** Collect every TX completion; returns how many there were. */
    public int reapTx() {
        final int usedIdx = txUsed.getShortVolatile(USED_IDX) & 0xFFFF;
        final int n = (usedIdx - txLastUsed) & 0xFFFF;
        txLastUsed = usedIdx;
        return n;
    }

    /** TX chains the device still holds. */
    public int txInFlight() {
        return (txAvailIdx - txLastUsed) & 0xFFFF;
    }

    // ---------------------------------------------------------------------------------------------
    // RX

    /** Whether the device has published a used RX entry we have not consumed (acquire load of used->idx). */
    public boolean rxReady() {
        return (rxUsed.getShortVolatile(USED_IDX) & 0xFFFF) != rxLastUsed;
    }

    /**
     * Consume the next used RX entry (call after {@link #rxReady()}); returns the image offset of the frame
     * (after the virtio-net header). {@link #lastRxLength()} gives the frame length.
     */
    public int pollRx() {
        final int at = USED_RING + USED_ELEM_SIZE * (rxLastUsed & mask);
        lastRxId = rxUsed.getInt(at + USED_ELEM_ID);
        lastRxLen = rxUsed.getInt(at + USED_ELEM_LEN);
        rxLastUsed = (rxLastUsed + 1) & 0xFFFF;
        if (lastRxId < 0 || lastRxId >= size) {
            throw new IllegalStateException(name + ": device returned RX head " + lastRxId);
        }
        return (int) rxBuf[lastRxId] + HEADER;
    }

    public int lastRxLength() {
        return lastRxLen - HEADER;
    }

    /** num_buffers of the last received frame's header (1 unless mergeable buffers were used). */
    public int lastRxNumBuffers() {
        return image.getShort((int) rxBuf[lastRxId] + 10) & 0xFFFF;
    }

    /** Give the last polled RX buffer back to the device. */
    public void repostRx() {
        rxAvail.putShort(AVAIL_RING + 2 * (rxAvailIdx & mask), (short) lastRxId);
        rxAvailIdx = (rxAvailIdx + 1) & 0xFFFF;
        rxAvail.putShortVolatile(AVAIL_IDX, (short) rxAvailIdx);
        kickIfWanted(rxUsed, rxQueue);
    }

    /** Whether the device currently asks for TX kicks (VRING_USED_F_NO_NOTIFY clear). */
    public boolean deviceWantsTxKicks() {
        return (txUsed.getShortVolatile(USED_FLAGS) & USED_F_NO_NOTIFY) == 0;
    }

    @Override
    public void close() throws IOException {
        driver.close();
    }
}
