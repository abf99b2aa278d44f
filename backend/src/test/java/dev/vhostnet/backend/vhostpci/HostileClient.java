package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.frontend.GuestMemoryImage.MemoryRegion;
import dev.vhostnet.spec.vhostpci.AckMessage;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.FeatureBitsMessage;
import dev.vhostnet.spec.vhostpci.HeartbeatMessage;
import dev.vhostnet.spec.vhostpci.HelloMessage;
import dev.vhostnet.spec.vhostpci.MacAddress;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.EOFException;
import java.io.FileDescriptor;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.SocketTimeoutException;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.function.BiConsumer;

/**
 * A hostile vhost-pci client: a raw AF_UNIX connection on which every header field, payload byte and attached
 * fd is the test's choice. It does not use the back-end's own framing code ({@link VhostPciChannel}), so it can
 * send what that code would refuse to (too many fds, lengths that lie, broken sequence numbers). While it waits
 * for an answer it plays along with what the device side sends meanwhile: PINGs get their PONG and the device's
 * own requests (PEER_CONNECTION) their DONE, unless told otherwise.
 */
final class HostileClient implements AutoCloseable {
    static final Duration WAIT = Duration.ofSeconds(5);
    static final long MAC = MacAddress.toDeviceId(PeerBackend.MAC_C);

    /** One message received from the device side, copied out. */
    record Msg(int type, int version, long seq, UUID sender, byte[] payload) {
        UnsafeBuffer buffer() {
            return new UnsafeBuffer(payload);
        }

        AckMessage ack() {
            return new AckMessage().wrap(buffer(), 0);
        }

        HeartbeatMessage heartbeat() {
            return new HeartbeatMessage().wrap(buffer(), 0);
        }

        @Override
        public String toString() {
            return VhostPci.typeName(type) + " seq " + seq + (type == VhostPci.ACK ? " " + ack().ackedSeq() + " "
                + VhostPci.statusName(ack().status()) + " " + VhostPci.reasonName(ack().reason()) : "");
        }
    }

    /** An ACK the device side sent us: the fields the cases check. */
    record Answer(int status, long reason, long value, long nvqs) {
        @Override
        public String toString() {
            return VhostPci.statusName(status) + "/" + VhostPci.reasonName(reason) + " value=0x"
                + Long.toHexString(value) + " nvqs=" + nvqs;
        }
    }

    final AFUNIXSocket socket;
    final UUID uuid;
    private final InputStream in;
    private final OutputStream out;
    long nextSeq = 1;
    /** msg_version of the headers we send after the HELLO. */
    int version = VhostPci.VERSION_1;
    /** Answer the device side's PINGs and requests while waiting (off: a client that never reads replies). */
    boolean playAlong = true;
    Msg deviceHello;

    private HostileClient(final AFUNIXSocket socket, final UUID uuid) throws IOException {
        this.socket = socket;
        this.uuid = uuid;
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
        socket.setSoTimeout((int) WAIT.toMillis());
    }

    static HostileClient connect(final Path pci) throws IOException {
        return connect(pci, UUID.randomUUID());
    }

    static HostileClient connect(final Path pci, final UUID uuid) throws IOException {
        return new HostileClient(AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(pci.toFile())), uuid);
    }

    /** Connected and the HELLO exchange done (the session is open on both sides). */
    static HostileClient open(final Path pci) throws IOException {
        return open(pci, UUID.randomUUID());
    }

    static HostileClient open(final Path pci, final UUID uuid) throws IOException {
        final HostileClient c = connect(pci, uuid);
        try {
            c.handshake();
            return c;
        } catch (final IOException | RuntimeException | AssertionError e) {
            c.close();
            throw e;
        }
    }

    // ---- sending ---------------------------------------------------------------------------------------------

    /** A message with the next seq, our UUID and the session's version, payload written by {@code writer}. */
    long send(final int type, final int length, final BiConsumer<MutableDirectBuffer, Integer> writer,
              final int... fds) throws IOException {
        return sendAs(type, version, nextSeq, uuid, length, length, writer, fds);
    }

    /**
     * Every header field chosen: {@code declared} goes into msg_len, {@code actual} payload bytes are sent.
     * The next message continues after {@code seq}.
     */
    long sendAs(final int type, final int msgVersion, final long seq, final UUID sender, final long declared,
                final int actual, final BiConsumer<MutableDirectBuffer, Integer> writer, final int... fds)
        throws IOException {
        final byte[] bytes = new byte[VhostPciHeader.LENGTH + actual];
        final UnsafeBuffer b = new UnsafeBuffer(bytes);
        new VhostPciHeader().<VhostPciHeader>wrap(b, 0).type(type).version(msgVersion).length(declared).seq(seq)
            .sender(sender);
        if (writer != null) {
            writer.accept(b, VhostPciHeader.LENGTH);
        }
        sendRaw(bytes, fds);
        nextSeq = seq + 1;
        return seq;
    }

    /** Bytes as they are, the fds attached to their first byte (any number: the kernel allows 253). */
    void sendRaw(final byte[] bytes, final int... fds) throws IOException {
        if (fds.length > 0) {
            final FileDescriptor[] d = new FileDescriptor[fds.length];
            for (int i = 0; i < fds.length; i++) {
                d[i] = FileDescriptorCast.unsafeUsing(fds[i]).getFileDescriptor();
            }
            socket.setOutboundFileDescriptors(d);
        }
        out.write(bytes);
        out.flush();
    }

    long hello(final int role, final int min, final int max, final int intervalMs, final int timeoutMs)
        throws IOException {
        return send(VhostPci.HELLO, HelloMessage.LENGTH, (b, at) -> new HelloMessage().<HelloMessage>wrap(b, at)
            .role(role).minVersion(min).maxVersion(max).capabilities(VhostPci.CAP_ALL).heartbeatIntervalMs(intervalMs)
            .heartbeatTimeoutMs(timeoutMs).maxRegions(VhostPci.MAX_REGIONS).maxVirtqueues(VhostPci.MAX_VIRTQUEUES));
    }

    long hello() throws IOException {
        return hello(VhostPci.ROLE_CLIENT, 1, 1, 1000, 5000);
    }

    long ack(final long ackedSeq, final int ackedType, final int status, final long reason, final long value)
        throws IOException {
        return send(VhostPci.ACK, AckMessage.HEADER_LENGTH, (b, at) -> new AckMessage().<AckMessage>wrap(b, at)
            .ackedSeq(ackedSeq).ackedType(ackedType).status(status).reason(reason).value(value).nvqs(0));
    }

    long ping() throws IOException {
        return heartbeat(VhostPci.PING, 0, System.nanoTime());
    }

    long heartbeat(final int op, final long pingSeq, final long timestamp) throws IOException {
        return send(VhostPci.HEARTBEAT, HeartbeatMessage.LENGTH, (b, at) -> new HeartbeatMessage()
            .<HeartbeatMessage>wrap(b, at).op(op).pingSeq(pingSeq).timestampNs(timestamp));
    }

    /** Read the device side's HELLO, send ours and accept its own; wait for the DONE that opens the session. */
    void handshake() throws IOException {
        deviceHello = read();
        if (deviceHello == null || deviceHello.type() != VhostPci.HELLO) {
            throw new IOException("expected the device side's HELLO, got " + deviceHello);
        }
        final long ours = hello();
        ack(deviceHello.seq(), VhostPci.HELLO, VhostPci.DONE, VhostPci.R_NONE, 1);
        final Answer a = awaitAck(ours);
        if (a.status() != VhostPci.DONE) {
            throw new IOException("HELLO refused: " + a);
        }
    }

    // ---- requests ---------------------------------------------------------------------------------------------

    Answer features(final long features, final boolean negotiated) throws IOException {
        return awaitAck(send(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, (b, at) ->
            new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, at).features(features)
                .flags(negotiated ? VhostPci.FEATURES_NEGOTIATED : 0)));
    }

    long sendMemory(final int op, final List<MemoryRegion> regions, final int... fds) throws IOException {
        final int n = regions.size();
        return send(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(n), (b, at) -> {
            final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, at);
            m.op(op).nregions(n);
            for (int i = 0; i < n; i++) {
                final MemoryRegion r = regions.get(i);
                m.region(i).guestPhysAddr(r.guestPhysAddr()).memorySize(r.size()).userAddr(r.userAddr())
                    .mmapOffset(r.mmapOffset());
            }
        }, fds);
    }

    /** MEMORY_INFO ADD with one fd per region (the regions' own). */
    Answer addMemory(final List<MemoryRegion> regions) throws IOException {
        return awaitAck(sendMemory(VhostPci.OP_ADD, regions, regions.stream().mapToInt(MemoryRegion::fd).toArray()));
    }

    Answer addMemory(final MemoryRegion region) throws IOException {
        return addMemory(List.of(region));
    }

    Answer delMemory(final MemoryRegion region) throws IOException {
        return awaitAck(sendMemory(VhostPci.OP_DEL, List.of(region)));
    }

    long sendDevice(final long features, final List<ClientGuest.Ring> rings, final int... fds) throws IOException {
        return sendDevice(VhostPci.DEVICE_NET, features, rings, fds);
    }

    long sendDevice(final int deviceType, final long features, final List<ClientGuest.Ring> rings, final int... fds)
        throws IOException {
        final int n = rings.size();
        return send(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, n), (b, at) -> {
            final DeviceInfoMessage m = new DeviceInfoMessage().wrap(b, at);
            m.op(VhostPci.OP_ADD).deviceType(deviceType).nvqs(n).features(features).deviceId(MAC);
            for (int i = 0; i < n; i++) {
                rings.get(i).writeTo(m.virtq(i));
            }
        }, fds);
    }

    Answer addDevice(final long features, final List<ClientGuest.Ring> rings, final int... fds) throws IOException {
        return awaitAck(sendDevice(features, rings, fds));
    }

    Answer delDevice() throws IOException {
        return awaitAck(send(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0), (b, at) ->
            new DeviceInfoMessage().<DeviceInfoMessage>wrap(b, at).op(VhostPci.OP_DEL).deviceType(VhostPci.DEVICE_NET)
                .deviceId(MAC)));
    }

    // ---- receiving --------------------------------------------------------------------------------------------

    /** The next message; null at end of stream. Times out (SocketTimeoutException) after the socket timeout. */
    Msg read() throws IOException {
        final byte[] h = new byte[VhostPciHeader.LENGTH];
        if (!readFully(h, true)) {
            return null;
        }
        final VhostPciHeader header = new VhostPciHeader().wrap(new UnsafeBuffer(h), 0);
        final long len = header.length();
        if (len > VhostPci.MAX_PAYLOAD) {
            throw new IOException("device side sent msg_len " + len);
        }
        final byte[] payload = new byte[(int) len];
        if (!readFully(payload, false)) {
            throw new EOFException("end of stream inside a message");
        }
        final FileDescriptor[] fds = socket.getReceivedFileDescriptors();
        if (fds != null && fds.length > 0) {
            throw new IOException("the device side sent " + fds.length + " fds");
        }
        return new Msg(header.type(), header.version(), header.seq(), header.sender(), payload);
    }

    private boolean readFully(final byte[] b, final boolean eofAllowed) throws IOException {
        int done = 0;
        while (done < b.length) {
            final int n = in.read(b, done, b.length - done);
            if (n < 0) {
                if (done == 0 && eofAllowed) {
                    return false;
                }
                throw new EOFException("end of stream after " + done + " of " + b.length + " bytes");
            }
            done += n;
        }
        return true;
    }

    /** Wait for the ACK of our request {@code seq}, playing along with whatever comes before it. */
    Answer awaitAck(final long seq) throws IOException {
        while (true) {
            final Msg m = read();
            if (m == null) {
                throw new EOFException("device side closed the connection before answering seq " + seq);
            }
            if (m.type() == VhostPci.ACK && m.ack().ackedSeq() == seq) {
                final AckMessage a = m.ack();
                return new Answer(a.status(), a.reason(), a.value(), a.nvqs());
            }
            answer(m);
        }
    }

    /** Answer what needs an answer (PING, the device side's requests), if playing along. */
    private void answer(final Msg m) throws IOException {
        if (!playAlong) {
            return;
        }
        if (m.type() == VhostPci.HEARTBEAT && m.heartbeat().op() == VhostPci.PING) {
            heartbeat(VhostPci.PONG, m.seq(), m.heartbeat().timestampNs());
        } else if (m.type() == VhostPci.PEER_CONNECTION) {
            ack(m.seq(), VhostPci.PEER_CONNECTION, VhostPci.DONE, VhostPci.R_NONE, 0);
        } else if (m.type() == VhostPci.DEVICE_INFO) {
            ack(m.seq(), VhostPci.DEVICE_INFO, VhostPci.DEL_DONE, VhostPci.R_NONE, 0);
        }
    }

    /** Read and play along for {@code time}; true if the connection is still open afterwards. */
    boolean pump(final Duration time) throws IOException {
        final long end = System.nanoTime() + time.toNanos();
        final int previous = socket.getSoTimeout();
        try {
            while (System.nanoTime() < end) {
                socket.setSoTimeout((int) Math.max(1, (end - System.nanoTime()) / 1_000_000));
                final Msg m;
                try {
                    m = read();
                } catch (final SocketTimeoutException e) {
                    return true;
                }
                if (m == null) {
                    return false;
                }
                answer(m);
            }
            return true;
        } finally {
            socket.setSoTimeout(previous);
        }
    }

    /** The device side still serves this connection: a PING of ours gets its PONG. */
    boolean alive() throws IOException {
        final long seq = ping();
        while (true) {
            final Msg m = read();
            if (m == null) {
                return false;
            }
            if (m.type() == VhostPci.HEARTBEAT && m.heartbeat().op() == VhostPci.PONG && m.heartbeat().pingSeq() == seq) {
                return true;
            }
            answer(m);
        }
    }

    /** True when the device side closes the connection within {@code timeout} (end of stream or reset). */
    boolean closedWithin(final Duration timeout) {
        final long end = System.nanoTime() + timeout.toNanos();
        try {
            while (System.nanoTime() < end) {
                socket.setSoTimeout((int) Math.max(1, (end - System.nanoTime()) / 1_000_000));
                if (read() == null) {
                    return true;
                }
            }
            return false;
        } catch (final SocketTimeoutException e) {
            return false;
        } catch (final IOException e) {
            return true; // reset, or the stream ended inside a message
        }
    }

    boolean closedByDevice() {
        return closedWithin(WAIT);
    }

    static int u16(final byte[] payload, final int at) {
        return new UnsafeBuffer(payload).getShort(at, ByteOrder.LITTLE_ENDIAN) & 0xFFFF;
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
