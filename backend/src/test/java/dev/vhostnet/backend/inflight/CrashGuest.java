package dev.vhostnet.backend.inflight;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.Mapping;
import dev.vhostnet.dataplane.virtq.InflightBuffer;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import dev.vhostnet.spec.VirtioNetHeader;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;

/**
 * A guest whose memory, rings and driver state outlive its vhost-user connections, as QEMU's do when the
 * back-end dies: it keeps the inflight buffer's fd, reconnects with SET_INFLIGHT_FD and with SET_VRING_BASE
 * taken from the used index in guest memory (what QEMU restores after a back-end crash), and carries on.
 *
 * <p>Bookkeeping: every transmitted frame has a sequence number; the head it went out in maps to it until the
 * device returns that head, so a head completed twice, or a sequence number completed twice or never, shows.
 * Received frames are checked against the sender's pattern (duplicates are allowed: a transmit chain the dead
 * back-end had forwarded but not completed is forwarded again by the next one).
 */
final class CrashGuest implements AutoCloseable {
    static final int QUEUE_SIZE = 256;
    static final int RX_BUFFER = 1024; // smaller than big frames: mergeable frames span two buffers
    static final int RX = 0;
    static final int TX = 1;
    private static final int HEADER = VirtioNetHeader.LENGTH;

    final String name;
    final byte[] mac;
    final GuestMemoryImage memory = GuestMemoryImage.create(8);
    final DriverSplitQueue rx = new DriverSplitQueue(memory, RX, QUEUE_SIZE);
    final DriverSplitQueue tx = new DriverSplitQueue(memory, TX, QUEUE_SIZE);
    private final long[] txSeqOfHead = new long[QUEUE_SIZE];
    private final long[] txBufferOfHead = new long[QUEUE_SIZE];
    private final long[] rxBufferOfHead = new long[QUEUE_SIZE];
    private final BitSet completed = new BitSet();
    private VhostUserFrontend fe;
    private InflightMessages.Inflight inflight;
    private Mapping inflightView;

    long posted;
    long completions;
    long received;
    long receivedDuplicates;
    private final BitSet receivedSeqs = new BitSet();
    private long nextFrameLength = 60;

    CrashGuest(final String name, final byte[] mac) {
        this.name = name;
        this.mac = mac;
        Arrays.fill(txSeqOfHead, -1);
        Arrays.fill(rxBufferOfHead, -1);
    }

    static long features() {
        return VirtioFeature.bit(VirtioFeature.VERSION_1) | VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)
            | VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF);
    }

    /**
     * Connect and start the device the way QEMU does; the first time with GET_INFLIGHT_FD, afterwards with
     * SET_INFLIGHT_FD of the kept buffer and the rings resumed at used->idx.
     */
    void connect(final Path socket) throws IOException {
        connect(socket, Integer.MAX_VALUE);
    }

    /** Messages {@link #connect(Path, int)} sends on a first connection (each GET/SET counts as one). */
    static final int SETUP_MESSAGES = 20;

    /**
     * As {@link #connect(Path)}, but stop after {@code messages} messages (each acknowledged, so the back-end
     * has handled them when this returns): a front-end that goes away at that point of the setup.
     */
    void connect(final Path socket, final int messages) throws IOException {
        if (fe != null) {
            fe.close();
        }
        fe = VhostUserFrontend.connect(socket);
        int left = messages;
        if (left-- <= 0) {
            return;
        }
        fe.setOwner();
        if (left-- <= 0) {
            return;
        }
        final long offered = fe.getFeatures();
        if ((offered & features()) != features()) {
            throw new IllegalStateException("back-end lacks features: 0x" + Long.toHexString(features() & ~offered));
        }
        if (left-- <= 0) {
            return;
        }
        final long protocol = fe.getProtocolFeatures();
        final long wanted = ProtocolFeature.bit(ProtocolFeature.INFLIGHT_SHMFD) | ProtocolFeature.bit(ProtocolFeature.REPLY_ACK);
        if ((protocol & wanted) != wanted) {
            throw new IllegalStateException("back-end does not offer INFLIGHT_SHMFD and REPLY_ACK");
        }
        if (left-- <= 0) {
            return;
        }
        fe.setProtocolFeatures(wanted);
        final boolean first = inflight == null;
        if (first) {
            if (left-- <= 0) {
                return;
            }
            inflight = InflightMessages.get(fe, 2, QUEUE_SIZE);
            inflightView = Mapping.map(inflight.fd(), 0, inflight.mmapSize(), false);
        }
        if (left-- <= 0) {
            return;
        }
        InflightMessages.set(fe, inflight);
        if (left-- <= 0) {
            return;
        }
        fe.setFeatures(features());
        if (left-- <= 0) {
            return;
        }
        fe.setMemTable(List.of(memory.region()));
        for (final DriverSplitQueue q : List.of(rx, tx)) {
            // First start: both indexes 0. After a crash QEMU cannot ask where the device was: it resumes at the
            // used index in guest memory.
            final int base = first ? q.availIdx() : q.usedIdx();
            if (left-- <= 0) {
                return;
            }
            fe.setVringNum(q.index(), q.size());
            if (left-- <= 0) {
                return;
            }
            fe.setVringBase(q.index(), base);
            if (left-- <= 0) {
                return;
            }
            fe.setVringAddr(q.index(), q.descUva(), q.usedUva(), q.availUva());
            if (left-- <= 0) {
                return;
            }
            fe.setVringKick(q.index(), q.kickFd().fd());
            if (left-- <= 0) {
                return;
            }
            fe.setVringCall(q.index(), q.callFd().fd());
        }
        if (left-- <= 0) {
            return;
        }
        fe.setVringEnable(RX, true);
        if (left-- <= 0) {
            return;
        }
        fe.setVringEnable(TX, true);
    }

    /** The connection went away (the back-end died): forget it, keep everything else. */
    void disconnected() throws IOException {
        if (fe != null) {
            fe.close();
            fe = null;
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Traffic

    /** Post up to {@code max} frames to {@code peerMac} and publish them; returns how many. */
    int transmit(final byte[] peerMac, final int max) {
        final int n = transmit(peerMac, max, false);
        if (n > 0) {
            tx.publish();
        }
        return n;
    }

    /** Put up to {@code max} frames in the transmit ring, published only if {@code publish}. */
    int transmit(final byte[] peerMac, final int max, final boolean publish) {
        int n = 0;
        while (n < max && tx.canAdd(1, false)) {
            final long seq = posted++;
            final int len = (int) nextFrameLength;
            nextFrameLength = nextFrameLength >= 1400 ? 60 : nextFrameLength + 97;
            final long off = memory.allocate(HEADER + len, 16);
            final UnsafeBuffer b = memory.buffer();
            b.setMemory((int) off, HEADER, (byte) 0);
            writeFrame(b, (int) off + HEADER, len, peerMac, mac, seq);
            final int head = tx.add(List.of(DriverSplitQueue.Segment.readable(memory.gpa(off), HEADER + len)), false);
            if (txSeqOfHead[head] >= 0) {
                throw new AssertionError(name + ": head " + head + " reused while outstanding");
            }
            txSeqOfHead[head] = seq;
            txBufferOfHead[head] = off;
            n++;
        }
        if (n > 0 && publish) {
            tx.publish();
        }
        return n;
    }

    static void writeFrame(final UnsafeBuffer b, final int at, final int len, final byte[] dst, final byte[] src,
                           final long seq) {
        b.putBytes(at, dst);
        b.putBytes(at + 6, src);
        b.putByte(at + 12, (byte) 0x88);
        b.putByte(at + 13, (byte) 0xB5);
        b.putLong(at + 14, seq);
        b.putInt(at + 22, len);
        for (int i = 26; i < len; i++) {
            b.putByte(at + i, (byte) (seq * 31 + i));
        }
    }

    /** Collect transmit completions: each posted sequence number exactly once. */
    int reclaim() {
        int n = 0;
        DriverSplitQueue.Used u;
        while ((u = tx.pollUsed()) != null) { // throws on a head that is not outstanding
            final long seq = txSeqOfHead[u.id()];
            if (seq < 0) {
                throw new AssertionError(name + ": head " + u.id() + " completed but not outstanding");
            }
            if (completed.get((int) seq)) {
                throw new AssertionError(name + ": frame " + seq + " completed twice");
            }
            completed.set((int) seq);
            txSeqOfHead[u.id()] = -1;
            memory.free(txBufferOfHead[u.id()]);
            completions++;
            n++;
        }
        return n;
    }

    /** Keep the receive ring full of {@link #RX_BUFFER}-byte buffers. */
    void refillRx() {
        int n = 0;
        while (rx.canAdd(1, false)) {
            final long off = memory.allocate(RX_BUFFER, 16);
            final int head = rx.add(List.of(DriverSplitQueue.Segment.writable(memory.gpa(off), RX_BUFFER)), false);
            if (rxBufferOfHead[head] >= 0) {
                throw new AssertionError(name + ": rx head " + head + " reused while outstanding");
            }
            rxBufferOfHead[head] = off;
            n++;
        }
        if (n > 0) {
            rx.publish();
        }
    }

    /** Receive every complete frame; checks each against the sender's pattern. Returns frames received. */
    int receive(final CrashGuest sender) {
        int frames = 0;
        while (true) {
            final DriverSplitQueue.Used first = rx.pollUsed();
            if (first == null) {
                return frames;
            }
            final UnsafeBuffer b = memory.buffer();
            final long firstOff = takeRx(first.id());
            final int numBuffers = b.getShort((int) firstOff + 10) & 0xFFFF;
            final byte[] bytes = new byte[numBuffers * RX_BUFFER];
            int len = first.len();
            b.getBytes((int) firstOff, bytes, 0, len);
            memory.free(firstOff);
            for (int i = 1; i < numBuffers; i++) {
                final DriverSplitQueue.Used next = rx.pollUsed();
                if (next == null) {
                    throw new AssertionError(name + ": frame announced " + numBuffers + " buffers, " + i + " published");
                }
                final long off = takeRx(next.id());
                b.getBytes((int) off, bytes, len, next.len());
                len += next.len();
                memory.free(off);
            }
            check(sender, new UnsafeBuffer(bytes, HEADER, len - HEADER), len - HEADER);
            frames++;
        }
    }

    private long takeRx(final int head) {
        final long off = rxBufferOfHead[head];
        if (off < 0) {
            throw new AssertionError(name + ": rx head " + head + " completed but not posted");
        }
        rxBufferOfHead[head] = -1;
        return off;
    }

    private void check(final CrashGuest sender, final UnsafeBuffer f, final int len) {
        final long seq = f.getLong(14);
        final int sentLen = f.getInt(22);
        if (sentLen != len || seq < 0 || seq >= sender.posted) {
            throw new AssertionError(name + ": received a " + len + "-byte frame claiming seq " + seq + " / length " + sentLen);
        }
        for (int i = 0; i < 6; i++) {
            if (f.getByte(i) != mac[i] || f.getByte(6 + i) != sender.mac[i]) {
                throw new AssertionError(name + ": frame " + seq + " has wrong addresses");
            }
        }
        for (int i = 26; i < len; i++) {
            if (f.getByte(i) != (byte) (seq * 31 + i)) {
                throw new AssertionError(name + ": frame " + seq + " corrupted at byte " + i);
            }
        }
        if (receivedSeqs.get((int) seq)) {
            receivedDuplicates++;
        }
        receivedSeqs.set((int) seq);
        received++;
    }

    /** Transmitted frames the device has not returned. */
    long outstanding() {
        return posted - completions;
    }

    /** Every posted sequence number completed (once: {@link #reclaim()} checks that as they come). */
    boolean allCompleted() {
        return completed.cardinality() == posted && completions == posted;
    }

    // ---------------------------------------------------------------------------------------------
    // The inflight buffer as the front-end sees it (split layout, read only)

    private UnsafeBuffer region(final int queue) {
        final long stride = InflightBuffer.queueRegionSize(QUEUE_SIZE);
        return new UnsafeBuffer(inflightView.address() + queue * stride, (int) stride);
    }

    int regionVersion(final int queue) {
        return region(queue).getShortVolatile(8) & 0xFFFF;
    }

    int regionDescNum(final int queue) {
        return region(queue).getShort(10) & 0xFFFF;
    }

    int regionUsedIdx(final int queue) {
        return region(queue).getShortVolatile(14) & 0xFFFF;
    }

    /** Heads flagged inflight in the region. */
    int regionInflight(final int queue) {
        final UnsafeBuffer r = region(queue);
        int n = 0;
        for (int i = 0; i < QUEUE_SIZE; i++) {
            if (r.getByteVolatile(16 + 16 * i) != 0) {
                n++;
            }
        }
        return n;
    }

    @Override
    public void close() throws IOException {
        try {
            disconnected();
        } finally {
            if (inflightView != null) {
                inflightView.close();
            }
            if (inflight != null) {
                FileDescriptors.closeQuietly(inflight.fd());
            }
            rx.close();
            tx.close();
            memory.close();
        }
    }
}
