package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.spec.vhostpci.AckMessage;
import dev.vhostnet.spec.vhostpci.HeartbeatMessage;
import dev.vhostnet.spec.vhostpci.HelloMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import dev.vhostnet.spec.vhostpci.VhostPciMessages;
import dev.vhostnet.spec.vhostpci.VirtqState;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import dev.vhostnet.backend.transport.SocketTimeouts;
import org.newsclub.net.unix.AFUNIXSocket;

import java.io.Closeable;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One end of a vhost-pci socket connection (spec/VHOST-PCI.md §6, §7, §9): HELLO and version agreement,
 * sequence numbers, the pending-request table matched by {@code acked_seq}, heartbeats and the peer-loss
 * rule. What the requests mean (mapping memory, walking rings) is the {@link Handler}'s business.
 *
 * <p>Threads: one reader thread per session receives, checks and dispatches messages and answers PINGs; one
 * timer thread sends PINGs and enforces the heartbeat, HELLO and request timeouts. Sending is serialized, so
 * sequence numbers go out in order. {@link Handler#onRequest} runs on the reader thread; it may answer at once
 * or later from any thread with {@link #ack}.
 */
public final class VhostPciSession implements Closeable {

    /** Session parameters; {@link #defaults} gives the values of the spec. */
    public record Config(int role, UUID uuid, int minVersion, int maxVersion, long capabilities,
                         int heartbeatIntervalMs, int heartbeatTimeoutMs, int requestTimeoutMs,
                         int maxRegions, int maxVirtqueues) {
        public Config {
            if (role != VhostPci.ROLE_DEVICE && role != VhostPci.ROLE_CLIENT) {
                throw new IllegalArgumentException("role " + role);
            }
            if (minVersion < 1 || maxVersion < minVersion) {
                throw new IllegalArgumentException("versions " + minVersion + ".." + maxVersion);
            }
            if (heartbeatIntervalMs < 1 || heartbeatTimeoutMs < 2 * heartbeatIntervalMs) {
                throw new IllegalArgumentException("heartbeat timeout must be at least twice the interval");
            }
            if (requestTimeoutMs < heartbeatTimeoutMs) {
                throw new IllegalArgumentException("request timeout must not be below the heartbeat timeout");
            }
        }

        public static Config defaults(final int role, final UUID uuid) {
            return new Config(role, uuid, VhostPci.MIN_VERSION, VhostPci.MAX_VERSION, VhostPci.CAP_ALL,
                VhostPci.DEFAULT_HEARTBEAT_INTERVAL_MS, VhostPci.DEFAULT_HEARTBEAT_TIMEOUT_MS, 10_000,
                VhostPci.MAX_REGIONS, VhostPci.MAX_VIRTQUEUES);
        }

        public Config withVersions(final int min, final int max) {
            return new Config(role, uuid, min, max, capabilities, heartbeatIntervalMs, heartbeatTimeoutMs,
                requestTimeoutMs, maxRegions, maxVirtqueues);
        }

        public Config withHeartbeat(final int intervalMs, final int timeoutMs) {
            return new Config(role, uuid, minVersion, maxVersion, capabilities, intervalMs, timeoutMs,
                Math.max(requestTimeoutMs, timeoutMs), maxRegions, maxVirtqueues);
        }

        public Config withRequestTimeout(final int timeoutMs) {
            return new Config(role, uuid, minVersion, maxVersion, capabilities, heartbeatIntervalMs,
                heartbeatTimeoutMs, timeoutMs, maxRegions, maxVirtqueues);
        }

        public Config withCapabilities(final long caps) {
            return new Config(role, uuid, minVersion, maxVersion, caps, heartbeatIntervalMs, heartbeatTimeoutMs,
                requestTimeoutMs, maxRegions, maxVirtqueues);
        }
    }

    /** What the peer announced in its HELLO. */
    public record PeerInfo(UUID uuid, int role, int minVersion, int maxVersion, long capabilities,
                           long heartbeatIntervalMs, long heartbeatTimeoutMs, long maxRegions, long maxVirtqueues) {
    }

    /** A queue position (index, last avail/used index, wrap flags) as carried by DEL and DEL_DONE. */
    public record QueuePosition(int index, int lastAvailIdx, int lastUsedIdx, int stateFlags) {
    }

    /** A received ACK, copied out of the receive buffer. */
    public record Ack(long ackedSeq, int ackedType, int status, long reason, long value,
                      List<QueuePosition> states) {
        public boolean success() {
            return VhostPci.isSuccess(status);
        }

        @Override
        public String toString() {
            return "ACK(" + ackedSeq + " " + VhostPci.typeName(ackedType) + " " + VhostPci.statusName(status)
                + (reason != 0 ? " " + VhostPci.reasonName(reason) : "") + " value=0x" + Long.toHexString(value)
                + (states.isEmpty() ? "" : " states=" + states) + ")";
        }
    }

    /** Writes a request payload at {@code offset} of {@code buffer}. */
    @FunctionalInterface
    public interface PayloadWriter {
        void write(MutableDirectBuffer buffer, int offset);
    }

    public interface Handler {
        /**
         * A request from the peer whose length and fd count were checked (malformed ones are answered with a
         * FAIL by the session). Answer with {@link #ack} now or later. The frame is reused after this returns:
         * copy what is needed and take the fds to keep ({@link VhostPciFrame#takeFd}); the rest are closed.
         */
        void onRequest(VhostPciSession session, VhostPciFrame request);

        /**
         * HELLO admission (after the version check): 0 to accept the peer, or a reason code to refuse it
         * ({@link VhostPci#R_BUSY} when the device side serves another client).
         */
        default long admit(final VhostPciSession session, final UUID peer) {
            return VhostPci.R_NONE;
        }

        /** The connection is gone (peer loss, protocol error, refusal or local close); called once. */
        default void onClosed(final VhostPciSession session, final String reason) {
        }
    }

    private static final class Pending {
        final int type;
        final int op;
        final long sentNanos;
        final CompletableFuture<Ack> future = new CompletableFuture<>();

        Pending(final int type, final int op, final long sentNanos) {
            this.type = type;
            this.op = op;
            this.sentNanos = sentNanos;
        }
    }

    private final Config config;
    private final Handler handler;
    private final VhostPciChannel channel;
    private final VhostPciFrame frame = new VhostPciFrame();

    // send side: guarded by sendLock. A lock the timer can try without blocking: a peer that stops reading
    // leaves a writer stuck in send() holding it, and the timer must still be free to declare that peer dead.
    private final ReentrantLock sendLock = new ReentrantLock();
    /** When the send in progress started (System.nanoTime), 0 when none is: a send stuck too long is peer loss. */
    private volatile long sendStartedNanos;
    private final byte[] sendBytes = new byte[VhostPciHeader.LENGTH + VhostPci.MAX_PAYLOAD];
    private final UnsafeBuffer sendBuffer = new UnsafeBuffer(sendBytes);
    private final VhostPciHeader sendHeader = new VhostPciHeader();
    private final AckMessage sendAck = new AckMessage();
    private final HeartbeatMessage sendHeartbeat = new HeartbeatMessage();
    private final HelloMessage sendHello = new HelloMessage();
    private long nextSeq = 1;
    private volatile long lastSentNanos;
    private volatile long lastPingNanos;

    // receive side: reader thread
    private final AckMessage recvAck = new AckMessage();
    private final HeartbeatMessage recvHeartbeat = new HeartbeatMessage();
    private final HelloMessage recvHello = new HelloMessage();
    private long lastReceivedSeq;

    private final Map<Long, Pending> pending = new ConcurrentHashMap<>();
    private final Map<Long, Long> pingsInFlight = new ConcurrentHashMap<>();
    private final CompletableFuture<Integer> opened = new CompletableFuture<>();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final long startedNanos;
    private final ScheduledExecutorService timer;
    private final Thread reader;

    private volatile PeerInfo peer;
    private volatile int version;
    private volatile boolean peerHelloAccepted;
    private volatile boolean open;
    private volatile long lastReceivedNanos;
    private volatile long leaseDeadlineNanos;
    private volatile String closeReason;
    private long helloSeq;

    private VhostPciSession(final AFUNIXSocket socket, final Config config, final Handler handler) throws IOException {
        this.config = config;
        this.handler = handler;
        // The heartbeat time-out bounds silence between messages already; inside one, and for a peer that stops
        // reading what we send (our send would block with sendLock held), the socket enforces the same bound.
        this.channel = new VhostPciChannel(socket,
            SocketTimeouts.of(java.time.Duration.ofMillis(config.heartbeatTimeoutMs())));
        sendHeader.wrap(sendBuffer, 0);
        this.startedNanos = System.nanoTime();
        this.lastReceivedNanos = startedNanos;
        final String name = config.role() == VhostPci.ROLE_DEVICE ? "device" : "client";
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            final Thread t = new Thread(r, "vhost-pci-timer-" + name);
            t.setDaemon(true);
            return t;
        });
        this.reader = new Thread(this::readLoop, "vhost-pci-reader-" + name);
        this.reader.setDaemon(true);
    }

    /** Send HELLO on a connected socket and start reading and heartbeating. */
    public static VhostPciSession start(final AFUNIXSocket socket, final Config config, final Handler handler)
        throws IOException {
        final VhostPciSession s = new VhostPciSession(socket, config, handler);
        final long tick = Math.max(5, Math.min(config.heartbeatIntervalMs(), config.heartbeatTimeoutMs()) / 4);
        s.timer.scheduleAtFixedRate(s::tick, tick, tick, TimeUnit.MILLISECONDS);
        try {
            s.sendHelloMessage();
        } catch (final IOException e) {
            s.fail("cannot send HELLO: " + e.getMessage());
            throw e;
        }
        s.reader.start();
        return s;
    }

    // ---- public API ------------------------------------------------------------------------------------------

    /**
     * Wait until the HELLO exchange is complete.
     *
     * @return the agreed protocol version
     * @throws VhostPciException if the peer or we refused the HELLO ({@link VhostPciException#reason()}), or
     *                           the connection was lost or the wait timed out
     */
    public int awaitOpen(final Duration timeout) throws VhostPciException, InterruptedException {
        try {
            return opened.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (final ExecutionException e) {
            throw e.getCause() instanceof VhostPciException v ? v : new VhostPciException(e.getCause().toString());
        } catch (final TimeoutException e) {
            throw new VhostPciException("HELLO exchange not complete after " + timeout.toMillis() + " ms");
        }
    }

    public boolean isOpen() {
        return open && !closed.get();
    }

    public boolean isClosed() {
        return closed.get();
    }

    /** Why the session closed, or null while it is not. */
    public String closeReason() {
        return closeReason;
    }

    public Config config() {
        return config;
    }

    /** Agreed version (0 until open). */
    public int version() {
        return version;
    }

    public PeerInfo peer() {
        return peer;
    }

    /** Capabilities both sides have. */
    public long capabilities() {
        final PeerInfo p = peer;
        return p == null ? 0 : p.capabilities() & config.capabilities();
    }

    public int pendingRequests() {
        return pending.size();
    }

    /** Time (System.nanoTime) of the last message received from the peer. */
    public long lastReceivedNanos() {
        return lastReceivedNanos;
    }

    /**
     * Until when (System.nanoTime) the peer cannot have declared us dead (§9.3): the send time of the last
     * PING the peer answered, plus three quarters of the peer's heartbeat timeout. 0 before the first PONG.
     */
    public long leaseDeadlineNanos() {
        return leaseDeadlineNanos;
    }

    /**
     * Send a request; the future completes with its ACK (successful or not), or exceptionally with a
     * {@link VhostPciException} when the session closes first.
     *
     * @param fds fds to attach (must stay open until this returns; the caller keeps ownership)
     */
    public CompletableFuture<Ack> request(final int type, final int payloadLength, final PayloadWriter writer,
                                          final int... fds) {
        if (!VhostPci.isRequest(type) || type == VhostPci.HELLO) {
            throw new IllegalArgumentException(VhostPci.typeName(type) + " is not a request the caller may send");
        }
        if (payloadLength < 0 || payloadLength > VhostPci.MAX_PAYLOAD) {
            throw new IllegalArgumentException("payload of " + payloadLength + " bytes");
        }
        if (!isOpen()) {
            return CompletableFuture.failedFuture(new VhostPciException(
                closed.get() ? "session closed: " + closeReason : "session not open yet"));
        }
        final IOException failure;
        sendLock.lock();
        try {
            if (pending.size() >= VhostPci.MAX_IN_FLIGHT) {
                return CompletableFuture.failedFuture(new VhostPciException(
                    VhostPci.MAX_IN_FLIGHT + " requests already in flight"));
            }
            sendBuffer.setMemory(VhostPciHeader.LENGTH, payloadLength, (byte) 0);
            writer.write(sendBuffer, VhostPciHeader.LENGTH);
            final int op = payloadLength >= 2 ? sendBuffer.getShort(VhostPciHeader.LENGTH,
                java.nio.ByteOrder.LITTLE_ENDIAN) & 0xFFFF : 0;
            final long seq = nextSeq;
            final Pending p = new Pending(type, op, System.nanoTime());
            pending.put(seq, p);
            try {
                writeLocked(type, version, payloadLength, fds, fds.length);
                return p.future;
            } catch (final IOException e) {
                pending.remove(seq);
                failure = e;
            }
        } finally {
            sendLock.unlock();
        }
        // Outside sendLock: fail() calls the handler, which may take its own locks (lock order: handler, send).
        fail("send failed: " + failure.getMessage());
        return CompletableFuture.failedFuture(new VhostPciException("send failed: " + failure.getMessage()));
    }

    /** Answer the peer's request {@code ackedSeq}. */
    public void ack(final long ackedSeq, final int ackedType, final int status, final long reason, final long value,
                    final QueuePosition... states) throws IOException {
        if (states.length > VhostPci.MAX_VIRTQUEUES) {
            throw new IllegalArgumentException(states.length + " queue states");
        }
        sendLock.lock();
        try {
            final int length = AckMessage.lengthFor(states.length);
            sendAck.wrap(sendBuffer, VhostPciHeader.LENGTH);
            sendAck.ackedSeq(ackedSeq).ackedType(ackedType).status(status).reason(reason).value(value)
                .nvqs(states.length);
            for (int i = 0; i < states.length; i++) {
                final QueuePosition q = states[i];
                sendAck.state(i).index(q.index()).lastAvailIdx(q.lastAvailIdx()).lastUsedIdx(q.lastUsedIdx())
                    .stateFlags(q.stateFlags());
            }
            final int v = ackedType == VhostPci.HELLO ? VhostPci.VERSION_1 : version;
            writeLocked(VhostPci.ACK, v, length, null, 0);
        } finally {
            sendLock.unlock();
        }
    }

    /** Close the connection locally (the peer sees a hang-up). */
    @Override
    public void close() {
        fail("closed locally");
    }

    // ---- sending -------------------------------------------------------------------------------------------

    /** Header + payload already in sendBuffer; caller holds sendLock. */
    private void writeLocked(final int type, final int msgVersion, final int payloadLength, final int[] fds,
                             final int fdCount) throws IOException {
        if (closed.get()) {
            throw new VhostPciException("session closed: " + closeReason);
        }
        sendHeader.type(type).version(msgVersion).length(payloadLength).seq(nextSeq).sender(config.uuid());
        nextSeq++;
        sendStartedNanos = System.nanoTime();
        try {
            channel.send(sendBytes, VhostPciHeader.LENGTH + payloadLength, fds, fdCount);
        } finally {
            sendStartedNanos = 0;
        }
        lastSentNanos = System.nanoTime();
    }

    private void sendHelloMessage() throws IOException {
        sendLock.lock();
        try {
            sendHello.wrap(sendBuffer, VhostPciHeader.LENGTH);
            sendHello.role(config.role()).minVersion(config.minVersion()).maxVersion(config.maxVersion())
                .capabilities(config.capabilities()).heartbeatIntervalMs(config.heartbeatIntervalMs())
                .heartbeatTimeoutMs(config.heartbeatTimeoutMs()).maxRegions(config.maxRegions())
                .maxVirtqueues(config.maxVirtqueues());
            helloSeq = nextSeq;
            pending.put(helloSeq, new Pending(VhostPci.HELLO, 0, System.nanoTime()));
            writeLocked(VhostPci.HELLO, VhostPci.VERSION_1, HelloMessage.LENGTH, null, 0);
        } finally {
            sendLock.unlock();
        }
    }

    private void sendHeartbeat(final int op, final long pingSeq, final long timestamp) throws IOException {
        sendLock.lock();
        try {
            sendHeartbeat.wrap(sendBuffer, VhostPciHeader.LENGTH);
            sendHeartbeat.op(op).pingSeq(pingSeq).timestampNs(timestamp);
            if (op == VhostPci.PING) {
                pingsInFlight.put(nextSeq, timestamp);
                lastPingNanos = timestamp;
            }
            writeLocked(VhostPci.HEARTBEAT, version, HeartbeatMessage.LENGTH, null, 0);
        } finally {
            sendLock.unlock();
        }
    }

    // ---- receiving -----------------------------------------------------------------------------------------

    private void readLoop() {
        try {
            while (!closed.get()) {
                if (!channel.receive(frame)) {
                    fail("peer hung up");
                    return;
                }
                lastReceivedNanos = System.nanoTime();
                dispatch();
                frame.closeUntakenFds();
            }
        } catch (final VhostPciException e) {
            fail("protocol error: " + e.getMessage());
        } catch (final IOException | RuntimeException e) {
            fail(closed.get() ? closeReason : "connection lost: " + e);
        } finally {
            frame.closeUntakenFds();
        }
    }

    private void dispatch() throws IOException {
        final VhostPciHeader h = frame.header();
        final int type = h.type();
        if (h.seq() != lastReceivedSeq + 1) {
            throw new VhostPciException("msg_seq " + h.seq() + " after " + lastReceivedSeq);
        }
        lastReceivedSeq = h.seq();
        final PeerInfo p = peer;
        if (p == null) {
            if (type != VhostPci.HELLO) {
                throw new VhostPciException(VhostPci.typeName(type) + " before HELLO");
            }
        } else if (!h.senderIs(p.uuid())) {
            throw new VhostPciException("sender UUID " + h.sender() + " is not the HELLO's " + p.uuid());
        }
        final int payload = VhostPciFrame.payloadOffset();
        final int valid = VhostPciMessages.validatePayload(type, frame.buffer(), payload, frame.payloadLength());
        switch (type) {
            case VhostPci.HELLO:
                if (p != null) {
                    throw new VhostPciException("second HELLO");
                }
                onHello(valid);
                return;
            case VhostPci.ACK:
                requireValid(valid);
                onAck();
                return;
            case VhostPci.HEARTBEAT:
                requireOpenVersion(h);
                requireValid(valid);
                onHeartbeat();
                return;
            default:
                requireOpenVersion(h);
                onRequest(type, valid);
        }
    }

    private void requireValid(final int valid) throws VhostPciException {
        if (valid != VhostPciMessages.OK) {
            throw new VhostPciException("malformed " + VhostPci.typeName(frame.type()) + ": "
                + VhostPciMessages.describe(valid));
        }
        if (frame.fdCount() > 0) {
            throw new VhostPciException(VhostPci.typeName(frame.type()) + " came with fds");
        }
    }

    private void requireOpenVersion(final VhostPciHeader h) throws VhostPciException {
        if (!open) {
            throw new VhostPciException(VhostPci.typeName(h.type()) + " before the session is open");
        }
        if (h.version() != version) {
            throw new VhostPciException(VhostPci.typeName(h.type()) + " with msg_version " + h.version()
                + ", agreed " + version);
        }
    }

    private void onHello(final int valid) throws IOException {
        final VhostPciHeader h = frame.header();
        final long seq = h.seq();
        if (h.version() != VhostPci.VERSION_1) {
            throw new VhostPciException("HELLO with msg_version " + h.version());
        }
        if (valid != VhostPciMessages.OK || frame.fdCount() > 0) {
            refuseHello(seq, VhostPci.R_BAD_MESSAGE, 0, "malformed HELLO");
            return;
        }
        recvHello.wrap(frame.buffer(), VhostPciFrame.payloadOffset());
        final PeerInfo info = new PeerInfo(h.sender(), recvHello.role(), recvHello.minVersion(),
            recvHello.maxVersion(), recvHello.capabilities(), recvHello.heartbeatIntervalMs(),
            recvHello.heartbeatTimeoutMs(), recvHello.maxRegions(), recvHello.maxVirtqueues());
        peer = info;
        if (info.uuid().equals(config.uuid())) {
            refuseHello(seq, VhostPci.R_SELF, 0, "peer has our own UUID");
            return;
        }
        final int expectedRole = config.role() == VhostPci.ROLE_DEVICE ? VhostPci.ROLE_CLIENT : VhostPci.ROLE_DEVICE;
        if (info.role() != expectedRole) {
            refuseHello(seq, VhostPci.R_ROLE_CONFLICT, 0, "peer role " + info.role() + ", expected " + expectedRole);
            return;
        }
        if (info.heartbeatIntervalMs() < 1 || info.heartbeatTimeoutMs() < 2 * info.heartbeatIntervalMs()) {
            refuseHello(seq, VhostPci.R_BAD_MESSAGE, 0, "peer heartbeat " + info.heartbeatIntervalMs() + "/"
                + info.heartbeatTimeoutMs() + " ms");
            return;
        }
        final int v = VhostPci.agreedVersion(config.minVersion(), config.maxVersion(), info.minVersion(),
            info.maxVersion());
        if (v < 0) {
            refuseHello(seq, VhostPci.R_VERSION_UNSUPPORTED,
                config.minVersion() | (long) config.maxVersion() << 16,
                "no common version: we speak " + config.minVersion() + ".." + config.maxVersion() + ", peer "
                    + info.minVersion() + ".." + info.maxVersion());
            return;
        }
        final long admit = handler.admit(this, info.uuid());
        if (admit != VhostPci.R_NONE) {
            refuseHello(seq, admit, 0, "peer " + info.uuid() + " not admitted: " + VhostPci.reasonName(admit));
            return;
        }
        version = v;
        peerHelloAccepted = true;
        sendFromReader(() -> ack(seq, VhostPci.HELLO, VhostPci.DONE, VhostPci.R_NONE, v));
    }

    private void refuseHello(final long seq, final long reason, final long value, final String why) throws IOException {
        final String message = "HELLO refused (" + VhostPci.reasonName(reason) + "): " + why;
        opened.completeExceptionally(new VhostPciException(message, reason));
        try {
            ack(seq, VhostPci.HELLO, VhostPci.FAIL, reason, value);
            drainUntilPeerCloses();
        } catch (final IOException e) {
            // the peer is gone already
        } finally {
            fail(message);
        }
    }

    /**
     * After refusing a HELLO: half-close and read (discarding) until the peer closes, at most one second. Closing
     * at once could make the peer's write of its own HELLO ACK fail, after which it could no longer read our
     * refusal and its reason.
     */
    private void drainUntilPeerCloses() throws IOException {
        channel.shutdownOutput();
        final long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        try {
            long left;
            while ((left = end - System.nanoTime()) > 0
                && channel.receive(frame, TimeUnit.NANOSECONDS.toMillis(left) + 1)) {
                frame.closeUntakenFds();
            }
        } catch (final IOException e) {
            // timeout, reset or garbage: done either way
        }
    }

    private void onAck() throws IOException {
        recvAck.wrap(frame.buffer(), VhostPciFrame.payloadOffset());
        final long acked = recvAck.ackedSeq();
        final Pending p = pending.get(acked);
        if (p == null) {
            throw new VhostPciException("ACK for seq " + acked + ", which is not pending");
        }
        if (p.type != recvAck.ackedType()) {
            throw new VhostPciException("ACK for seq " + acked + " names " + VhostPci.typeName(recvAck.ackedType())
                + ", the request was " + VhostPci.typeName(p.type));
        }
        if (!VhostPci.statusFits(p.type, p.op, recvAck.status())) {
            throw new VhostPciException(VhostPci.statusName(recvAck.status()) + " does not answer "
                + VhostPci.typeName(p.type));
        }
        final int expectedVersion = p.type == VhostPci.HELLO ? VhostPci.VERSION_1 : version;
        if (frame.header().version() != expectedVersion) {
            throw new VhostPciException("ACK with msg_version " + frame.header().version());
        }
        if (p.type != VhostPci.HELLO && !open) {
            throw new VhostPciException("ACK before the session is open");
        }
        pending.remove(acked);
        final int n = (int) recvAck.nvqs();
        final List<QueuePosition> states;
        if (n == 0) {
            states = List.of();
        } else {
            final List<QueuePosition> list = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                final VirtqState s = recvAck.state(i);
                list.add(new QueuePosition(s.index(), s.lastAvailIdx(), s.lastUsedIdx(), s.stateFlags()));
            }
            states = Collections.unmodifiableList(list);
        }
        final Ack ack = new Ack(acked, recvAck.ackedType(), recvAck.status(), recvAck.reason(), recvAck.value(),
            states);
        if (p.type == VhostPci.HELLO) {
            onHelloAck(ack);
        }
        p.future.complete(ack);
    }

    private void onHelloAck(final Ack ack) throws VhostPciException {
        if (ack.status() != VhostPci.DONE) {
            String message = "peer refused our HELLO: " + VhostPci.reasonName(ack.reason());
            if (ack.reason() == VhostPci.R_VERSION_UNSUPPORTED) {
                message += " (peer speaks " + (ack.value() & 0xFFFF) + ".." + ((ack.value() >>> 16) & 0xFFFF)
                    + ", we " + config.minVersion() + ".." + config.maxVersion() + ")";
            }
            opened.completeExceptionally(new VhostPciException(message, ack.reason()));
            fail(message);
            return;
        }
        if (!peerHelloAccepted) {
            throw new VhostPciException("HELLO acked before the peer's HELLO was accepted");
        }
        if (ack.value() != version) {
            throw new VhostPciException("peer agreed on version " + ack.value() + ", we on " + version);
        }
        open = true;
        opened.complete(version);
    }

    private void onHeartbeat() throws IOException {
        recvHeartbeat.wrap(frame.buffer(), VhostPciFrame.payloadOffset());
        if (recvHeartbeat.op() == VhostPci.PING) {
            final long pingSeq = frame.seq();
            final long timestamp = recvHeartbeat.timestampNs();
            sendFromReader(() -> sendHeartbeat(VhostPci.PONG, pingSeq, timestamp));
            return;
        }
        final Long sent = pingsInFlight.remove(recvHeartbeat.pingSeq());
        if (sent == null || sent != recvHeartbeat.timestampNs()) {
            throw new VhostPciException("PONG for seq " + recvHeartbeat.pingSeq() + ", which is not a PING of ours");
        }
        leaseFrom(sent);
    }

    /**
     * Extend the lease (§9.3) with a proof that the peer received a message we sent at {@code sentNanos}: a PONG,
     * or a request the peer may only send after it received our answer sent then (the device side uses the
     * FEATURE_BITS answer that a DEVICE_INFO ADD must wait for).
     */
    public void leaseFrom(final long sentNanos) {
        final PeerInfo p = peer;
        if (p == null) {
            return;
        }
        final long lease = sentNanos + TimeUnit.MILLISECONDS.toNanos(p.heartbeatTimeoutMs()) * 3 / 4;
        synchronized (pingsInFlight) {
            if (lease - leaseDeadlineNanos > 0 || leaseDeadlineNanos == 0) {
                leaseDeadlineNanos = lease;
            }
        }
    }

    private void onRequest(final int type, final int valid) throws IOException {
        final long seq = frame.seq();
        final int op = frame.payloadLength() >= 2
            ? frame.buffer().getShort(VhostPciFrame.payloadOffset(), java.nio.ByteOrder.LITTLE_ENDIAN) & 0xFFFF : 0;
        if (valid != VhostPciMessages.OK) {
            sendFromReader(() -> ack(seq, type, failStatus(type, op), VhostPci.R_BAD_MESSAGE, 0));
            return;
        }
        final int fds = VhostPciMessages.expectedFds(type, frame.buffer(), VhostPciFrame.payloadOffset());
        if (fds != frame.fdCount()) {
            sendFromReader(() -> ack(seq, type, failStatus(type, op), VhostPci.R_BAD_FDS, 0));
            return;
        }
        handler.onRequest(this, frame);
    }

    private interface Send {
        void run() throws IOException;
    }

    /**
     * A send from the reader thread. If it fails, the peer has closed: keep reading, because what it sent
     * before closing (e.g. the ACK that refuses our HELLO, with its reason) is still queued; the end of stream
     * then ends the session.
     */
    private void sendFromReader(final Send send) {
        try {
            send.run();
        } catch (final IOException e) {
            // the read side reports the loss
        }
    }

    /** The FAIL status that answers a request of {@code type} with {@code op}. */
    public static int failStatus(final int type, final int op) {
        if (type == VhostPci.MEMORY_INFO || type == VhostPci.DEVICE_INFO) {
            return op == VhostPci.OP_DEL ? VhostPci.DEL_FAIL : VhostPci.ADD_FAIL;
        }
        return VhostPci.FAIL;
    }

    // ---- timers and failure --------------------------------------------------------------------------------

    private void tick() {
        if (closed.get()) {
            return;
        }
        final long now = System.nanoTime();
        final long timeout = TimeUnit.MILLISECONDS.toNanos(config.heartbeatTimeoutMs());
        if (!open && now - startedNanos > timeout) {
            fail("HELLO exchange not complete within " + config.heartbeatTimeoutMs() + " ms");
            return;
        }
        if (now - lastReceivedNanos > timeout) {
            fail("heartbeat timeout: nothing received for " + TimeUnit.NANOSECONDS.toMillis(now - lastReceivedNanos)
                + " ms (timeout " + config.heartbeatTimeoutMs() + " ms)");
            return;
        }
        final long requestTimeout = TimeUnit.MILLISECONDS.toNanos(config.requestTimeoutMs());
        for (final Map.Entry<Long, Pending> e : pending.entrySet()) {
            if (now - e.getValue().sentNanos > requestTimeout) {
                fail("request timeout: " + VhostPci.typeName(e.getValue().type) + " seq " + e.getKey()
                    + " unanswered for " + config.requestTimeoutMs() + " ms");
                return;
            }
        }
        final long sending = sendStartedNanos;
        if (sending != 0 && now - sending > timeout) {
            fail("peer stopped reading: a send has been blocked for "
                + TimeUnit.NANOSECONDS.toMillis(now - sending) + " ms (timeout " + config.heartbeatTimeoutMs() + " ms)");
            return;
        }
        pingsInFlight.values().removeIf(t0 -> now - t0 > timeout);
        if (open && now - lastPingNanos >= TimeUnit.MILLISECONDS.toNanos(config.heartbeatIntervalMs())) {
            // Never wait for the send lock here: its holder may be stuck writing to a peer that does not read,
            // and this thread is the one that must notice (above) and close the connection.
            if (!sendLock.tryLock()) {
                return;
            }
            try {
                sendHeartbeat(VhostPci.PING, 0, now);
            } catch (final IOException e) {
                fail("cannot send PING: " + e.getMessage());
            } finally {
                sendLock.unlock();
            }
        }
    }

    private void fail(final String reason) {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        closeReason = reason;
        channel.close();
        timer.shutdownNow();
        final VhostPciException e = new VhostPciException("session closed: " + reason);
        opened.completeExceptionally(e);
        for (final Pending p : pending.values()) {
            p.future.completeExceptionally(e);
        }
        pending.clear();
        handler.onClosed(this, reason);
    }
}
