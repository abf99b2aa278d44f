package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.spec.vhostpci.AckMessage;
import dev.vhostnet.spec.vhostpci.HelloMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import dev.vhostnet.backend.transport.PeerTimeoutException;
import dev.vhostnet.backend.transport.SocketTimeouts;
import dev.vhostnet.backend.transport.UnixMessageSocket;
import org.newsclub.net.unix.AFUNIXSocket;

import java.io.IOException;
import java.util.UUID;
import java.util.function.BiConsumer;

/** A hand-driven protocol peer, for tests that need it to misbehave: explicit seq, version, length, fds. */
final class RawPeer implements AutoCloseable {
    /** How long the peer waits for the next message before it calls the other side silent. */
    static final long WAIT_MS = 5000;

    final UnixMessageSocket socket;
    final VhostPciChannel channel;
    final UUID uuid = UUID.randomUUID();
    final VhostPciFrame frame = new VhostPciFrame();
    long nextSeq = 1;

    RawPeer(final AFUNIXSocket socket) throws IOException {
        this.socket = UnixMessageSocket.adopt(socket, SocketTimeouts.DEFAULTS);
        this.channel = new VhostPciChannel(this.socket);
    }

    /** Write bytes as they are (any framing, any number of fds up to the kernel's limit). */
    void sendRaw(final byte[] bytes, final int... fds) throws IOException {
        socket.send(bytes, 0, bytes.length, fds, fds.length);
    }

    /** Send a message with the next seq, the given version and payload written by {@code writer}. */
    long send(final int type, final int version, final int length, final BiConsumer<MutableDirectBuffer, Integer> writer,
              final int... fds) throws IOException {
        return sendWithSeq(nextSeq, type, version, length, writer, fds);
    }

    long sendWithSeq(final long seq, final int type, final int version, final int length,
                     final BiConsumer<MutableDirectBuffer, Integer> writer, final int... fds) throws IOException {
        final byte[] bytes = new byte[VhostPciHeader.LENGTH + length];
        final UnsafeBuffer b = new UnsafeBuffer(bytes);
        new VhostPciHeader().<VhostPciHeader>wrap(b, 0).type(type).version(version).length(length).seq(seq).sender(uuid);
        if (writer != null) {
            writer.accept(b, VhostPciHeader.LENGTH);
        }
        channel.send(bytes, bytes.length, fds, fds.length);
        nextSeq = seq + 1;
        return seq;
    }

    long hello(final int role, final int min, final int max) throws IOException {
        return send(VhostPci.HELLO, 1, HelloMessage.LENGTH, (b, at) -> new HelloMessage().<HelloMessage>wrap(b, at)
            .role(role).minVersion(min).maxVersion(max).capabilities(VhostPci.CAP_ALL).heartbeatIntervalMs(1000)
            .heartbeatTimeoutMs(5000).maxRegions(32).maxVirtqueues(64));
    }

    long ack(final long ackedSeq, final int ackedType, final int status, final long reason, final long value)
        throws IOException {
        return send(VhostPci.ACK, 1, AckMessage.HEADER_LENGTH, (b, at) -> new AckMessage().<AckMessage>wrap(b, at)
            .ackedSeq(ackedSeq).ackedType(ackedType).status(status).reason(reason).value(value).nvqs(0));
    }

    /** Complete the HELLO exchange as the given role: read the session's HELLO, send ours and our DONE, read its ACK. */
    void handshake(final int role) throws IOException {
        expect(VhostPci.HELLO);
        final long theirHello = frame.seq();
        hello(role, 1, 1);
        ack(theirHello, VhostPci.HELLO, VhostPci.DONE, 0, 1);
        expect(VhostPci.ACK);
    }

    /** Read the next message, which must be of {@code type}. */
    VhostPciFrame expect(final int type) throws IOException {
        if (!channel.receive(frame, WAIT_MS)) {
            throw new IOException("end of stream while waiting for " + VhostPci.typeName(type));
        }
        if (frame.type() != type) {
            throw new IOException("got " + VhostPci.typeName(frame.type()) + ", expected " + VhostPci.typeName(type));
        }
        return frame;
    }

    AckMessage ackPayload() {
        return new AckMessage().wrap(frame.buffer(), VhostPciFrame.payloadOffset());
    }

    /** True when the other end closed the connection (end of stream or reset). */
    boolean closedByPeer() {
        try {
            while (channel.receive(frame, WAIT_MS)) {
                frame.closeUntakenFds(); // e.g. PINGs sent before the close
            }
            return true;
        } catch (final PeerTimeoutException e) {
            return false;
        } catch (final IOException e) {
            return true;
        }
    }

    @Override
    public void close() throws IOException {
        frame.closeUntakenFds();
        channel.close();
    }
}
