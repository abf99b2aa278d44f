package dev.vhostnet.frontend;

import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.VirtioDeviceStatus;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import dev.vhostnet.spec.VirtioNetHeader;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A virtio-net driver over vhost-user: negotiates the way QEMU does, lays out RX (0) and TX (1) in its
 * own guest memory, sends frames with a virtio-net header and receives them, mergeable or not.
 */
public final class VirtioNetDriver implements AutoCloseable {
    public static final int RX = 0;
    public static final int TX = 1;
    /** With VIRTIO_F_VERSION_1 the header always carries num_buffers. */
    public static final int HEADER_LENGTH = VirtioNetHeader.LENGTH;

    private final Options options;
    private final VhostUserFrontend frontend;
    private final GuestMemoryImage memory;
    private final DriverSplitQueue rx;
    private final DriverSplitQueue tx;
    /** Per head: the image offsets and lengths of the buffers the chain points to. */
    private final long[][] rxBuffers;
    private final int[][] rxLengths;
    private final long[][] txBuffers;
    private long features;
    private long protocolFeatures;

    /** How the driver negotiates and lays out its queues. */
    public static final class Options {
        boolean mergeable = true;
        boolean eventIdx = true;
        boolean indirect = true;
        boolean replyAck = true;
        boolean enableRings = true;
        int queueSize = 256;
        int memoryMiB = 8;
        int memoryWindows = 1;
        boolean memSlots;
        GuestMemoryImage.Backing backing = GuestMemoryImage.Backing.SEALABLE;

        public static Options defaults() {
            return new Options();
        }

        public Options mergeable(final boolean on) {
            mergeable = on;
            return this;
        }

        public Options eventIdx(final boolean on) {
            eventIdx = on;
            return this;
        }

        public Options indirect(final boolean on) {
            indirect = on;
            return this;
        }

        public Options replyAck(final boolean on) {
            replyAck = on;
            return this;
        }

        /** Whether {@link #negotiate()} ends with SET_VRING_ENABLE 1 on both rings. */
        public Options enableRings(final boolean on) {
            enableRings = on;
            return this;
        }

        public Options queueSize(final int size) {
            queueSize = size;
            return this;
        }

        /** Describe the image to the back-end as this many equal, adjacent regions (one fd each). */
        public Options memoryWindows(final int windows) {
            memoryWindows = windows;
            return this;
        }

        /** Send the memory one region at a time with ADD_MEM_REG (as QEMU does with CONFIGURE_MEM_SLOTS). */
        public Options memSlots(final boolean on) {
            memSlots = on;
            return this;
        }

        /** How the guest memfd is created (sealable by default; see {@link GuestMemoryImage.Backing}). */
        public Options backing(final GuestMemoryImage.Backing how) {
            backing = how;
            return this;
        }

        public Options memoryMiB(final int mib) {
            memoryMiB = mib;
            return this;
        }
    }

    /** A received frame: payload (header removed), its header's num_buffers and the used length total. */
    public record RxFrame(byte[] payload, int numBuffers, int flags, int gsoType) {
    }

    private VirtioNetDriver(final Options options, final VhostUserFrontend frontend, final GuestMemoryImage memory) {
        this.options = options;
        this.frontend = frontend;
        this.memory = memory;
        this.rx = new DriverSplitQueue(memory, RX, options.queueSize);
        this.tx = new DriverSplitQueue(memory, TX, options.queueSize);
        this.rxBuffers = new long[options.queueSize][];
        this.rxLengths = new int[options.queueSize][];
        this.txBuffers = new long[options.queueSize][];
    }

    /** Connect and negotiate; the rings are ready for traffic when this returns. */
    public static VirtioNetDriver start(final Path socket, final Options options) throws IOException {
        final VirtioNetDriver driver = connect(socket, options);
        try {
            driver.negotiate();
        } catch (final IOException | RuntimeException e) {
            driver.close();
            throw e;
        }
        return driver;
    }

    /** Connect only: guest memory and queues laid out, nothing negotiated. */
    public static VirtioNetDriver connect(final Path socket, final Options options) throws IOException {
        final GuestMemoryImage memory = GuestMemoryImage.create(options.memoryMiB, GuestMemoryImage.DEFAULT_GPA_BASE,
            GuestMemoryImage.DEFAULT_UVA_BASE, options.backing);
        try {
            return new VirtioNetDriver(options, VhostUserFrontend.connect(socket), memory);
        } catch (final IOException | RuntimeException e) {
            memory.close();
            throw e;
        }
    }

    public long wantedFeatures() {
        long f = VirtioFeature.bit(VirtioFeature.VERSION_1) | VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
        if (options.mergeable) {
            f |= VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF);
        }
        if (options.eventIdx) {
            f |= VirtioFeature.bit(VirtioFeature.RING_EVENT_IDX);
        }
        if (options.indirect) {
            f |= VirtioFeature.bit(VirtioFeature.RING_INDIRECT_DESC);
        }
        return f;
    }

    /**
     * The QEMU sequence: SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES, then at device start
     * SET_FEATURES, SET_MEM_TABLE and per ring NUM, BASE, ADDR, KICK, CALL, and finally SET_VRING_ENABLE.
     */
    public void negotiate() throws IOException {
        frontend.setOwner();
        final long offered = frontend.getFeatures();
        features = offered & wantedFeatures();
        if (VirtioFeature.has(features, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)) {
            long wantedProtocol = frontend.getProtocolFeatures() & ~ProtocolFeature.bit(ProtocolFeature.REPLY_ACK);
            if (options.replyAck) {
                wantedProtocol |= ProtocolFeature.bit(ProtocolFeature.REPLY_ACK);
            }
            protocolFeatures = wantedProtocol;
            frontend.setProtocolFeatures(protocolFeatures);
        }
        frontend.setFeatures(features);
        if (options.memSlots) {
            for (final GuestMemoryImage.MemoryRegion r : memoryTable()) {
                frontend.addMemReg(r);
            }
        } else {
            frontend.setMemTable(memoryTable());
        }
        setUpRing(rx);
        setUpRing(tx);
        if (options.enableRings) {
            enableRings(true);
        }
        if (ProtocolFeature.has(protocolFeatures, ProtocolFeature.STATUS)) {
            // A back-end that tracks the device status (DPDK's does) starts the device on DRIVER_OK.
            frontend.setStatus(VirtioDeviceStatus.ACKNOWLEDGE | VirtioDeviceStatus.DRIVER
                | VirtioDeviceStatus.FEATURES_OK | VirtioDeviceStatus.DRIVER_OK);
        }
    }

    /** The image as {@link Options#memoryWindows(int)} regions, adjacent in both address spaces. */
    public List<GuestMemoryImage.MemoryRegion> memoryTable() {
        final List<GuestMemoryImage.MemoryRegion> table = new ArrayList<>();
        final long window = memory.size() / options.memoryWindows;
        for (int i = 0; i < options.memoryWindows; i++) {
            table.add(memory.window(i * window, window));
        }
        return table;
    }

    /** NUM, BASE, ADDR, KICK, CALL for one ring, as its current layout and indexes say. */
    public void setUpRing(final DriverSplitQueue q) throws IOException {
        setUpRing(q, q.availIdx());
    }

    /** Set up a ring again after GET_VRING_BASE stopped it: the device resumes at {@code base}. */
    public void setUpRing(final DriverSplitQueue q, final int base) throws IOException {
        q.setEventIdx(eventIdx());
        frontend.setVringNum(q.index(), q.size());
        frontend.setVringBase(q.index(), base);
        frontend.setVringAddr(q.index(), q.descUva(), q.usedUva(), q.availUva());
        frontend.setVringKick(q.index(), q.kickFd().fd());
        frontend.setVringCall(q.index(), q.callFd().fd());
    }

    public void enableRings(final boolean enable) throws IOException {
        frontend.setVringEnable(RX, enable);
        frontend.setVringEnable(TX, enable);
    }

    public boolean eventIdx() {
        return VirtioFeature.has(features, VirtioFeature.RING_EVENT_IDX);
    }

    public boolean mergeable() {
        return VirtioFeature.has(features, VirtioNetFeature.MRG_RXBUF);
    }

    public boolean indirect() {
        return VirtioFeature.has(features, VirtioFeature.RING_INDIRECT_DESC);
    }

    public long features() {
        return features;
    }

    public long protocolFeatures() {
        return protocolFeatures;
    }

    public VhostUserFrontend frontend() {
        return frontend;
    }

    public GuestMemoryImage memory() {
        return memory;
    }

    public DriverSplitQueue rx() {
        return rx;
    }

    public DriverSplitQueue tx() {
        return tx;
    }

    // ---------------------------------------------------------------------------------------------
    // Transmit

    /** Send a frame in one descriptor (header + frame). */
    public void send(final byte[] frame) {
        send(frame, 1, false);
    }

    /**
     * Send a frame in {@code descriptors} buffers: with one, header and frame share it; with more, the header
     * has its own and the frame is cut into {@code descriptors - 1} nearly equal pieces, each in its own
     * allocation (so the device must gather). With {@code indirect}, the chain goes through an indirect table.
     */
    public void send(final byte[] frame, final int descriptors, final boolean indirect) {
        reclaimTx();
        awaitTxRoom(indirect ? 1 : descriptors);
        final byte[] header = new byte[HEADER_LENGTH]; // no offloads: all zero
        final List<DriverSplitQueue.Segment> segments = new ArrayList<>();
        final List<Long> offsets = new ArrayList<>();
        if (descriptors <= 1) {
            final long off = memory.allocate(HEADER_LENGTH + frame.length, 16);
            memory.buffer().putBytes((int) off, header);
            memory.buffer().putBytes((int) off + HEADER_LENGTH, frame);
            offsets.add(off);
            segments.add(DriverSplitQueue.Segment.readable(memory.gpa(off), HEADER_LENGTH + frame.length));
        } else {
            final long hoff = memory.allocate(HEADER_LENGTH, 16);
            offsets.add(hoff);
            segments.add(DriverSplitQueue.Segment.readable(memory.gpa(hoff), HEADER_LENGTH));
            final int pieces = descriptors - 1;
            int done = 0;
            for (int i = 0; i < pieces; i++) {
                final int len = (frame.length - done) / (pieces - i);
                if (len == 0) {
                    continue;
                }
                final long off = memory.allocate(len, 16);
                memory.buffer().putBytes((int) off, frame, done, len);
                offsets.add(off);
                segments.add(DriverSplitQueue.Segment.readable(memory.gpa(off), len));
                done += len;
            }
        }
        final int head = tx.add(segments, indirect);
        txBuffers[head] = offsets.stream().mapToLong(Long::longValue).toArray();
        tx.publish();
    }

    /** Free the buffers of transmitted frames; returns how many completed. */
    public int reclaimTx() {
        int n = 0;
        DriverSplitQueue.Used u;
        while ((u = tx.pollUsed()) != null) {
            if (txBuffers[u.id()] != null) { // null: a chain a test built by hand
                for (final long off : txBuffers[u.id()]) {
                    memory.free(off);
                }
            }
            txBuffers[u.id()] = null;
            n++;
        }
        return n;
    }

    private void awaitTxRoom(final int descriptors) {
        final long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (!tx.canAdd(descriptors, false)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("TX ring full: the device does not consume");
            }
            tx.enableCalls();
            tx.awaitCall(Duration.ofMillis(10));
            reclaimTx();
        }
    }

    /** Wait until the device returned every frame sent so far (true) or the timeout passed (false). */
    public boolean awaitTxDone(final Duration timeout) {
        final long deadline = System.nanoTime() + timeout.toNanos();
        reclaimTx();
        while (tx.inFlight() > 0) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            if (!tx.enableCalls()) {
                tx.awaitCall(Duration.ofMillis(10));
            }
            reclaimTx();
        }
        return true;
    }

    // ---------------------------------------------------------------------------------------------
    // Receive

    /** Post {@code count} receive buffers of {@code size} bytes, one descriptor each, and publish them. */
    public void postRxBuffers(final int count, final int size) {
        postRxBuffers(count, size, 1, false);
    }

    /**
     * Post {@code count} receive chains of {@code size} bytes each, cut into {@code descriptors} writable
     * pieces (separately allocated), optionally through indirect tables.
     */
    public void postRxBuffers(final int count, final int size, final int descriptors, final boolean indirect) {
        for (int c = 0; c < count; c++) {
            final List<DriverSplitQueue.Segment> segments = new ArrayList<>();
            final long[] offsets = new long[descriptors];
            final int[] lengths = new int[descriptors];
            int done = 0;
            for (int i = 0; i < descriptors; i++) {
                final int len = (size - done) / (descriptors - i);
                offsets[i] = memory.allocate(len, 16);
                lengths[i] = len;
                segments.add(DriverSplitQueue.Segment.writable(memory.gpa(offsets[i]), len));
                done += len;
            }
            final int head = rx.add(segments, indirect);
            rxBuffers[head] = offsets;
            rxLengths[head] = lengths;
        }
        rx.publish();
    }

    /** The next frame's payload, or null if none arrives within {@code timeout}. */
    public byte[] receive(final Duration timeout) {
        final RxFrame f = receiveFrame(timeout);
        return f == null ? null : f.payload();
    }

    /**
     * The next frame, gathered from as many used buffers as its header's num_buffers says (mergeable), or
     * null on timeout. Waits on the call eventfd and also polls, so it works with calls suppressed too.
     */
    public RxFrame receiveFrame(final Duration timeout) {
        final DriverSplitQueue.Used first = awaitUsed(rx, timeout);
        if (first == null) {
            return null;
        }
        final UnsafeBuffer image = memory.buffer();
        final long headerAt = rxBuffers[first.id()][0];
        final VirtioNetHeader header = new VirtioNetHeader().wrap(image, (int) headerAt);
        final int numBuffers = header.numBuffers();
        final int flags = header.flags();
        final int gso = header.gsoType();
        final java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        collect(first, bytes);
        for (int i = 1; i < numBuffers; i++) {
            final DriverSplitQueue.Used next = awaitUsed(rx, Duration.ofSeconds(5));
            if (next == null) {
                throw new IllegalStateException("frame announced " + numBuffers + " buffers, got " + i);
            }
            collect(next, bytes);
        }
        final byte[] all = bytes.toByteArray();
        if (all.length < HEADER_LENGTH) {
            throw new IllegalStateException("received " + all.length + " bytes, shorter than the header");
        }
        return new RxFrame(java.util.Arrays.copyOfRange(all, HEADER_LENGTH, all.length), numBuffers, flags, gso);
    }

    /** Append the bytes the device wrote into this chain's buffers and free them. */
    private void collect(final DriverSplitQueue.Used used, final java.io.ByteArrayOutputStream out) {
        final long[] offsets = rxBuffers[used.id()];
        final int[] lengths = rxLengths[used.id()];
        int remaining = used.len();
        for (int i = 0; i < offsets.length; i++) {
            final int n = Math.min(remaining, lengths[i]);
            final byte[] piece = new byte[n];
            memory.buffer().getBytes((int) offsets[i], piece);
            out.write(piece, 0, n);
            remaining -= n;
            memory.free(offsets[i]);
        }
        if (remaining > 0) {
            throw new IllegalStateException("device wrote " + used.len() + " bytes into a smaller chain");
        }
        rxBuffers[used.id()] = null;
        rxLengths[used.id()] = null;
    }

    /** The next used entry of {@code q}, waiting for a call (and polling) up to {@code timeout}. */
    public static DriverSplitQueue.Used awaitUsed(final DriverSplitQueue q, final Duration timeout) {
        final long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            final DriverSplitQueue.Used u = q.pollUsed();
            if (u != null) {
                return u;
            }
            final long left = deadline - System.nanoTime();
            if (left <= 0) {
                return null;
            }
            if (!q.enableCalls()) {
                q.awaitCall(Duration.ofNanos(Math.min(left, Duration.ofMillis(20).toNanos())));
            }
        }
    }

    /** RX chains posted and not yet returned by the device. */
    public int rxPosted() {
        return rx.inFlight();
    }

    @Override
    public void close() throws IOException {
        try {
            frontend.close();
        } finally {
            rx.close();
            tx.close();
            memory.close();
        }
    }
}
