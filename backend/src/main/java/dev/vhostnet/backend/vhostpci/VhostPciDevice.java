package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.vhostpci.VhostPciSession.QueuePosition;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.memory.DirtyLog;
import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.Virtqueue;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.MemoryRegionMessage;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.DirtyPageLoggingMessage;
import dev.vhostnet.spec.vhostpci.FeatureBitsMessage;
import dev.vhostnet.spec.vhostpci.MacAddress;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.PeerConnectionMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VirtqInfo;
import dev.vhostnet.backend.transport.SocketFile;
import org.newsclub.net.unix.AFUNIXServerSocket;
import org.newsclub.net.unix.AFUNIXSocket;

import java.io.IOException;
import java.net.SocketException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * Device side of vhost-pci peer mode (spec/VHOST-PCI.md §8.1, {@code --vhost-pci-listen PATH}). Listens on the
 * vhost-pci socket, serves one client at a time and makes the client's guest a second port of this back-end's
 * dataplane: the {@code remote} port, whose peer is our own front-end's port. MEMORY_INFO maps the client
 * guest's memory from the passed fds; DEVICE_INFO ADD starts the remote port's queues on the client guest's
 * rings at the given positions, with its kick and call eventfds, so the dataplane copies frames guest to guest
 * once and interrupts the client guest directly. DEVICE_INFO DEL and peer loss stop those queues; our own
 * front-end keeps working (frames to the absent peer are dropped and counted).
 */
public final class VhostPciDevice implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(VhostPciDevice.class.getName());
    /** Bits the client strips before FEATURE_BITS (vhost-user transport bits). */
    /** The fd_flags and state_flags bits version 1 defines (§5.3); any other bit is reserved. */
    private static final int FD_FLAGS = VhostPci.FD_KICK | VhostPci.FD_CALL;
    private static final int STATE_FLAGS = VhostPci.STATE_AVAIL_WRAP | VhostPci.STATE_USED_WRAP | VhostPci.STATE_LOG;
    static final long TRANSPORT_BITS = VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)
        | VirtioFeature.bit(VirtioFeature.VHOST_F_LOG_ALL);

    private final Path socketPath;
    private final VirtioNetPort local;
    private final VirtioNetPort remote;
    private final Dataplane dataplane;
    private final VhostPciSession.Config sessionConfig;
    private final long handledFeatures;
    private final SocketFile socketFile;
    private final AFUNIXServerSocket listener;
    private final Thread acceptor;
    private final Thread leaseKeeper;
    private final Object lock = new Object();
    private volatile boolean closing;
    /** The connection whose client is admitted (at most one). */
    private volatile Connection current;
    /** Our own front-end's device, while one is connected. */
    private volatile DeviceDelegation.Device localDevice;
    private volatile boolean localUp;

    /**
     * @param handledFeatures virtio features the dataplane can walk and forward for the client's device; what
     *                        FEATURE_BITS accepts is the client's set AND this
     */
    public VhostPciDevice(final Path socketPath, final VirtioNetPort local, final VirtioNetPort remote,
                          final Dataplane dataplane, final VhostPciSession.Config sessionConfig,
                          final long handledFeatures) throws IOException {
        if (sessionConfig.role() != VhostPci.ROLE_DEVICE) {
            throw new IllegalArgumentException("device side needs the DEVICE role");
        }
        this.socketPath = socketPath;
        this.local = local;
        this.remote = remote;
        this.dataplane = dataplane;
        this.sessionConfig = sessionConfig;
        long handled = handledFeatures & ~TRANSPORT_BITS & ~VirtioFeature.bit(VirtioFeature.ACCESS_PLATFORM);
        if ((sessionConfig.capabilities() & VhostPci.CAP_PACKED_RING) == 0) {
            handled &= ~VirtioFeature.bit(VirtioFeature.RING_PACKED);
        }
        this.handledFeatures = handled;
        socketFile = SocketFile.listen(socketPath, 4);
        listener = socketFile.listener();
        acceptor = new Thread(this::acceptLoop, "vhost-pci-listen");
        acceptor.setDaemon(true);
        leaseKeeper = new Thread(this::keepLease, "vhost-pci-lease");
        leaseKeeper.setDaemon(true);
    }

    public void start() {
        acceptor.start();
        leaseKeeper.start();
        LOG.info("vhost-pci device side listening on " + socketPath + " as " + sessionConfig.uuid());
    }

    public Path socketPath() {
        return socketPath;
    }

    public UUID uuid() {
        return sessionConfig.uuid();
    }

    /** Whether a client's device runs on our dataplane now. */
    public boolean deviceRunning() {
        final Connection c = current;
        return c != null && c.device != null;
    }

    /** Regions of the client's memory mapped now. */
    public int clientRegions() {
        synchronized (lock) {
            final Connection c = current;
            return c == null ? 0 : c.memory.regionCount();
        }
    }

    /** The client's UUID while one is admitted, else null. */
    public UUID clientUuid() {
        final Connection c = current;
        return c == null || c.session.peer() == null ? null : c.session.peer().uuid();
    }

    /** The delegation to give our own front-end's handler: link state and PEER_CONNECTION towards the client. */
    public DeviceDelegation localDelegation() {
        return new DeviceDelegation() {
            @Override
            public void attach(final Device device) {
                localDevice = device;
            }

            @Override
            public void detach(final Device device) {
                if (localDevice == device) {
                    localDevice = null;
                }
                updateLocalState(false);
            }

            @Override
            public boolean affects(final int request) {
                return request == FrontendRequest.SET_VRING_KICK || request == FrontendRequest.GET_VRING_BASE
                    || request == FrontendRequest.SET_VRING_ENABLE || request == FrontendRequest.RESET_OWNER
                    || request == FrontendRequest.RESET_DEVICE || request == FrontendRequest.SET_STATUS;
            }

            @Override
            public void end(final Device device, final int request) {
                updateLocalState(local.canReceive() && local.tx().isRunning());
            }

            @Override
            public boolean linkUp() {
                final Connection c = current;
                return c != null && c.device != null && c.peerConnectionOn;
            }
        };
    }

    private void updateLocalState(final boolean up) {
        if (up == localUp) {
            return;
        }
        localUp = up;
        final Connection c = current;
        if (c != null) {
            c.sendPeerConnection(up);
        }
    }

    private void notifyLocalLink() {
        final DeviceDelegation.Device d = localDevice;
        if (d != null) {
            d.configChanged();
        }
    }

    // ---- accepting and the lease -----------------------------------------------------------------------

    private void acceptLoop() {
        while (!closing) {
            final AFUNIXSocket socket;
            try {
                socket = listener.accept();
            } catch (final SocketException e) {
                if (closing) {
                    return;
                }
                LOG.warning("vhost-pci accept: " + e.getMessage());
                continue;
            } catch (final IOException e) {
                LOG.warning("vhost-pci accept: " + e.getMessage());
                continue;
            }
            try {
                final Connection c = new Connection();
                c.session = VhostPciSession.start(socket, sessionConfig, c);
            } catch (final IOException | RuntimeException e) {
                LOG.info("vhost-pci connection failed at once: " + e.getMessage());
                try {
                    socket.close();
                } catch (final IOException ignored) {
                    // gone anyway
                }
            }
        }
    }

    /** Copies the session's lease (§9.3) onto the remote port, which the dataplane checks before every burst. */
    private void keepLease() {
        boolean expired = false;
        while (!closing) {
            final Connection c = current;
            if (c != null && c.device != null) {
                final long lease = c.session.leaseDeadlineNanos();
                remote.setLease(true, lease == 0 ? System.nanoTime() : lease);
                final boolean now = !remote.leaseValid();
                if (now != expired) {
                    expired = now;
                    if (now) {
                        LOG.warning("vhost-pci: ring lease expired (no PONG from the client in time); the client's"
                            + " rings are parked until it answers");
                    } else {
                        LOG.info("vhost-pci: ring lease renewed");
                    }
                }
            }
            try {
                Thread.sleep(50);
            } catch (final InterruptedException e) {
                return;
            }
        }
    }

    // ---- one client connection ------------------------------------------------------------------------

    /** A running client device: the queues it occupies and the eventfds we adopted. */
    private static final class RunningDevice {
        final long deviceId;
        final long features;
        final int[] queues;
        final EventFd[] kicks;
        final EventFd[] calls;
        /** Per queue: descriptor, driver and device area addresses (client's user space) and size. */
        final long[][] rings;
        final int[] sizes;

        RunningDevice(final long deviceId, final long features, final int[] queues, final EventFd[] kicks,
                      final EventFd[] calls, final long[][] rings, final int[] sizes) {
            this.rings = rings;
            this.sizes = sizes;
            this.deviceId = deviceId;
            this.features = features;
            this.queues = queues;
            this.kicks = kicks;
            this.calls = calls;
        }
    }

    private final class Connection implements VhostPciSession.Handler {
        volatile VhostPciSession session;
        /** Guarded by {@link VhostPciDevice#lock} (requests run on the reader thread, cleanup elsewhere). */
        GuestMemory memory = GuestMemory.EMPTY;
        long accepted = -1;
        /** When we sent the last FEATURE_BITS answer: a DEVICE_INFO ADD proves the client received it (lease). */
        long acceptedSentNanos;
        volatile RunningDevice device;
        DirtyLog dirtyLog;
        volatile boolean peerConnectionOn;
        boolean admitted;
        /**
         * Set by the peer-loss cleanup (under {@link VhostPciDevice#lock}). The reader thread may still be
         * handling a request it read before the session failed (on the timer thread, or a takeover): that request
         * must not map memory or start rings again after the cleanup, or they would outlive the connection.
         */
        boolean gone;
        private final MemoryInfoMessage memoryInfo = new MemoryInfoMessage();
        private final DeviceInfoMessage deviceInfo = new DeviceInfoMessage();
        private final FeatureBitsMessage featureBits = new FeatureBitsMessage();
        private final PeerConnectionMessage peerConnection = new PeerConnectionMessage();
        private final DirtyPageLoggingMessage dirtyLogging = new DirtyPageLoggingMessage();

        @Override
        public long admit(final VhostPciSession s, final UUID peer) {
            synchronized (lock) {
                // The reader thread admits before VhostPciSession.start has returned to the acceptor, which only
                // then assigns the field: without this, 'current' would be published with a null session and
                // clientUuid() or the next client's admission would throw.
                session = s;
                final Connection other = current;
                if (other != null && other != this && !other.session.isClosed()) {
                    if (!peer.equals(other.session.peer().uuid())) {
                        LOG.warning("vhost-pci: refusing client " + peer + ": serving " + other.session.peer().uuid());
                        return VhostPci.R_BUSY;
                    }
                    LOG.info("vhost-pci: client " + peer + " reconnected; dropping its old session");
                    other.session.close(); // runs the peer-loss cleanup of the old session (§8.3)
                }
                current = this;
                admitted = true;
                LOG.info("vhost-pci: client " + peer + " admitted (session " + (closing ? "closing" : "open") + ")");
                return VhostPci.R_NONE;
            }
        }

        @Override
        public void onClosed(final VhostPciSession s, final String reason) {
            synchronized (lock) {
                if (!admitted) {
                    return;
                }
                LOG.info("vhost-pci: client " + (s.peer() != null ? s.peer().uuid() : "?") + " gone: " + reason);
                gone = true;
                stopDevice(false);
                final GuestMemory old = memory;
                memory = GuestMemory.EMPTY;
                old.close();
                if (dirtyLog != null) {
                    dirtyLog.close();
                    dirtyLog = null;
                }
                peerConnectionOn = false;
                if (current == this) {
                    current = null;
                }
            }
            notifyLocalLink();
        }

        @Override
        public void onRequest(final VhostPciSession s, final VhostPciFrame frame) {
            final long seq = frame.seq();
            final int type = frame.type();
            final int at = VhostPciFrame.payloadOffset();
            try {
                synchronized (lock) {
                    if (gone || s.isClosed()) {
                        return; // the connection is gone: nothing to answer, its fds are closed by the frame
                    }
                    switch (type) {
                        case VhostPci.MEMORY_INFO:
                            memoryInfo.wrap(frame.buffer(), at);
                            if (memoryInfo.op() == VhostPci.OP_ADD) {
                                addMemory(seq, frame);
                            } else {
                                delMemory(seq);
                            }
                            return;
                        case VhostPci.FEATURE_BITS: {
                            featureBits.wrap(frame.buffer(), at);
                            final long f = featureBits.features();
                            accepted = f & handledFeatures;
                            LOG.info("vhost-pci: FEATURE_BITS 0x" + Long.toHexString(f) + (featureBits.negotiated()
                                ? " (negotiated)" : " (probe)") + ", accepted 0x" + Long.toHexString(accepted));
                            acceptedSentNanos = System.nanoTime();
                            s.ack(seq, type, VhostPci.FEATURE_BITS_ACCEPTED, VhostPci.R_NONE, accepted);
                            return;
                        }
                        case VhostPci.DEVICE_INFO:
                            deviceInfo.wrap(frame.buffer(), at);
                            if (deviceInfo.op() == VhostPci.OP_ADD) {
                                addDevice(seq, frame);
                            } else {
                                delDevice(seq);
                            }
                            return;
                        case VhostPci.PEER_CONNECTION:
                            if ((s.capabilities() & VhostPci.CAP_PEER_CONNECTION) == 0) {
                                s.ack(seq, type, VhostPci.FAIL, VhostPci.R_UNSUPPORTED, 0);
                                return;
                            }
                            peerConnection.wrap(frame.buffer(), at);
                            peerConnectionOn = peerConnection.state() == VhostPci.CONNECTION_ON;
                            s.ack(seq, type, VhostPci.DONE, VhostPci.R_NONE, 0);
                            break;
                        case VhostPci.DIRTY_PAGE_LOGGING:
                            dirtyPageLogging(seq, frame);
                            return;
                        default:
                            s.ack(seq, type, VhostPciSession.failStatus(type, 0), VhostPci.R_BAD_MESSAGE, 0);
                            return;
                    }
                }
                notifyLocalLink(); // PEER_CONNECTION
            } catch (final IOException e) {
                // the reader sees the loss
            }
        }

        private void addMemory(final long seq, final VhostPciFrame frame) throws IOException {
            final int n = (int) memoryInfo.nregions();
            if (memory.regionCount() + n > Math.min(VhostPci.MAX_REGIONS, sessionConfig.maxRegions())) {
                session.ack(seq, VhostPci.MEMORY_INFO, VhostPci.ADD_FAIL, VhostPci.R_TOO_MANY, 0);
                return;
            }
            final List<long[]> described = new ArrayList<>();
            for (final GuestRegion r : memory.regions()) {
                described.add(new long[] {r.guestPhysAddr(), r.size(), r.userAddr()});
            }
            for (int i = 0; i < n; i++) {
                final MemoryRegionMessage r = memoryInfo.region(i);
                for (final long[] d : described) {
                    if (overlaps(d[0], d[1], r.guestPhysAddr(), r.memorySize())
                        || overlaps(d[2], d[1], r.userAddr(), r.memorySize())) {
                        session.ack(seq, VhostPci.MEMORY_INFO, VhostPci.ADD_FAIL, VhostPci.R_OVERLAP, 0);
                        return;
                    }
                }
                described.add(new long[] {r.guestPhysAddr(), r.memorySize(), r.userAddr()});
            }
            final List<GuestRegion> mapped = new ArrayList<>();
            try {
                for (int i = 0; i < n; i++) {
                    final MemoryRegionMessage r = memoryInfo.region(i);
                    mapped.add(GuestRegion.map(r.guestPhysAddr(), r.memorySize(), r.userAddr(), r.mmapOffset(),
                        frame.takeFd(i), dataplane.unsealedMemory()));
                }
            } catch (final RuntimeException e) {
                mapped.forEach(GuestRegion::close);
                LOG.warning("vhost-pci: MEMORY_INFO ADD: " + e.getMessage());
                session.ack(seq, VhostPci.MEMORY_INFO, VhostPci.ADD_FAIL, VhostPci.R_MAP_FAILED, 0);
                return;
            }
            GuestMemory next = memory;
            for (final GuestRegion r : mapped) {
                final GuestMemory n2 = next.withRegion(r);
                if (next != memory) {
                    next.close();
                }
                next = n2;
            }
            swap(next);
            LOG.info("vhost-pci: client memory " + memory);
            session.ack(seq, VhostPci.MEMORY_INFO, VhostPci.ADD_DONE, VhostPci.R_NONE, 0);
        }

        private void delMemory(final long seq) throws IOException {
            final int n = (int) memoryInfo.nregions();
            GuestMemory next = memory;
            for (int i = 0; i < n; i++) {
                final MemoryRegionMessage r = memoryInfo.region(i);
                if (device != null && ringsIn(r.userAddr(), r.memorySize())) {
                    if (next != memory) {
                        next.close();
                    }
                    session.ack(seq, VhostPci.MEMORY_INFO, VhostPci.DEL_FAIL, VhostPci.R_REGION_IN_USE, 0);
                    return;
                }
                final GuestMemory n2 = next.withoutRegion(r.guestPhysAddr(), r.memorySize(), r.userAddr());
                if (n2 == null) {
                    if (next != memory) {
                        next.close();
                    }
                    session.ack(seq, VhostPci.MEMORY_INFO, VhostPci.DEL_FAIL, VhostPci.R_UNKNOWN_REGION, 0);
                    return;
                }
                if (next != memory) {
                    next.close();
                }
                next = n2;
            }
            swap(next);
            session.ack(seq, VhostPci.MEMORY_INFO, VhostPci.DEL_DONE, VhostPci.R_NONE, 0);
        }

        /** Whether a ring of the running device lies (partly) in the client's user range [uva, uva + size). */
        private boolean ringsIn(final long uva, final long size) {
            final RunningDevice d = device;
            for (int i = 0; i < d.queues.length; i++) {
                for (final long addr : d.rings[i]) {
                    if (overlaps(addr, 16L * d.sizes[i], uva, size)) {
                        return true;
                    }
                }
            }
            return false;
        }

        /** Switch the remote queues to a new table of the client's memory, then drop the old one. */
        private void swap(final GuestMemory next) {
            final GuestMemory old = memory;
            memory = next;
            if (device != null) {
                final RunningDevice d = device;
                dataplane.run(() -> {
                    for (final int q : d.queues) {
                        final QueueError e = remote.queue(q).remap(next);
                        if (e != QueueError.NONE) {
                            remote.queue(q).fail(e);
                        }
                    }
                });
            }
            old.close();
        }

        private void addDevice(final long seq, final VhostPciFrame frame) throws IOException {
            final int n = (int) deviceInfo.nvqs();
            long reason = VhostPci.R_NONE;
            final long features = deviceInfo.features();
            if (deviceInfo.deviceType() != VhostPci.DEVICE_NET) {
                reason = VhostPci.R_UNSUPPORTED_DEVICE;
            } else if (device != null) {
                reason = VhostPci.R_DEVICE_EXISTS;
            } else if (accepted < 0 || (features & ~accepted) != 0) {
                reason = VhostPci.R_FEATURES;
            } else if (memory.regionCount() == 0) {
                reason = VhostPci.R_NOT_READY;
            } else if (n > remote.queueCount() || n > sessionConfig.maxVirtqueues()) {
                reason = VhostPci.R_TOO_MANY;
            }
            final boolean packed = VirtioFeature.has(features, VirtioFeature.RING_PACKED);
            final int[] queues = new int[n];
            final boolean[] seen = new boolean[remote.queueCount()];
            for (int i = 0; i < n && reason == VhostPci.R_NONE; i++) {
                final VirtqInfo v = deviceInfo.virtq(i);
                final boolean isPacked = v.format() == VhostPci.FORMAT_PACKED;
                if ((v.format() != VhostPci.FORMAT_SPLIT && !isPacked) || (v.fdFlags() & ~FD_FLAGS) != 0
                    || (v.stateFlags() & ~STATE_FLAGS) != 0) {
                    reason = VhostPci.R_BAD_MESSAGE; // §10.1: unknown format, reserved flag bits set
                } else if (v.index() >= remote.queueCount() || seen[v.index()] || isPacked != packed
                    || v.size() < 1 || v.size() > 32768 || (!isPacked && (v.size() & (v.size() - 1)) != 0)
                    || (isPacked && (v.lastAvailIdx() >= v.size() || v.lastUsedIdx() >= v.size()))) {
                    reason = VhostPci.R_BAD_RING;
                } else {
                    seen[v.index()] = true;
                    queues[i] = v.index();
                }
            }
            if (reason != VhostPci.R_NONE) {
                LOG.warning("vhost-pci: DEVICE_INFO ADD refused: " + VhostPci.reasonName(reason));
                session.ack(seq, VhostPci.DEVICE_INFO, VhostPci.ADD_FAIL, reason, 0);
                return;
            }
            final EventFd[] kicks = new EventFd[n];
            final EventFd[] calls = new EventFd[n];
            int fd = 0;
            for (int i = 0; i < n; i++) {
                final VirtqInfo v = deviceInfo.virtq(i);
                if (v.hasKick()) {
                    kicks[i] = EventFd.adopt(frame.takeFd(fd++));
                }
                if (v.hasCall()) {
                    calls[i] = EventFd.adopt(frame.takeFd(fd++));
                }
            }
            if (!allEventFds(kicks) || !allEventFds(calls)) {
                closeAll(kicks);
                closeAll(calls);
                LOG.warning("vhost-pci: DEVICE_INFO ADD refused: a kick or call fd is not an eventfd");
                session.ack(seq, VhostPci.DEVICE_INFO, VhostPci.ADD_FAIL, VhostPci.R_BAD_FDS, 0);
                return;
            }
            final GuestMemory mem = memory;
            final int remoteIndex = dataplane.portIndex(remote);
            final DirtyLog log = dirtyLog;
            final int[] bases = new int[n];
            for (int i = 0; i < n; i++) {
                final VirtqInfo v = deviceInfo.virtq(i);
                bases[i] = packed ? encodePacked(v.lastAvailIdx(), v.lastUsedIdx(), v.stateFlags()) : v.lastAvailIdx();
            }
            final long[][] addrs = new long[n][];
            final int[] sizes = new int[n];
            for (int i = 0; i < n; i++) {
                final VirtqInfo v = deviceInfo.virtq(i);
                addrs[i] = new long[] {v.descAddr(), v.driverAddr(), v.deviceAddr()};
                sizes[i] = v.size();
            }
            final QueueError result = dataplane.call(() -> {
                remote.setFeatures(features);
                try {
                    for (int i = 0; i < n; i++) {
                        final Virtqueue q = remote.queue(queues[i]);
                        q.setCall(calls[i]);
                        q.setKick(kicks[i]);
                        q.setLog(log);
                        q.setEnabled(true);
                        final QueueError e = q.start(mem, sizes[i], addrs[i][0], addrs[i][1], addrs[i][2], bases[i]);
                        if (e != QueueError.NONE) {
                            abandonQueues(queues, kicks);
                            return e;
                        }
                        q.disableKicks();
                    }
                    for (int i = 0; i < n; i++) {
                        if (kicks[i] != null) {
                            dataplane.watchKick(remoteIndex, queues[i], kicks[i]);
                        }
                    }
                    return QueueError.NONE;
                } catch (final RuntimeException e) {
                    // E.g. epoll refusing a kick fd. The queues must not keep running: this device is never
                    // recorded, so no cleanup would stop them before the client's memory is unmapped.
                    LOG.warning("vhost-pci: DEVICE_INFO ADD: " + e);
                    abandonQueues(queues, kicks);
                    return QueueError.MEMORY_FAULT;
                }
            });
            if (result != QueueError.NONE) {
                closeAll(kicks);
                closeAll(calls);
                LOG.warning("vhost-pci: DEVICE_INFO ADD: ring cannot start: " + result.description());
                session.ack(seq, VhostPci.DEVICE_INFO, VhostPci.ADD_FAIL, VhostPci.R_BAD_RING, 0);
                return;
            }
            // The client waited for our FEATURE_BITS answer before it sent this ADD: it heard from us then.
            session.leaseFrom(acceptedSentNanos);
            remote.setLease(true, session.leaseDeadlineNanos());
            device = new RunningDevice(deviceInfo.deviceId(), features, queues, kicks, calls, addrs, sizes);
            LOG.info("vhost-pci: client device " + MacAddress.format(deviceInfo.deviceId()) + " runs here, "
                + n + " queues, features 0x" + Long.toHexString(features));
            session.ack(seq, VhostPci.DEVICE_INFO, VhostPci.ADD_DONE, VhostPci.R_NONE, 0);
            sendPeerConnection(localUp);
        }

        private void delDevice(final long seq) throws IOException {
            // §10.1: a DEL of a device that is not added (another type or MAC) is refused, not obeyed.
            if (device == null || deviceInfo.deviceType() != VhostPci.DEVICE_NET
                || deviceInfo.deviceId() != device.deviceId) {
                session.ack(seq, VhostPci.DEVICE_INFO, VhostPci.DEL_FAIL, VhostPci.R_UNKNOWN_DEVICE, 0);
                return;
            }
            final QueuePosition[] states = stopDevice(true);
            LOG.info("vhost-pci: client device handed back: " + List.of(states));
            session.ack(seq, VhostPci.DEVICE_INFO, VhostPci.DEL_DONE, VhostPci.R_NONE, 0, states);
        }

        /** Stop the client's queues (no further access), close their eventfds; the final positions. */
        QueuePosition[] stopDevice(final boolean positions) {
            final RunningDevice d = device;
            if (d == null) {
                return new QueuePosition[0];
            }
            device = null;
            final boolean packed = VirtioFeature.has(d.features, VirtioFeature.RING_PACKED);
            final QueuePosition[] states = dataplane.call(() -> {
                final QueuePosition[] out = new QueuePosition[d.queues.length];
                for (int i = 0; i < d.queues.length; i++) {
                    final Virtqueue q = remote.queue(d.queues[i]);
                    final int base = q.stop();
                    out[i] = packed ? decodePacked(d.queues[i], base)
                        : new QueuePosition(d.queues[i], base & 0xFFFF, base & 0xFFFF, 0);
                    final EventFd kick = q.setKick(null);
                    if (kick != null) {
                        dataplane.unwatchKick(kick);
                    }
                    q.setCall(null);
                    q.setLog(null);
                    q.reset();
                }
                remote.setFeatures(0);
                remote.setLease(false, 0);
                return out;
            });
            closeAll(d.kicks);
            closeAll(d.calls);
            return positions ? states : new QueuePosition[0];
        }

        private void dirtyPageLogging(final long seq, final VhostPciFrame frame) throws IOException {
            if ((session.capabilities() & VhostPci.CAP_DIRTY_LOG) == 0) {
                session.ack(seq, VhostPci.DIRTY_PAGE_LOGGING, VhostPci.FAIL, VhostPci.R_UNSUPPORTED, 0);
                return;
            }
            dirtyLogging.wrap(frame.buffer(), VhostPciFrame.payloadOffset());
            DirtyLog next = null;
            if (dirtyLogging.op() == VhostPci.LOG_START) {
                try {
                    next = DirtyLog.map(frame.takeFd(0), dirtyLogging.logSize(), dirtyLogging.mmapOffset(),
                        dataplane.unsealedMemory());
                } catch (final RuntimeException e) {
                    LOG.warning("vhost-pci: DIRTY_PAGE_LOGGING START: " + e.getMessage());
                    session.ack(seq, VhostPci.DIRTY_PAGE_LOGGING, VhostPci.FAIL, VhostPci.R_MAP_FAILED, 0);
                    return;
                }
            }
            final DirtyLog log = next;
            final DirtyLog old = dirtyLog;
            dirtyLog = log;
            final RunningDevice d = device;
            if (d != null) {
                dataplane.run(() -> {
                    for (final int q : d.queues) {
                        remote.queue(q).setLog(log);
                    }
                });
            }
            if (old != null) {
                old.close();
            }
            session.ack(seq, VhostPci.DIRTY_PAGE_LOGGING, VhostPci.DONE, VhostPci.R_NONE, 0);
        }

        void sendPeerConnection(final boolean on) {
            final VhostPciSession s = session;
            if (s == null || !s.isOpen() || (s.capabilities() & VhostPci.CAP_PEER_CONNECTION) == 0) {
                return;
            }
            s.request(VhostPci.PEER_CONNECTION, PeerConnectionMessage.LENGTH, (b, o) ->
                new PeerConnectionMessage().<PeerConnectionMessage>wrap(b, o)
                    .state(on ? VhostPci.CONNECTION_ON : VhostPci.CONNECTION_OFF));
        }

        /** Own shutdown (§8.1): stop the rings, give the device back with its final states, wait for DEL_DONE. */
        void handBack(final Duration wait) {
            final QueuePosition[] states;
            synchronized (lock) {
                if (device == null || !session.isOpen()) {
                    return;
                }
                final long id = device.deviceId;
                states = stopDevice(true);
                final int n = states.length;
                try {
                    session.request(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, n), (b, o) -> {
                        final DeviceInfoMessage m = new DeviceInfoMessage().wrap(b, o);
                        m.op(VhostPci.OP_DEL).deviceType(VhostPci.DEVICE_NET).nvqs(n).deviceId(id);
                        for (int i = 0; i < n; i++) {
                            m.state(i).index(states[i].index()).lastAvailIdx(states[i].lastAvailIdx())
                                .lastUsedIdx(states[i].lastUsedIdx()).stateFlags(states[i].stateFlags());
                        }
                    }).get(wait.toMillis(), TimeUnit.MILLISECONDS);
                } catch (final Exception e) {
                    LOG.info("vhost-pci: device hand-back not acknowledged: " + e);
                }
            }
        }
    }

    /** Stop and forget the given queues of the remote port and their kick watches (inside dataplane.call). */
    private void abandonQueues(final int[] queues, final EventFd[] kicks) {
        for (int j = 0; j < queues.length; j++) {
            final Virtqueue r = remote.queue(queues[j]);
            r.stop();
            r.setCall(null);
            r.setKick(null);
            r.setLog(null);
            r.reset();
            if (kicks[j] != null) {
                dataplane.unwatchKick(kicks[j]);
            }
        }
        remote.setFeatures(0);
    }

    /**
     * Whether {@code fd} is an eventfd. A kick or call fd of another kind is refused: the dataplane writes 8 bytes
     * to a call fd on every interrupt (into a memfd's data, a socket, or a blocking pipe that stalls the dataplane
     * thread once full) and epoll refuses a memfd or regular file as a kick fd.
     */
    private static boolean allEventFds(final EventFd[] fds) {
        for (final EventFd f : fds) {
            if (f != null && !EventFd.isEventFd(f.fd())) {
                return false;
            }
        }
        return true;
    }

    static boolean overlaps(final long a, final long aLen, final long b, final long bLen) {
        return Long.compareUnsigned(a, b + bLen) < 0 && Long.compareUnsigned(b, a + aLen) < 0;
    }

    static int encodePacked(final int lastAvail, final int lastUsed, final int flags) {
        final int avail = (lastAvail & 0x7FFF) | ((flags & VhostPci.STATE_AVAIL_WRAP) != 0 ? 0x8000 : 0);
        final int used = (lastUsed & 0x7FFF) | ((flags & VhostPci.STATE_USED_WRAP) != 0 ? 0x8000 : 0);
        return avail | used << 16;
    }

    static QueuePosition decodePacked(final int index, final int base) {
        final int flags = ((base & 0x8000) != 0 ? VhostPci.STATE_AVAIL_WRAP : 0)
            | ((base & 0x8000_0000) != 0 ? VhostPci.STATE_USED_WRAP : 0);
        return new QueuePosition(index, base & 0x7FFF, (base >>> 16) & 0x7FFF, flags);
    }

    private static void closeAll(final EventFd[] fds) {
        for (final EventFd f : fds) {
            if (f != null) {
                f.close();
            }
        }
    }

    /** Own shutdown: hand the client's device back (final states), then close the session and the socket. */
    @Override
    public void close() {
        closing = true;
        final Connection c = current;
        if (c != null) {
            c.handBack(Duration.ofSeconds(2));
            c.session.close();
        }
        socketFile.close(); // stops listening; removes the file if it is still ours
        acceptor.interrupt();
        leaseKeeper.interrupt();
    }
}
