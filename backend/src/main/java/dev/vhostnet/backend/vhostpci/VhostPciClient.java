package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.vhostpci.VhostPciSession.Ack;
import dev.vhostnet.backend.vhostpci.VhostPciSession.QueuePosition;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.Virtqueue;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.FeatureBitsMessage;
import dev.vhostnet.spec.vhostpci.MacAddress;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.PeerConnectionMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VirtqInfo;
import org.agrona.UnsafeAccess;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Logger;

/**
 * Client side of vhost-pci peer mode (spec/VHOST-PCI.md §8.2, {@code --vhost-pci-connect PATH}). Connects to a
 * device side (reconnecting with back-off), exports its front-end's memory table, negotiated features, ring
 * layout, positions and eventfds, and while the device is delegated does not run its rings: the device side
 * walks them. Every front-end request that may change what was exported takes the rings back first (exact
 * positions from DEL_DONE, so GET_VRING_BASE answers exactly), and the delegation is renewed afterwards. When
 * the device side goes away the rings are taken back from guest memory and run locally (no peer: frames are
 * dropped and counted) until a device side is back.
 *
 * <p>Threads: front-end requests call {@link #begin}/{@link #end} on the handler's control thread; session
 * events (open, loss, the device side's requests) run on this client's event thread. Both hold {@link #lock}
 * while they touch the delegation, so the handler's state is never read half-changed. The session's reader
 * thread never takes the lock: it only completes ACK futures and queues events.
 */
public final class VhostPciClient implements DeviceDelegation, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(VhostPciClient.class.getName());
    private static final Duration MAX_BACKOFF = Duration.ofSeconds(30);
    /** Front-end requests that change nothing a delegated device depends on. */
    private static final Set<Integer> NEUTRAL = Set.of(FrontendRequest.GET_FEATURES,
        FrontendRequest.GET_PROTOCOL_FEATURES, FrontendRequest.GET_QUEUE_NUM, FrontendRequest.GET_CONFIG,
        FrontendRequest.SET_CONFIG, FrontendRequest.GET_MAX_MEM_SLOTS, FrontendRequest.GET_STATUS,
        FrontendRequest.SEND_RARP, FrontendRequest.NET_SET_MTU, FrontendRequest.SET_BACKEND_REQ_FD,
        FrontendRequest.SET_LOG_FD, FrontendRequest.SET_VRING_ERR, FrontendRequest.IOTLB_MSG,
        FrontendRequest.GET_INFLIGHT_FD, FrontendRequest.SET_INFLIGHT_FD);

    private final Path path;
    private final VhostPciSession.Config config;
    private final long offerable;
    private final Duration initialBackoff;
    private final ReentrantLock lock = new ReentrantLock();
    private final ExecutorService events;
    private final Thread connector;
    private volatile boolean closing;

    private volatile VhostPciSession session;
    private volatile CompletableFuture<Void> sessionClosed = new CompletableFuture<>();
    private volatile boolean peerOn;

    // guarded by lock
    private Device device;
    /** Regions the device side holds: gpa, size, uva, mmap offset. */
    private final List<long[]> exported = new ArrayList<>();
    private long sentFeatures = -1;
    private long acceptedFeatures = -1;
    /** Offerable features the device side cannot handle: hidden from GET_FEATURES (renegotiation). */
    private volatile long rejected;
    private Delegated delegated;
    private boolean sentOn;
    private volatile int delegations;

    /** A device handed to the device side: which queues, how it was described. */
    private record Delegated(long deviceId, boolean packed, int[] queues) {
    }

    /**
     * @param offerable features this back-end offers its front-end (probed with FEATURE_BITS at connection)
     */
    public VhostPciClient(final Path path, final VhostPciSession.Config config, final long offerable,
                          final Duration initialBackoff) {
        if (config.role() != VhostPci.ROLE_CLIENT) {
            throw new IllegalArgumentException("client side needs the CLIENT role");
        }
        this.path = path;
        this.config = config;
        this.offerable = offerable & ~VhostPciDevice.TRANSPORT_BITS;
        this.initialBackoff = initialBackoff;
        this.events = Executors.newSingleThreadExecutor(r -> {
            final Thread t = new Thread(r, "vhost-pci-client");
            t.setDaemon(true);
            return t;
        });
        this.connector = new Thread(this::connectLoop, "vhost-pci-connect");
        this.connector.setDaemon(true);
    }

    public void start() {
        LOG.info("vhost-pci client side, UUID " + config.uuid() + ", connecting to " + path);
        connector.start();
    }

    public UUID uuid() {
        return config.uuid();
    }

    /** Whether the rings are handed to the device side now. */
    public boolean isDelegated() {
        lock.lock();
        try {
            return delegated != null;
        } finally {
            lock.unlock();
        }
    }

    /** How many times the device was handed to a device side (DEVICE_INFO ADD_DONE). */
    public int delegations() {
        return delegations;
    }

    public boolean isConnected() {
        final VhostPciSession s = session;
        return s != null && s.isOpen();
    }

    // ---- connection ------------------------------------------------------------------------------------

    private void connectLoop() {
        Duration backoff = initialBackoff;
        while (!closing) {
            VhostPciSession s = null;
            long retryAfter = backoff.toMillis();
            try {
                final AFUNIXSocket socket = AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(path.toFile()));
                final CompletableFuture<Void> closed = new CompletableFuture<>();
                sessionClosed = closed;
                s = VhostPciSession.start(socket, config, new Events(closed));
                final int version = s.awaitOpen(Duration.ofMillis(config.heartbeatTimeoutMs()));
                session = s;
                LOG.info("vhost-pci: connected to device side " + s.peer().uuid() + " at " + path + ", version "
                    + version);
                final VhostPciSession opened = s;
                events.execute(() -> onOpen(opened));
                backoff = initialBackoff;
                closed.join();
                retryAfter = initialBackoff.toMillis();
            } catch (final VhostPciException e) {
                LOG.warning("vhost-pci: " + e.getMessage());
                if (e.reason() == VhostPci.R_VERSION_UNSUPPORTED || e.reason() == VhostPci.R_ROLE_CONFLICT) {
                    retryAfter = MAX_BACKOFF.toMillis();
                }
                if (s != null) {
                    s.close();
                }
            } catch (final IOException | RuntimeException e) {
                LOG.fine("vhost-pci: cannot connect to " + path + ": " + e.getMessage());
                if (s != null) {
                    s.close();
                }
            } catch (final InterruptedException e) {
                return;
            }
            if (closing) {
                return;
            }
            try {
                Thread.sleep(retryAfter);
            } catch (final InterruptedException e) {
                return;
            }
            backoff = backoff.multipliedBy(2).compareTo(MAX_BACKOFF) > 0 ? MAX_BACKOFF : backoff.multipliedBy(2);
        }
    }

    /** The device side's events, queued onto the event thread (the reader thread must never wait for the lock). */
    private final class Events implements VhostPciSession.Handler {
        private final CompletableFuture<Void> closed;

        Events(final CompletableFuture<Void> closed) {
            this.closed = closed;
        }

        @Override
        public void onRequest(final VhostPciSession s, final VhostPciFrame frame) {
            final long seq = frame.seq();
            final int type = frame.type();
            final int at = VhostPciFrame.payloadOffset();
            switch (type) {
                case VhostPci.DEVICE_INFO: {
                    final DeviceInfoMessage m = new DeviceInfoMessage().wrap(frame.buffer(), at);
                    if (m.op() != VhostPci.OP_DEL) {
                        ack(s, seq, type, VhostPci.ADD_FAIL, VhostPci.R_BAD_MESSAGE, 0);
                        return;
                    }
                    final List<QueuePosition> states = new ArrayList<>();
                    for (int i = 0; i < (int) m.nvqs(); i++) {
                        states.add(new QueuePosition(m.state(i).index(), m.state(i).lastAvailIdx(),
                            m.state(i).lastUsedIdx(), m.state(i).stateFlags()));
                    }
                    events.execute(() -> onDeviceReturned(s, seq, states));
                    return;
                }
                case VhostPci.FEATURE_BITS: {
                    final long f = new FeatureBitsMessage().<FeatureBitsMessage>wrap(frame.buffer(), at).features();
                    events.execute(() -> onDeviceFeatures(s, seq, f));
                    return;
                }
                case VhostPci.PEER_CONNECTION: {
                    final boolean on = new PeerConnectionMessage().<PeerConnectionMessage>wrap(frame.buffer(), at)
                        .state() == VhostPci.CONNECTION_ON;
                    ack(s, seq, type, VhostPci.DONE, VhostPci.R_NONE, 0);
                    final boolean changed = on != peerOn;
                    peerOn = on;
                    if (changed) {
                        events.execute(VhostPciClient.this::notifyLink);
                    }
                    return;
                }
                default:
                    ack(s, seq, type, VhostPciSession.failStatus(type, 0), VhostPci.R_BAD_MESSAGE, 0);
            }
        }

        @Override
        public void onClosed(final VhostPciSession s, final String reason) {
            LOG.info("vhost-pci: session with device side closed: " + reason);
            events.execute(() -> onLost(s));
            closed.complete(null);
        }
    }

    private static void ack(final VhostPciSession s, final long seq, final int type, final int status,
                            final long reason, final long value) {
        try {
            s.ack(seq, type, status, reason, value);
        } catch (final IOException e) {
            // the reader reports the loss
        }
    }

    private void onOpen(final VhostPciSession s) {
        lock.lock();
        try {
            if (session != s || !s.isOpen()) {
                return;
            }
            // Probe: which of the features we offer can the device side handle? Hide the others from now on.
            final Ack a = await(s.request(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, (b, o) ->
                new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, o).features(offerable).flags(0)));
            if (a != null && a.success()) {
                rejected = offerable & ~a.value();
                if (rejected != 0) {
                    LOG.info("vhost-pci: device side cannot handle features 0x" + Long.toHexString(rejected)
                        + "; they are no longer offered to the front-end");
                }
            }
            tryDelegate();
        } finally {
            lock.unlock();
        }
    }

    private void onLost(final VhostPciSession s) {
        lock.lock();
        try {
            if (session != s) {
                return;
            }
            session = null;
            peerOn = false;
            if (delegated != null) {
                LOG.warning("vhost-pci: device side lost while it ran our rings; recovering them from guest memory");
                final Delegated del = delegated;
                delegated = null;
                resumeLocal(recoverFromRings(del), del);
            }
            exported.clear();
            sentFeatures = -1;
            acceptedFeatures = -1;
            sentOn = false;
            notifyLink();
        } finally {
            lock.unlock();
        }
    }

    /** Device side → client DEVICE_INFO DEL: it stopped and hands the device back with final states. */
    private void onDeviceReturned(final VhostPciSession s, final long seq, final List<QueuePosition> states) {
        lock.lock();
        try {
            if (delegated == null) {
                ack(s, seq, VhostPci.DEVICE_INFO, VhostPci.DEL_FAIL, VhostPci.R_UNKNOWN_DEVICE, 0);
                return;
            }
            LOG.info("vhost-pci: device side handed the device back: " + states);
            resumeLocal(positionsFrom(states, delegated), delegated);
            delegated = null;
            ack(s, seq, VhostPci.DEVICE_INFO, VhostPci.DEL_DONE, VhostPci.R_NONE, 0);
        } finally {
            lock.unlock();
        }
    }

    /** Device side → client FEATURE_BITS: it can now handle only {@code features}. */
    private void onDeviceFeatures(final VhostPciSession s, final long seq, final long features) {
        lock.lock();
        try {
            final long mine = sentFeatures < 0 ? 0 : sentFeatures;
            ack(s, seq, VhostPci.FEATURE_BITS, VhostPci.FEATURE_BITS_ACCEPTED, VhostPci.R_NONE, features & mine);
            rejected |= offerable & ~features;
            acceptedFeatures = features & mine;
            if (delegated != null && (mine & ~features) != 0) {
                reclaim("device side can no longer handle 0x" + Long.toHexString(mine & ~features));
            }
        } finally {
            lock.unlock();
        }
    }

    private void notifyLink() {
        final Device d = device;
        if (d != null) {
            d.configChanged();
        }
    }

    // ---- DeviceDelegation (handler's control thread) ----------------------------------------------------

    @Override
    public void attach(final Device d) {
        lock.lock();
        try {
            device = d;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void detach(final Device d) {
        lock.lock();
        try {
            if (device != d) {
                return;
            }
            reclaim("front-end disconnected");
            final VhostPciSession s = session;
            if (s != null && s.isOpen()) {
                unexport(new ArrayList<>(exported), s);
                if (sentOn) {
                    await(s.request(VhostPci.PEER_CONNECTION, PeerConnectionMessage.LENGTH, (b, o) ->
                        new PeerConnectionMessage().<PeerConnectionMessage>wrap(b, o).state(VhostPci.CONNECTION_OFF)));
                    sentOn = false;
                }
            }
            sentFeatures = -1;
            acceptedFeatures = -1;
            device = null;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public boolean affects(final int request) {
        return !NEUTRAL.contains(request);
    }

    @Override
    public void begin(final Device d, final int request, final long argument) {
        lock.lock();
        if (delegated != null && touchesDelegated(request, argument)) {
            reclaim(FrontendRequest.name(request));
        }
    }

    /** Whether a request may change something the delegated device depends on (then it is taken back first). */
    private boolean touchesDelegated(final int request, final long argument) {
        switch (request) {
            case FrontendRequest.SET_VRING_NUM:
            case FrontendRequest.SET_VRING_ADDR:
            case FrontendRequest.SET_VRING_BASE:
            case FrontendRequest.GET_VRING_BASE:
            case FrontendRequest.SET_VRING_KICK:
            case FrontendRequest.SET_VRING_CALL:
            case FrontendRequest.SET_VRING_ENABLE:
                return argument < 0 || isDelegated((int) (argument & 0xFF));
            case FrontendRequest.SET_STATUS:
                return argument == 0; // a reset; DRIVER_OK and friends change no ring
            case FrontendRequest.SET_OWNER:
            case FrontendRequest.SET_PROTOCOL_FEATURES:
                return false;
            default:
                return true;
        }
    }

    @Override
    public void end(final Device d, final int request) {
        try {
            if (device == d) {
                tryDelegate();
            }
        } finally {
            lock.unlock();
        }
    }

    @Override
    public long offeredFeatures(final long offered) {
        return offered & ~rejected;
    }

    @Override
    public boolean linkUp() {
        return isConnected() && peerOn;
    }

    // ---- delegation (lock held) ---------------------------------------------------------------------------

    /** Hand the rings to the device side if everything it needs is known and agreed. */
    private void tryDelegate() {
        final VhostPciSession s = session;
        final Device d = device;
        if (s == null || !s.isOpen() || d == null || !d.featuresSet()) {
            return;
        }
        final long acked = d.ackedFeatures();
        final GuestMemory memory = d.memory();
        final VirtioNetPort port = d.port();
        final List<Ring> rings = new ArrayList<>();
        for (int i = 0; i < d.ringCount(); i++) {
            final Ring r = d.ring(i);
            if (r.started() && r.enabled() && (isDelegated(i) || port.queue(i).isRunning())) {
                rings.add(r);
            }
        }
        final boolean packed = VirtioFeature.has(acked, VirtioFeature.RING_PACKED);
        final long features = acked & ~VhostPciDevice.TRANSPORT_BITS;
        if (VirtioFeature.has(acked, VirtioFeature.ACCESS_PLATFORM) || VirtioFeature.has(acked, VirtioFeature.VHOST_F_LOG_ALL)
            // IOVAs cannot be walked by the device side; dirty logging stays local (see VHOST-PCI.md)
            || memory.regionCount() == 0 || memory.regionCount() > Math.min(VhostPci.MAX_REGIONS, s.peer().maxRegions())
            || rings.size() < 2 || rings.get(0).index() != 0 || rings.get(1).index() != 1
            || rings.size() > Math.min(VhostPci.MAX_VIRTQUEUES, s.peer().maxVirtqueues())
            || (packed && (s.capabilities() & VhostPci.CAP_PACKED_RING) == 0)
            || (features == sentFeatures && acceptedFeatures != sentFeatures)) { // renegotiation pending
            if (delegated != null) {
                reclaim("the device can no longer be delegated");
            }
            return;
        }
        final int n = rings.size();
        final int[] queues = new int[n];
        for (int i = 0; i < n; i++) {
            queues[i] = rings.get(i).index();
        }
        final long deviceId = MacAddress.toDeviceId(d.mac());
        final Delegated candidate = new Delegated(deviceId, packed, queues);
        final long[] bases = new long[n];
        java.util.Arrays.fill(bases, -1);
        if (delegated != null) {
            if (java.util.Arrays.equals(delegated.queues(), queues)) {
                return;
            }
            // More (or fewer) rings than delegated: take the device back without running it here in between.
            final Delegated old = delegated;
            delegated = null;
            final long[] back = takeBack(old, "ring set changed");
            for (int i = 0; i < old.queues().length; i++) {
                for (int j = 0; j < n; j++) {
                    if (queues[j] == old.queues()[i]) {
                        bases[j] = back[i];
                    }
                }
            }
            if (!s.isOpen()) {
                resumeLocal(back, old);
                return;
            }
        }
        // Stop the (other) local rings at their exact positions first, so that nothing the guest queues while the
        // device is being exported is taken (and dropped) here; stop listening to their kicks (the device side will).
        final Dataplane dataplane = d.dataplane();
        dataplane.run(() -> {
            for (int i = 0; i < n; i++) {
                if (bases[i] >= 0) {
                    continue;
                }
                final Virtqueue q = port.queue(queues[i]);
                bases[i] = q.stop() & 0xFFFF_FFFFL;
                if (q.kick() != null) {
                    dataplane.unwatchKick(q.kick());
                }
            }
        });
        if (!exportMemory(s, memory)) {
            resumeLocal(bases, candidate);
            return;
        }
        if (features != sentFeatures) {
            final Ack a = await(s.request(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, (b, o) ->
                new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, o).features(features)
                    .flags(VhostPci.FEATURES_NEGOTIATED)));
            if (a == null || !a.success()) {
                resumeLocal(bases, candidate);
                return;
            }
            sentFeatures = features;
            acceptedFeatures = a.value();
            if (acceptedFeatures != features) {
                rejected |= features & ~acceptedFeatures & offerable;
                LOG.warning("vhost-pci: device side accepts only 0x" + Long.toHexString(acceptedFeatures) + " of 0x"
                    + Long.toHexString(features) + "; serving locally until the driver renegotiates without 0x"
                    + Long.toHexString(features & ~acceptedFeatures));
                resumeLocal(bases, candidate);
                return;
            }
        }
        final List<Integer> fds = new ArrayList<>();
        for (final Ring r : rings) {
            if (r.kick() != null) {
                fds.add(r.kick().fd());
            }
            if (r.call() != null) {
                fds.add(r.call().fd());
            }
        }
        final CompletableFuture<Ack> f = s.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, n),
            (b, o) -> {
                final DeviceInfoMessage m = new DeviceInfoMessage().wrap(b, o);
                m.op(VhostPci.OP_ADD).deviceType(VhostPci.DEVICE_NET).nvqs(n).deviceId(deviceId).features(features);
                for (int i = 0; i < n; i++) {
                    final Ring r = rings.get(i);
                    final QueuePosition p = packed ? VhostPciDevice.decodePacked(r.index(), (int) bases[i])
                        : new QueuePosition(r.index(), (int) bases[i] & 0xFFFF, (int) bases[i] & 0xFFFF, 0);
                    final VirtqInfo v = m.virtq(i);
                    v.index(r.index()).lastAvailIdx(p.lastAvailIdx()).lastUsedIdx(p.lastUsedIdx())
                        .stateFlags(p.stateFlags() | (r.logged() ? VhostPci.STATE_LOG : 0)).size(r.num())
                        .format(packed ? VhostPci.FORMAT_PACKED : VhostPci.FORMAT_SPLIT)
                        .fdFlags((r.kick() != null ? VhostPci.FD_KICK : 0) | (r.call() != null ? VhostPci.FD_CALL : 0))
                        .descAddr(r.descUserAddr()).driverAddr(r.availUserAddr()).deviceAddr(r.usedUserAddr())
                        .logAddr(r.logGuestAddr());
                }
            }, fds.stream().mapToInt(Integer::intValue).toArray());
        final Ack a = await(f);
        if (a == null) {
            // Lost with the ADD in flight: the device side may have walked the rings; read where they are.
            resumeLocal(recoverFromRings(candidate), candidate);
            return;
        }
        if (!a.success()) {
            LOG.warning("vhost-pci: device side refused the device: " + a);
            resumeLocal(bases, candidate);
            return;
        }
        delegated = candidate;
        delegations++;
        LOG.info("vhost-pci: " + d.name() + " delegated to the device side (" + n + " queues, features 0x"
            + Long.toHexString(features) + ")");
        if (!sentOn && (s.capabilities() & VhostPci.CAP_PEER_CONNECTION) != 0) {
            sentOn = true;
            s.request(VhostPci.PEER_CONNECTION, PeerConnectionMessage.LENGTH, (b, o) ->
                new PeerConnectionMessage().<PeerConnectionMessage>wrap(b, o).state(VhostPci.CONNECTION_ON));
        }
    }

    private boolean isDelegated(final int ring) {
        final Delegated del = delegated;
        if (del != null) {
            for (final int q : del.queues()) {
                if (q == ring) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Take the rings back and run them here, at their exact positions (DEL_DONE) or as read from guest memory. */
    private void reclaim(final String why) {
        final Delegated del = delegated;
        if (del == null) {
            return;
        }
        delegated = null;
        resumeLocal(takeBack(del, why), del);
    }

    /** DEVICE_INFO DEL: the final positions (vhost-user base encoding), or positions read from the rings. */
    private long[] takeBack(final Delegated del, final String why) {
        final VhostPciSession s = session;
        Ack a = null;
        if (s != null && s.isOpen()) {
            a = await(s.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0), (b, o) ->
                new DeviceInfoMessage().<DeviceInfoMessage>wrap(b, o).op(VhostPci.OP_DEL)
                    .deviceType(VhostPci.DEVICE_NET).nvqs(0).deviceId(del.deviceId())));
        }
        if (a != null && a.success()) {
            LOG.fine("vhost-pci: device taken back (" + why + "): " + a.states());
            return positionsFrom(a.states(), del);
        }
        LOG.warning("vhost-pci: device not handed back cleanly (" + (a == null ? "no answer" : a.toString())
            + "); recovering the rings from guest memory");
        if (s != null) {
            s.close(); // our states disagree with the device side's (§10.2)
        }
        return recoverFromRings(del);
    }

    /** Local positions (vhost-user base encoding) from final states; -1 where a queue has none. */
    private static long[] positionsFrom(final List<QueuePosition> states, final Delegated del) {
        final long[] bases = new long[del.queues().length];
        for (int i = 0; i < bases.length; i++) {
            bases[i] = -1;
            for (final QueuePosition p : states) {
                if (p.index() == del.queues()[i]) {
                    bases[i] = (del.packed() ? VhostPciDevice.encodePacked(p.lastAvailIdx(), p.lastUsedIdx(),
                        p.stateFlags()) : p.lastAvailIdx()) & 0xFFFF_FFFFL;
                }
            }
        }
        return bases;
    }

    /**
     * Positions read from the rings after the device side died (§8.2): split rings continue at used->idx (chains
     * the device took but never returned are taken again). Packed rings cannot be recovered from the ring alone
     * (the chain lengths of returned buffers are unknown): -1, the queue is failed and the front-end must reset it.
     */
    private long[] recoverFromRings(final Delegated del) {
        final long[] bases = new long[del.queues().length];
        final Device d = device;
        for (int i = 0; i < bases.length; i++) {
            bases[i] = -1;
            if (d == null || del.packed()) {
                continue;
            }
            final Ring r = d.ring(del.queues()[i]);
            final long host = d.memory().uvaToHost(r.usedUserAddr(), 4);
            if (host != GuestMemory.UNMAPPED) {
                bases[i] = UnsafeAccess.UNSAFE.getShortVolatile(null, host + 2) & 0xFFFF;
            }
        }
        return bases;
    }

    /** Run the delegated queues locally again from {@code bases} (-1: cannot, the queue is failed). */
    private void resumeLocal(final long[] bases, final Delegated del) {
        final Device d = device;
        if (d == null) {
            return;
        }
        final VirtioNetPort port = d.port();
        final Dataplane dataplane = d.dataplane();
        final GuestMemory memory = d.memory();
        final int portIndex = dataplane.portIndex(port);
        final Ring[] rings = new Ring[bases.length];
        for (int i = 0; i < bases.length; i++) {
            rings[i] = d.ring(del.queues()[i]);
        }
        dataplane.run(() -> {
            for (int i = 0; i < bases.length; i++) {
                final Ring r = rings[i];
                final Virtqueue q = port.queue(r.index());
                if (bases[i] < 0) {
                    q.fail(QueueError.RING_UNMAPPED);
                    continue;
                }
                final QueueError e = q.start(memory, r.num(), r.descUserAddr(), r.availUserAddr(), r.usedUserAddr(),
                    (int) bases[i]);
                if (e != QueueError.NONE) {
                    q.fail(e);
                    continue;
                }
                q.disableKicks();
                final EventFd kick = q.kick();
                if (kick != null) {
                    dataplane.watchKick(portIndex, r.index(), kick);
                }
            }
        });
        LOG.info("vhost-pci: " + d.name() + " runs its rings locally again at " + java.util.Arrays.toString(bases));
    }

    /** Make the device side hold exactly the regions of {@code memory}: DEL what went away, then ADD what is new. */
    private boolean exportMemory(final VhostPciSession s, final GuestMemory memory) {
        final List<GuestRegion> current = memory.regions();
        final List<long[]> stale = new ArrayList<>();
        for (final long[] e : exported) {
            if (current.stream().noneMatch(r -> same(e, r))) {
                stale.add(e);
            }
        }
        if (!stale.isEmpty() && !unexport(stale, s)) {
            return false;
        }
        final List<GuestRegion> fresh = new ArrayList<>();
        for (final GuestRegion r : current) {
            if (exported.stream().noneMatch(e -> same(e, r))) {
                fresh.add(r);
            }
        }
        if (fresh.isEmpty()) {
            return true;
        }
        final int n = fresh.size();
        final Ack a = await(s.request(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(n), (b, o) -> {
            final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, o);
            m.op(VhostPci.OP_ADD).nregions(n);
            for (int i = 0; i < n; i++) {
                final GuestRegion r = fresh.get(i);
                m.region(i).guestPhysAddr(r.guestPhysAddr()).memorySize(r.size()).userAddr(r.userAddr())
                    .mmapOffset(r.mmapOffset());
            }
        }, fresh.stream().mapToInt(GuestRegion::fd).toArray()));
        if (a == null || !a.success()) {
            LOG.warning("vhost-pci: memory not exported: " + a);
            return false;
        }
        for (final GuestRegion r : fresh) {
            exported.add(new long[] {r.guestPhysAddr(), r.size(), r.userAddr(), r.mmapOffset()});
        }
        return true;
    }

    private boolean unexport(final List<long[]> regions, final VhostPciSession s) {
        if (regions.isEmpty()) {
            return true;
        }
        final int n = regions.size();
        final Ack a = await(s.request(VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(n), (b, o) -> {
            final MemoryInfoMessage m = new MemoryInfoMessage().wrap(b, o);
            m.op(VhostPci.OP_DEL).nregions(n);
            for (int i = 0; i < n; i++) {
                final long[] e = regions.get(i);
                m.region(i).guestPhysAddr(e[0]).memorySize(e[1]).userAddr(e[2]).mmapOffset(e[3]);
            }
        }));
        if (a == null || !a.success()) {
            LOG.warning("vhost-pci: memory not withdrawn: " + a);
            return false;
        }
        exported.removeAll(regions);
        return true;
    }

    private static boolean same(final long[] e, final GuestRegion r) {
        return e[0] == r.guestPhysAddr() && e[1] == r.size() && e[2] == r.userAddr() && e[3] == r.mmapOffset();
    }

    /** The ACK, or null when the session closed first (or the request timed out, which closes it). */
    private Ack await(final CompletableFuture<Ack> f) {
        try {
            return f.get(config.requestTimeoutMs() + 1000L, TimeUnit.MILLISECONDS);
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        } catch (final Exception e) {
            return null;
        }
    }

    @Override
    public void close() {
        closing = true;
        connector.interrupt();
        final VhostPciSession s = session;
        if (s != null) {
            s.close();
        }
        events.shutdown();
        try {
            events.awaitTermination(2, TimeUnit.SECONDS);
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Objects.requireNonNull(path);
    }
}
