package dev.vhostnet.frontend;

import dev.vhostnet.spec.ConfigMessage;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.MemoryRegionMessage;
import dev.vhostnet.spec.MemoryTableMessage;
import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.SingleMemoryRegionMessage;
import dev.vhostnet.spec.U64Message;
import dev.vhostnet.spec.VhostUserHeader;
import dev.vhostnet.spec.VringAddrMessage;
import dev.vhostnet.spec.VringStateMessage;
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

/**
 * The front-end end of a vhost-user connection, as QEMU or DPDK's virtio_user would drive it: sends any
 * request with any payload and fds, reads replies, and follows REPLY_ACK once negotiated (every request
 * without a reply of its own then asks for an ack, and a non-zero ack throws {@link Rejected}). Tests can
 * also write raw bytes to send malformed messages.
 */
public final class VhostUserFrontend implements AutoCloseable {
    public static final Duration REPLY_TIMEOUT = Duration.ofSeconds(10);

    private final AFUNIXSocket socket;
    private final InputStream in;
    private final OutputStream out;
    private boolean replyAck;

    private VhostUserFrontend(final AFUNIXSocket socket) throws IOException {
        this.socket = socket;
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
        socket.setSoTimeout((int) REPLY_TIMEOUT.toMillis());
    }

    public static VhostUserFrontend connect(final Path path) throws IOException {
        return new VhostUserFrontend(AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(path.toFile())));
    }

    /** The back-end refused a request (non-zero REPLY_ACK). */
    public static final class Rejected extends IOException {
        private final long code;

        Rejected(final int request, final long code) {
            super(FrontendRequest.name(request) + " rejected by the back-end (ack " + code + ")");
            this.code = code;
        }

        public long code() {
            return code;
        }
    }

    /** A reply: header fields and payload. */
    public record Reply(int request, int flags, byte[] payload) {
        public long u64() {
            if (payload.length != U64Message.LENGTH) {
                throw new IllegalStateException(FrontendRequest.name(request) + " reply has " + payload.length + " bytes");
            }
            return new UnsafeBuffer(payload).getLong(0, ByteOrder.LITTLE_ENDIAN);
        }

        public UnsafeBuffer buffer() {
            return new UnsafeBuffer(payload);
        }
    }

    /** Whether requests now ask for acks (set when SET_PROTOCOL_FEATURES with REPLY_ACK was sent). */
    public boolean replyAck() {
        return replyAck;
    }

    // ---------------------------------------------------------------------------------------------
    // Raw messages

    /** Frame and send one message; {@code fds} travel with it as SCM_RIGHTS. */
    public void send(final int request, final int flags, final byte[] payload, final int... fds) throws IOException {
        final byte[] message = new byte[VhostUserHeader.LENGTH + payload.length];
        final UnsafeBuffer b = new UnsafeBuffer(message);
        final VhostUserHeader header = new VhostUserHeader().wrap(b, 0);
        header.request(request).flags(flags).size(payload.length);
        b.putBytes(VhostUserHeader.LENGTH, payload);
        sendRaw(message, fds);
    }

    /** Write bytes as they are (possibly malformed), with fds attached to the first byte. */
    public void sendRaw(final byte[] bytes, final int... fds) throws IOException {
        if (fds.length > 0) {
            final FileDescriptor[] descriptors = new FileDescriptor[fds.length];
            for (int i = 0; i < fds.length; i++) {
                descriptors[i] = FileDescriptorCast.unsafeUsing(fds[i]).getFileDescriptor();
            }
            socket.setOutboundFileDescriptors(descriptors);
        }
        out.write(bytes);
        out.flush();
    }

    /** Read the next reply, failing if none arrives within the timeout or the back-end closed the socket. */
    public Reply readReply() throws IOException {
        final byte[] head = new byte[VhostUserHeader.LENGTH];
        readFully(head);
        final VhostUserHeader header = new VhostUserHeader().wrap(new UnsafeBuffer(head), 0);
        if (header.size() > VhostUserHeader.MAX_PAYLOAD) {
            throw new IOException("reply announces " + header.size() + " bytes");
        }
        final byte[] payload = new byte[(int) header.size()];
        readFully(payload);
        return new Reply(header.request(), header.flags(), payload);
    }

    private void readFully(final byte[] b) throws IOException {
        int done = 0;
        while (done < b.length) {
            final int n = in.read(b, done, b.length - done);
            if (n < 0) {
                throw new EOFException("back-end closed the connection");
            }
            done += n;
        }
    }

    /**
     * Send a request that has a reply of its own (GET_*) and return that reply, checking that it is one and
     * answers this request.
     */
    public Reply call(final int request, final byte[] payload, final int... fds) throws IOException {
        send(request, VhostUserHeader.VERSION, payload, fds);
        final Reply reply = readReply();
        if (reply.request() != request || (reply.flags() & VhostUserHeader.FLAG_REPLY) == 0
            || (reply.flags() & VhostUserHeader.VERSION_MASK) != VhostUserHeader.VERSION) {
            throw new IOException("expected a reply to " + FrontendRequest.name(request) + ", got request "
                + reply.request() + " flags 0x" + Integer.toHexString(reply.flags()));
        }
        return reply;
    }

    /**
     * Send a request without a reply of its own. With REPLY_ACK negotiated, asks for an ack and throws
     * {@link Rejected} if it is not 0; without, returns as soon as the bytes are written.
     */
    public void tell(final int request, final byte[] payload, final int... fds) throws IOException {
        if (!replyAck) {
            send(request, VhostUserHeader.VERSION, payload, fds);
            return;
        }
        final long ack = ack(request, payload, fds);
        if (ack != 0) {
            throw new Rejected(request, ack);
        }
    }

    /** Send with NEED_REPLY set and return the ack value (0: success), whatever was negotiated. */
    public long ack(final int request, final byte[] payload, final int... fds) throws IOException {
        send(request, VhostUserHeader.VERSION | VhostUserHeader.FLAG_NEED_REPLY, payload, fds);
        final Reply reply = readReply();
        if (reply.request() != request) {
            throw new IOException("ack for request " + reply.request() + " while waiting for " + FrontendRequest.name(request));
        }
        return reply.u64();
    }

    /**
     * Whether the back-end closes the connection within {@code timeout}: a read returns end of stream (or the
     * connection is reset). Any bytes received in the meantime are a failure of the caller's expectation and
     * make this return false.
     */
    public boolean awaitClosed(final Duration timeout) throws IOException {
        socket.setSoTimeout((int) timeout.toMillis());
        try {
            return in.read() < 0;
        } catch (final SocketTimeoutException e) {
            return false;
        } catch (final IOException e) {
            return true; // connection reset: closed as well
        } finally {
            socket.setSoTimeout((int) REPLY_TIMEOUT.toMillis());
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Typed requests

    public long getFeatures() throws IOException {
        return call(FrontendRequest.GET_FEATURES, new byte[0]).u64();
    }

    public void setFeatures(final long features) throws IOException {
        tell(FrontendRequest.SET_FEATURES, u64(features));
    }

    public long getProtocolFeatures() throws IOException {
        return call(FrontendRequest.GET_PROTOCOL_FEATURES, new byte[0]).u64();
    }

    /** SET_PROTOCOL_FEATURES; from now on REPLY_ACK is used if its bit is in {@code features}. */
    public void setProtocolFeatures(final long features) throws IOException {
        tell(FrontendRequest.SET_PROTOCOL_FEATURES, u64(features));
        replyAck = ProtocolFeature.has(features, ProtocolFeature.REPLY_ACK);
    }

    public void setOwner() throws IOException {
        tell(FrontendRequest.SET_OWNER, new byte[0]);
    }

    public void resetOwner() throws IOException {
        tell(FrontendRequest.RESET_OWNER, new byte[0]);
    }

    public void resetDevice() throws IOException {
        tell(FrontendRequest.RESET_DEVICE, new byte[0]);
    }

    public void setMemTable(final List<GuestMemoryImage.MemoryRegion> regions) throws IOException {
        final int[] fds = new int[regions.size()];
        for (int i = 0; i < fds.length; i++) {
            fds[i] = regions.get(i).fd();
        }
        tell(FrontendRequest.SET_MEM_TABLE, memTable(regions), fds);
    }

    /** A SET_MEM_TABLE payload (no fds): nregions, padding, regions. */
    public static byte[] memTable(final List<GuestMemoryImage.MemoryRegion> regions) {
        final byte[] payload = new byte[MemoryTableMessage.lengthFor(regions.size())];
        final MemoryTableMessage table = new MemoryTableMessage().wrap(new UnsafeBuffer(payload), 0);
        table.nregions(regions.size());
        for (int i = 0; i < regions.size(); i++) {
            describe(table.region(i), regions.get(i));
        }
        return payload;
    }

    public long getMaxMemSlots() throws IOException {
        return call(FrontendRequest.GET_MAX_MEM_SLOTS, new byte[0]).u64();
    }

    public void addMemReg(final GuestMemoryImage.MemoryRegion region) throws IOException {
        tell(FrontendRequest.ADD_MEM_REG, singleRegion(region), region.fd());
    }

    public void remMemReg(final GuestMemoryImage.MemoryRegion region) throws IOException {
        tell(FrontendRequest.REM_MEM_REG, singleRegion(region));
    }

    public static byte[] singleRegion(final GuestMemoryImage.MemoryRegion region) {
        final byte[] payload = new byte[SingleMemoryRegionMessage.LENGTH];
        final SingleMemoryRegionMessage m = new SingleMemoryRegionMessage().wrap(new UnsafeBuffer(payload), 0);
        describe(m.region(), region);
        return payload;
    }

    private static void describe(final MemoryRegionMessage r, final GuestMemoryImage.MemoryRegion region) {
        r.guestPhysAddr(region.guestPhysAddr()).memorySize(region.size()).userAddr(region.userAddr())
            .mmapOffset(region.mmapOffset());
    }

    public void setVringNum(final int index, final long num) throws IOException {
        tell(FrontendRequest.SET_VRING_NUM, vringState(index, num));
    }

    public void setVringBase(final int index, final long base) throws IOException {
        tell(FrontendRequest.SET_VRING_BASE, vringState(index, base));
    }

    public int getVringBase(final int index) throws IOException {
        final Reply reply = call(FrontendRequest.GET_VRING_BASE, vringState(index, 0));
        final VringStateMessage state = new VringStateMessage().wrap(reply.buffer(), 0);
        if (state.index() != index) {
            throw new IOException("GET_VRING_BASE answered for ring " + state.index());
        }
        return (int) state.num();
    }

    public void setVringEnable(final int index, final boolean enable) throws IOException {
        tell(FrontendRequest.SET_VRING_ENABLE, vringState(index, enable ? 1 : 0));
    }

    public static byte[] vringState(final long index, final long num) {
        final byte[] payload = new byte[VringStateMessage.LENGTH];
        final VringStateMessage m = new VringStateMessage().wrap(new UnsafeBuffer(payload), 0);
        m.index(index).num(num);
        return payload;
    }

    /** SET_VRING_ADDR with front-end virtual addresses of the three parts of the ring. */
    public void setVringAddr(final int index, final long descUva, final long usedUva, final long availUva) throws IOException {
        final byte[] payload = new byte[VringAddrMessage.LENGTH];
        final VringAddrMessage m = new VringAddrMessage().wrap(new UnsafeBuffer(payload), 0);
        m.index(index).flags(0).descUserAddr(descUva).usedUserAddr(usedUva).availUserAddr(availUva).logGuestAddr(0);
        tell(FrontendRequest.SET_VRING_ADDR, payload);
    }

    /** SET_VRING_KICK with an eventfd, or with the "no fd" flag (back-end polls) if {@code fd} is negative. */
    public void setVringKick(final int index, final int fd) throws IOException {
        vringFd(FrontendRequest.SET_VRING_KICK, index, fd);
    }

    public void setVringCall(final int index, final int fd) throws IOException {
        vringFd(FrontendRequest.SET_VRING_CALL, index, fd);
    }

    public void setVringErr(final int index, final int fd) throws IOException {
        vringFd(FrontendRequest.SET_VRING_ERR, index, fd);
    }

    private void vringFd(final int request, final int index, final int fd) throws IOException {
        if (fd < 0) {
            tell(request, u64(index | U64Message.VRING_NOFD_FLAG));
        } else {
            tell(request, u64(index), fd);
        }
    }

    public long getQueueNum() throws IOException {
        return call(FrontendRequest.GET_QUEUE_NUM, new byte[0]).u64();
    }

    /** SEND_RARP with the MAC in the low six bytes, first octet lowest. */
    public void sendRarp(final byte[] mac) throws IOException {
        long bits = 0;
        for (int i = 0; i < 6; i++) {
            bits |= (mac[i] & 0xFFL) << (8 * i);
        }
        tell(FrontendRequest.SEND_RARP, u64(bits));
    }

    public void netSetMtu(final long mtu) throws IOException {
        tell(FrontendRequest.NET_SET_MTU, u64(mtu));
    }

    /** GET_CONFIG of [offset, offset+size): returns the config bytes of the reply. */
    public byte[] getConfig(final int offset, final int size) throws IOException {
        final byte[] payload = new byte[ConfigMessage.HEADER_LENGTH + size];
        final ConfigMessage m = new ConfigMessage().wrap(new UnsafeBuffer(payload), 0);
        m.configOffset(offset).size(size).flags(0);
        final Reply reply = call(FrontendRequest.GET_CONFIG, payload);
        final ConfigMessage r = new ConfigMessage().wrap(reply.buffer(), 0);
        if (r.configOffset() != offset || r.size() != size || reply.payload().length != ConfigMessage.HEADER_LENGTH + size) {
            throw new IOException("GET_CONFIG reply for offset " + r.configOffset() + " size " + r.size());
        }
        final byte[] config = new byte[size];
        reply.buffer().getBytes(ConfigMessage.HEADER_LENGTH, config);
        return config;
    }

    public void setConfig(final int offset, final byte[] bytes) throws IOException {
        tell(FrontendRequest.SET_CONFIG, configPayload(offset, bytes));
    }

    public static byte[] configPayload(final int offset, final byte[] bytes) {
        final byte[] payload = new byte[ConfigMessage.HEADER_LENGTH + bytes.length];
        final ConfigMessage m = new ConfigMessage().wrap(new UnsafeBuffer(payload), 0);
        m.configOffset(offset).size(bytes.length).flags(0);
        new UnsafeBuffer(payload).putBytes(ConfigMessage.HEADER_LENGTH, bytes);
        return payload;
    }

    public void setStatus(final long status) throws IOException {
        tell(FrontendRequest.SET_STATUS, u64(status));
    }

    public long getStatus() throws IOException {
        return call(FrontendRequest.GET_STATUS, new byte[0]).u64();
    }

    public static byte[] u64(final long value) {
        final byte[] payload = new byte[U64Message.LENGTH];
        new UnsafeBuffer(payload).putLong(0, value, ByteOrder.LITTLE_ENDIAN);
        return payload;
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
