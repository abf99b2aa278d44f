package dev.vhostnet.backend;

import dev.vhostnet.backend.vhostpci.DeviceDelegation;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.memory.DirtyLog;
import dev.vhostnet.dataplane.memory.GuestMemory;
import dev.vhostnet.dataplane.memory.GuestRegion;
import dev.vhostnet.dataplane.memory.InvalidMemoryException;
import dev.vhostnet.dataplane.memory.Iotlb;
import dev.vhostnet.dataplane.memory.IotlbMissSink;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.virtq.InflightBuffer;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.Virtqueue;
import dev.vhostnet.spec.ConfigMessage;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.InflightMessage;
import dev.vhostnet.spec.IotlbMessage;
import dev.vhostnet.spec.LogMessage;
import dev.vhostnet.spec.MemoryRegionMessage;
import dev.vhostnet.spec.MemoryTableMessage;
import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.SingleMemoryRegionMessage;
import dev.vhostnet.spec.SplitRingLayout;
import dev.vhostnet.spec.U64Message;
import dev.vhostnet.spec.VhostUserHeader;
import dev.vhostnet.spec.VirtioDeviceStatus;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetConfig;
import dev.vhostnet.spec.VirtioNetFeature;
import dev.vhostnet.spec.VringAddrMessage;
import dev.vhostnet.spec.VringStateMessage;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * The vhost-user protocol for one virtio-net port and one front-end connection: validates every request,
 * keeps the control-side state (features, memory table, vring setup) and applies changes to the port's
 * virtqueues through dataplane commands. Runs on the connection's control thread.
 */
public final class VhostUserNetHandler implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(VhostUserNetHandler.class.getName());

    private final VirtioNetPort port;
    private final Dataplane dataplane;
    private final NetDeviceConfig config;
    private final VhostUserChannel channel;
    private final String name;
    /** vhost-pci peer mode: who else may run this device's rings (DeviceDelegation.NONE: nobody). */
    private final DeviceDelegation delegation;
    private final DelegatedDevice delegatedDevice = new DelegatedDevice();

    private final VringState[] vrings;
    private final VringStateMessage vringState = new VringStateMessage();
    private final VringAddrMessage vringAddr = new VringAddrMessage();
    private final MemoryTableMessage memoryTable = new MemoryTableMessage();
    private final SingleMemoryRegionMessage singleRegion = new SingleMemoryRegionMessage();
    private final U64Message u64 = new U64Message();
    private final ConfigMessage configMessage = new ConfigMessage();
    private final byte[] configSpace = new byte[ConfigMessage.MAX_CONFIG_SIZE];

    private long ackedFeatures;
    private boolean featuresSet;
    private long ackedProtocolFeatures;
    private boolean owned;
    private int status;
    /** A queue broke since the last reset (reported as DEVICE_NEEDS_RESET by GET_STATUS). */
    private boolean brokenQueueSeen;
    private int mtu;
    private GuestMemory memory = GuestMemory.EMPTY;
    /**
     * Repeated ADD_MEM_REG of a region already in the table, per region. QEMU before 8.1 runs one vhost_dev per
     * queue pair over the same socket and each of them adds (and later removes) every region: with N pairs a
     * region arrives N times. The copies are counted, not mapped, and each REM_MEM_REG consumes one copy before
     * the region itself goes.
     */
    private final Map<RegionKey, Integer> repeatedAdds = new HashMap<>();

    private record RegionKey(long gpa, long size, long uva, long mmapOffset) {
        static RegionKey of(final GuestRegion r) {
            return new RegionKey(r.guestPhysAddr(), r.size(), r.userAddr(), r.mmapOffset());
        }
    }
    /** Dirty log from SET_LOG_BASE; used while VHOST_F_LOG_ALL is acknowledged. */
    private DirtyLog dirtyLog;
    private EventFd logFd;
    private final LogMessage logMessage = new LogMessage();
    private final IotlbMessage iotlbMessage = new IotlbMessage();
    /** Device IOTLB while VIRTIO_F_ACCESS_PLATFORM is negotiated; mutated only on the dataplane thread. */
    private Iotlb iotlb;
    private volatile BackendChannel backendChannel;
    /** What queues report misses to: whichever back-end channel is current (none yet: dropped, logged). */
    private final IotlbMissSink missSink = new IotlbMissSink() {
        @Override
        public void miss(final long iova, final int perm) {
            final BackendChannel c = backendChannel;
            if (c != null) {
                c.miss(iova, perm);
            } else {
                LOG.warning(name + ": IOTLB miss at 0x" + Long.toHexString(iova) + " but no back-end channel");
            }
        }

        @Override
        public void accessFailed(final long iova, final int perm) {
            final BackendChannel c = backendChannel;
            if (c != null) {
                c.accessFailed(iova, perm);
            }
        }
    };
    /** Inflight tracking buffer (GET/SET_INFLIGHT_FD); queues get their region when they start. */
    private InflightBuffer inflight;
    private final InflightMessage inflightMessage = new InflightMessage();

    public VhostUserNetHandler(final VirtioNetPort port, final Dataplane dataplane, final NetDeviceConfig config,
                               final VhostUserChannel channel) {
        this(port, dataplane, config, channel, DeviceDelegation.NONE);
    }

    public VhostUserNetHandler(final VirtioNetPort port, final Dataplane dataplane, final NetDeviceConfig config,
                               final VhostUserChannel channel, final DeviceDelegation delegation) {
        this.delegation = delegation;
        this.port = port;
        this.dataplane = dataplane;
        this.config = config;
        this.channel = channel;
        this.name = port.name();
        this.vrings = new VringState[port.queueCount()];
        this.mtu = config.mtu();
        for (int i = 0; i < vrings.length; i++) {
            vrings[i] = new VringState();
        }
        writeConfigSpace();
        delegation.attach(delegatedDevice);
    }

    /**
     * Serve the connection until the front-end disconnects or violates the protocol.
     */
    public void serve() throws IOException {
        final VhostUserMessage message = new VhostUserMessage();
        try {
            while (true) {
                try {
                    if (!channel.receive(message)) {
                        LOG.info(name + ": front-end disconnected");
                        return;
                    }
                } catch (final ProtocolException e) {
                    LOG.warning(name + ": " + e.getMessage() + "; closing the connection");
                    return;
                }
                if (!dispatch(message)) {
                    return;
                }
            }
        } finally {
            message.closeUntakenFds();
        }
    }

    /** Handle one message; returns false if the connection must be closed. */
    boolean dispatch(final VhostUserMessage message) throws IOException {
        final VhostUserHeader header = message.header();
        if (header.version() != VhostUserHeader.VERSION || header.isReply()) {
            LOG.warning(name + ": bad header flags 0x" + Integer.toHexString(header.flags()) + " on " + message.name()
                + "; closing the connection");
            return false;
        }
        final boolean ackRequested = header.needsReply()
            && ProtocolFeature.has(ackedProtocolFeatures, ProtocolFeature.REPLY_ACK);
        try {
            final boolean repliedAlready = handleDelegated(message);
            if (ackRequested && !repliedAlready) {
                channel.sendU64Reply(message.request(), 0);
            }
            return true;
        } catch (final ProtocolException | InvalidMemoryException e) {
            LOG.warning(name + ": rejected " + message.name() + ": " + e.getMessage());
            if (ackRequested && !expectsReply(message.request())) {
                channel.sendU64Reply(message.request(), 1);
                return true;
            }
            LOG.warning(name + ": closing the connection");
            return false;
        } finally {
            message.closeUntakenFds();
        }
    }

    /**
     * {@link #handle}, bracketed for vhost-pci peer mode: the rings are taken back before a request that may
     * change them and handed over again after it, before the request's acknowledgement goes out.
     */
    private boolean handleDelegated(final VhostUserMessage m) throws IOException, ProtocolException {
        if (!delegation.affects(m.request())) {
            return handle(m);
        }
        delegation.begin(delegatedDevice, m.request(), m.size() >= 8
            ? m.buffer().getLong(VhostUserMessage.payloadOffset(), java.nio.ByteOrder.LITTLE_ENDIAN) : -1);
        try {
            return handle(m);
        } finally {
            delegation.end(delegatedDevice, m.request());
        }
    }

    /** Fds a request may carry; any other request carries none. */
    private static int maxFds(final int request) {
        switch (request) {
            case FrontendRequest.SET_MEM_TABLE:
                return VhostUserHeader.MAX_FDS;
            case FrontendRequest.ADD_MEM_REG:
            case FrontendRequest.REM_MEM_REG:
            case FrontendRequest.SET_VRING_KICK:
            case FrontendRequest.SET_VRING_CALL:
            case FrontendRequest.SET_VRING_ERR:
            case FrontendRequest.SET_LOG_BASE:
            case FrontendRequest.SET_LOG_FD:
            case FrontendRequest.SET_BACKEND_REQ_FD:
            case FrontendRequest.SET_INFLIGHT_FD:
            case FrontendRequest.SET_DEVICE_STATE_FD:
                return 1;
            default:
                return 0;
        }
    }

    /**
     * DEVICE_NEEDS_RESET: a queue broke (the front-end or its guest violated the ring rules, or its memory
     * faulted). Sticky until the device is reset, as virtio requires.
     */
    private boolean needsReset() {
        if (!brokenQueueSeen) {
            brokenQueueSeen = dataplane.call(() -> {
                for (int i = 0; i < port.queueCount(); i++) {
                    if (port.queue(i).error() != QueueError.NONE) {
                        return true;
                    }
                }
                return false;
            });
        }
        return brokenQueueSeen;
    }

    private static boolean expectsReply(final int request) {
        switch (request) {
            case FrontendRequest.GET_FEATURES:
            case FrontendRequest.GET_PROTOCOL_FEATURES:
            case FrontendRequest.GET_VRING_BASE:
            case FrontendRequest.GET_QUEUE_NUM:
            case FrontendRequest.GET_CONFIG:
            case FrontendRequest.GET_MAX_MEM_SLOTS:
            case FrontendRequest.GET_STATUS:
            case FrontendRequest.GET_INFLIGHT_FD:
            case FrontendRequest.SET_LOG_BASE:
            case FrontendRequest.POSTCOPY_ADVISE:
            case FrontendRequest.CHECK_DEVICE_STATE:
            case FrontendRequest.SET_DEVICE_STATE_FD:
            case FrontendRequest.GET_SHARED_OBJECT:
            case FrontendRequest.GET_SHMEM_CONFIG:
            case FrontendRequest.CREATE_CRYPTO_SESSION:
                return true;
            default:
                return false;
        }
    }

    /** @return true if the handler already sent the request's reply */
    private boolean handle(final VhostUserMessage m) throws IOException, ProtocolException {
        final UnsafeBuffer payload = m.buffer();
        final int at = VhostUserMessage.payloadOffset();
        if (m.fdsLost()) {
            // The kernel dropped fds of this message (this process has no fd slot left): what arrived is not
            // what the front-end sent, so the request cannot be carried out as meant.
            throw new ProtocolException(m.name() + " lost fds on the way (the process is out of file descriptors)");
        }
        if (m.fdCount() > maxFds(m.request())) {
            throw new ProtocolException(m.name() + " carries " + m.fdCount() + " fds (at most " + maxFds(m.request()) + ")");
        }
        switch (m.request()) {
            case FrontendRequest.GET_FEATURES:
                noPayload(m);
                channel.sendU64Reply(m.request(), delegation.offeredFeatures(config.offeredFeatures()));
                return true;
            case FrontendRequest.SET_FEATURES:
                setFeatures(readU64(m));
                return false;
            case FrontendRequest.GET_PROTOCOL_FEATURES:
                noPayload(m);
                channel.sendU64Reply(m.request(), NetDeviceConfig.OFFERED_PROTOCOL_FEATURES);
                return true;
            case FrontendRequest.SET_PROTOCOL_FEATURES: {
                final long f = readU64(m);
                if ((f & ~NetDeviceConfig.OFFERED_PROTOCOL_FEATURES) != 0) {
                    throw new ProtocolException("protocol features 0x" + Long.toHexString(f) + " were not offered");
                }
                ackedProtocolFeatures = f;
                return false;
            }
            case FrontendRequest.SET_OWNER:
                noPayload(m);
                owned = true;
                return false;
            case FrontendRequest.RESET_OWNER:
                resetDevice();
                owned = false;
                return false;
            case FrontendRequest.RESET_DEVICE:
                requireProtocol(ProtocolFeature.RESET_DEVICE, m);
                resetDevice();
                return false;
            case FrontendRequest.SET_MEM_TABLE:
                setMemTable(m);
                return false;
            case FrontendRequest.GET_MAX_MEM_SLOTS:
                requireProtocol(ProtocolFeature.CONFIGURE_MEM_SLOTS, m);
                channel.sendU64Reply(m.request(), NetDeviceConfig.MAX_MEM_SLOTS);
                return true;
            case FrontendRequest.ADD_MEM_REG:
                requireProtocol(ProtocolFeature.CONFIGURE_MEM_SLOTS, m);
                addMemReg(m);
                return false;
            case FrontendRequest.REM_MEM_REG:
                requireProtocol(ProtocolFeature.CONFIGURE_MEM_SLOTS, m);
                remMemReg(m);
                return false;
            case FrontendRequest.SET_VRING_NUM: {
                final VringState v = vringFromState(m);
                final long num = vringState.num();
                if (!SplitRingLayout.isPowerOfTwo(num) || num > SplitRingLayout.MAX_QUEUE_SIZE) {
                    throw new ProtocolException("queue size " + num + " is not a power of two up to 32768");
                }
                requireStopped(v, m);
                v.num = (int) num;
                return false;
            }
            case FrontendRequest.SET_VRING_ADDR: {
                m.requireSize(VringAddrMessage.LENGTH);
                m.requireFds(0);
                vringAddr.wrap(payload, at);
                final VringState v = vring(vringAddr.index());
                if ((vringAddr.flags() & ~VringAddrMessage.F_LOG) != 0) {
                    throw new ProtocolException("unknown vring address flags 0x" + Long.toHexString(vringAddr.flags()));
                }
                v.descUserAddr = vringAddr.descUserAddr();
                v.usedUserAddr = vringAddr.usedUserAddr();
                v.availUserAddr = vringAddr.availUserAddr();
                v.logGuestAddr = vringAddr.logGuestAddr();
                v.addrFlags = vringAddr.flags();
                v.addressed = true;
                return false;
            }
            case FrontendRequest.SET_VRING_BASE: {
                final VringState v = vringFromState(m);
                if (!VirtioFeature.has(ackedFeatures, VirtioFeature.RING_PACKED) && vringState.num() > 0xFFFF) {
                    throw new ProtocolException("split ring base " + vringState.num() + " exceeds 16 bits");
                }
                requireStopped(v, m);
                v.base = (int) vringState.num();
                return false;
            }
            case FrontendRequest.GET_VRING_BASE: {
                final int index = (int) vringIndexFromState(m);
                final int base = stopVring(index);
                dropIotlb("GET_VRING_BASE");
                final UnsafeBuffer reply = channel.replyBuffer();
                vringState.wrap(reply, VhostUserHeader.LENGTH);
                vringState.index(index).num(base);
                channel.sendReply(m.request(), VringStateMessage.LENGTH);
                return true;
            }
            case FrontendRequest.SET_VRING_KICK:
                setVringKick(m);
                return false;
            case FrontendRequest.SET_VRING_CALL:
                setVringCall(m);
                return false;
            case FrontendRequest.SET_VRING_ERR:
                setVringErr(m);
                return false;
            case FrontendRequest.SET_LOG_BASE:
                requireProtocol(ProtocolFeature.LOG_SHMFD, m);
                setLogBase(m);
                channel.sendU64Reply(m.request(), 0); // the front-end waits for this before migrating
                return true;
            case FrontendRequest.SET_LOG_FD: {
                requireProtocol(ProtocolFeature.LOG_SHMFD, m);
                m.requireFds(1);
                final EventFd old = logFd;
                logFd = EventFd.adopt(m.takeFd(0));
                if (old != null) {
                    old.close();
                }
                return false;
            }
            case FrontendRequest.SET_BACKEND_REQ_FD: {
                requireProtocol(ProtocolFeature.BACKEND_REQ, m);
                m.requireSize(0);
                m.requireFds(1);
                final BackendChannel old = backendChannel;
                final int channelFd = m.takeFd(0);
                try {
                    backendChannel = new BackendChannel(channelFd, name);
                } catch (final IOException | RuntimeException e) {
                    FileDescriptors.closeQuietly(channelFd); // not an AF_UNIX stream socket: nothing took it
                    throw new ProtocolException("SET_BACKEND_REQ_FD: not a usable socket: " + e.getMessage());
                }
                if (old != null) {
                    old.close();
                }
                return false;
            }
            case FrontendRequest.IOTLB_MSG:
                iotlbMsg(m);
                return false;
            case FrontendRequest.GET_INFLIGHT_FD:
                requireProtocol(ProtocolFeature.INFLIGHT_SHMFD, m);
                getInflightFd(m);
                return true;
            case FrontendRequest.SET_INFLIGHT_FD:
                requireProtocol(ProtocolFeature.INFLIGHT_SHMFD, m);
                setInflightFd(m);
                return false;
            case FrontendRequest.GET_QUEUE_NUM:
                requireProtocol(ProtocolFeature.MQ, m);
                noPayload(m);
                channel.sendU64Reply(m.request(), port.maxPairs());
                return true;
            case FrontendRequest.SET_VRING_ENABLE: {
                final VringState v = vringFromState(m);
                // QEMU sends SET_VRING_ENABLE during start-up before SET_FEATURES acknowledges anything; refuse
                // it only once the front-end has explicitly declined VHOST_USER_F_PROTOCOL_FEATURES.
                if (featuresSet && !VirtioFeature.has(ackedFeatures, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)) {
                    throw new ProtocolException("SET_VRING_ENABLE after SET_FEATURES without VHOST_USER_F_PROTOCOL_FEATURES");
                }
                if (vringState.num() > 1) {
                    throw new ProtocolException("SET_VRING_ENABLE value " + vringState.num() + " is not 0 or 1");
                }
                v.enabled = vringState.num() == 1;
                final int index = (int) vringState.index();
                final boolean enable = v.enabled;
                dataplane.run(() -> {
                    final Virtqueue q = port.queue(index);
                    q.setEnabled(enable);
                    if (enable) {
                        // A ring started while disabled could not suppress kicks then (disableKicks ignores a
                        // ring that is not running); the dataplane polls, and re-enables kicks before it sleeps.
                        q.disableKicks();
                    }
                });
                return false;
            }
            case FrontendRequest.SEND_RARP: {
                requireProtocol(ProtocolFeature.RARP, m);
                final long macBits = readU64(m);
                final byte[] mac = new byte[6];
                for (int i = 0; i < 6; i++) {
                    mac[i] = (byte) (macBits >>> (8 * i));
                }
                LOG.info(name + ": announcing " + NetDeviceConfig.formatMac(mac) + " (SEND_RARP)");
                final byte[] frame = RarpFrame.announce(mac);
                dataplane.run(() -> dataplane.injectFrom(port, frame));
                return false;
            }
            case FrontendRequest.NET_SET_MTU: {
                requireProtocol(ProtocolFeature.MTU, m);
                final long value = readU64(m);
                if (value < 68 || value > 65535) {
                    throw new ProtocolException("MTU " + value + " outside 68..65535");
                }
                mtu = (int) value;
                // Only the MTU field: rewriting the whole space would undo a MAC the driver set with SET_CONFIG.
                new VirtioNetConfig().<VirtioNetConfig>wrap(new UnsafeBuffer(configSpace), 0).mtu(mtu);
                return false;
            }
            case FrontendRequest.GET_CONFIG:
                requireProtocol(ProtocolFeature.CONFIG, m);
                getConfig(m);
                return true;
            case FrontendRequest.SET_CONFIG:
                requireProtocol(ProtocolFeature.CONFIG, m);
                setConfig(m);
                return false;
            case FrontendRequest.SET_STATUS: {
                requireProtocol(ProtocolFeature.STATUS, m);
                final long value = readU64(m);
                if (value > 0xFF) {
                    throw new ProtocolException("device status 0x" + Long.toHexString(value) + " exceeds 8 bits");
                }
                if (value == 0) {
                    resetKeepingRingPositions();
                }
                status = (int) value;
                return false;
            }
            case FrontendRequest.GET_STATUS:
                requireProtocol(ProtocolFeature.STATUS, m);
                noPayload(m);
                channel.sendU64Reply(m.request(), status | (needsReset() ? VirtioDeviceStatus.DEVICE_NEEDS_RESET : 0));
                return true;
            default:
                throw new ProtocolException("unsupported request " + m.name() + " (" + Integer.toUnsignedString(m.request())
                    + ") with a " + m.size() + "-byte payload");
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Features and device state

    private void setFeatures(final long features) throws ProtocolException {
        if ((features & ~config.offeredFeatures()) != 0) {
            throw new ProtocolException("features 0x" + Long.toHexString(features & ~config.offeredFeatures())
                + " were not offered");
        }
        ackedFeatures = features;
        featuresSet = true;
        final DirtyLog log = loggingLog();
        final boolean iommu = VirtioFeature.has(features, VirtioFeature.ACCESS_PLATFORM);
        if (iommu && iotlb == null) {
            iotlb = new Iotlb();
        }
        final Iotlb tlb = iommu ? iotlb : null;
        dataplane.run(() -> {
            port.setFeatures(features);
            applyLog(log);
            for (int i = 0; i < port.queueCount(); i++) {
                port.queue(i).setIotlb(tlb, tlb == null ? null : missSink);
            }
        });
    }

    /**
     * IOTLB update / invalidate. Applied on the dataplane thread before the acknowledgement goes out, so
     * after the front-end sees the ack for an invalidation no walk uses the old mapping.
     */
    private void iotlbMsg(final VhostUserMessage m) throws ProtocolException {
        if (!VirtioFeature.has(ackedFeatures, VirtioFeature.ACCESS_PLATFORM) || iotlb == null) {
            throw new ProtocolException("IOTLB_MSG without VIRTIO_F_ACCESS_PLATFORM");
        }
        m.requireSize(IotlbMessage.LENGTH);
        m.requireFds(0);
        iotlbMessage.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final long iova = iotlbMessage.iova();
        final long size = iotlbMessage.size();
        final long uaddr = iotlbMessage.userAddr();
        final int perm = iotlbMessage.perm();
        final Iotlb tlb = iotlb;
        switch (iotlbMessage.type()) {
            case IotlbMessage.TYPE_UPDATE: {
                final boolean ok = dataplane.call(() -> tlb.update(iova, size, uaddr, perm));
                if (!ok) {
                    throw new ProtocolException(String.format("IOTLB update iova=0x%x size=0x%x perm=%d is malformed",
                        iova, size, perm));
                }
                return;
            }
            case IotlbMessage.TYPE_INVALIDATE:
                dataplane.run(() -> tlb.invalidate(iova, size));
                return;
            case IotlbMessage.TYPE_BATCH_BEGIN:
            case IotlbMessage.TYPE_BATCH_END:
                return; // every message is applied at once; batching changes nothing here
            default:
                throw new ProtocolException("IOTLB message type " + iotlbMessage.type() + " is not for the back-end");
        }
    }

    /**
     * Forget every IOTLB entry (as DPDK does on GET_VRING_BASE and SET_MEM_TABLE): entries map to front-end
     * addresses of a memory table that may be replaced, and a stopped device's mappings may be torn down
     * without invalidations; the front-end answers misses again on demand.
     */
    private void dropIotlb(final String why) {
        final Iotlb tlb = iotlb;
        if (tlb == null) {
            return;
        }
        final long[] seen = dataplane.call(() -> {
            final long[] s = {tlb.size(), tlb.updates(), tlb.invalidations()};
            tlb.clear();
            return s;
        });
        LOG.info(name + ": IOTLB dropped on " + why + " (" + seen[0] + " entries; " + seen[1] + " updates, "
            + seen[2] + " invalidations so far)");
    }

    /** The log the dataplane must write to now: set, and VHOST_F_LOG_ALL acknowledged. */
    private DirtyLog loggingLog() {
        return VirtioFeature.has(ackedFeatures, VirtioFeature.VHOST_F_LOG_ALL) ? dirtyLog : null;
    }

    /** Dataplane thread. */
    private void applyLog(final DirtyLog log) {
        for (int i = 0; i < port.queueCount(); i++) {
            port.queue(i).setLog(log);
        }
    }

    private void setLogBase(final VhostUserMessage m) throws ProtocolException {
        m.requireSize(LogMessage.LENGTH);
        m.requireFds(1);
        logMessage.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final DirtyLog next = DirtyLog.map(m.takeFd(0), logMessage.mmapSize(), logMessage.mmapOffset(),
            dataplane.unsealedMemory());
        final DirtyLog old = dirtyLog;
        dirtyLog = next;
        final DirtyLog log = loggingLog();
        dataplane.run(() -> applyLog(log));
        if (old != null) {
            old.close();
        }
        LOG.info(name + ": dirty log of " + next.size() + " bytes" + (log != null ? ", logging" : ""));
    }

    // ---------------------------------------------------------------------------------------------
    // Inflight I/O tracking

    /**
     * GET_INFLIGHT_FD: a new zeroed buffer for the front-end's queue count and size, kept mapped and used from
     * the next ring start; the reply carries its memfd, which the front-end keeps across our restarts.
     */
    private void getInflightFd(final VhostUserMessage m) throws IOException, ProtocolException {
        m.requireSize(InflightMessage.LENGTH);
        m.requireFds(0);
        inflightMessage.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final int numQueues = inflightMessage.numQueues();
        final int queueSize = inflightMessage.queueSize();
        if (numQueues < 1 || numQueues > port.queueCount()) {
            throw new ProtocolException("GET_INFLIGHT_FD for " + numQueues + " queues (the device has " + port.queueCount() + ")");
        }
        requireRingsStopped(m);
        final int[] fd = {-1};
        final InflightBuffer next = InflightBuffer.create(numQueues, queueSize, fd);
        try {
            replaceInflight(next);
            final InflightMessage out = new InflightMessage();
            out.wrap(channel.replyBuffer(), VhostUserHeader.LENGTH);
            out.mmapSize(next.size()).mmapOffset(0).numQueues(numQueues).queueSize(queueSize);
            channel.replyBuffer().putInt(VhostUserHeader.LENGTH + 20, 0); // tail padding
            channel.sendReply(m.request(), InflightMessage.LENGTH, fd[0]);
        } finally {
            FileDescriptors.closeQuietly(fd[0]); // the mapping keeps the buffer; the front-end has its own fd
        }
        LOG.info(name + ": inflight buffer of " + next.size() + " bytes for " + numQueues + " queues of " + queueSize);
    }

    /** SET_INFLIGHT_FD: map the buffer the front-end kept (from us or from the back-end before a restart). */
    private void setInflightFd(final VhostUserMessage m) throws ProtocolException {
        m.requireSize(InflightMessage.LENGTH);
        m.requireFds(1);
        inflightMessage.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        requireRingsStopped(m);
        final InflightBuffer next = InflightBuffer.map(m.takeFd(0), inflightMessage.mmapSize(),
            inflightMessage.mmapOffset(), inflightMessage.numQueues(), inflightMessage.queueSize(),
            dataplane.unsealedMemory());
        replaceInflight(next);
        LOG.info(name + ": inflight buffer of " + next.size() + " bytes for " + next.numQueues() + " queues of "
            + next.queueSize() + " set");
    }

    /** The buffer is only exchanged while the device is stopped: queues switch regions when they start. */
    private void requireRingsStopped(final VhostUserMessage m) throws ProtocolException {
        for (int i = 0; i < vrings.length; i++) {
            if (vrings[i].started) {
                throw new ProtocolException(m.name() + " while ring " + i + " is started");
            }
        }
    }

    /** Install {@code next} (may be null); the old buffer is detached from every queue, then unmapped. */
    private void replaceInflight(final InflightBuffer next) {
        final InflightBuffer old = inflight;
        inflight = next;
        if (old != null) {
            dataplane.run(() -> {
                for (int i = 0; i < port.queueCount(); i++) {
                    port.queue(i).setInflight(null);
                }
            });
            old.close();
        }
    }

    /** Queue {@code index}'s region of the inflight buffer, or null: no buffer, or it does not fit the ring. */
    private InflightBuffer.Region inflightRegion(final int index, final int num) {
        if (inflight == null) {
            return null;
        }
        final InflightBuffer.Region region = inflight.region(index);
        if (region == null || num > region.entries()) {
            LOG.warning(name + ": ring " + index + " (size " + num + ") is not covered by the inflight buffer ("
                + inflight.numQueues() + " queues of " + inflight.queueSize() + "): not tracked");
            return null;
        }
        return region;
    }

    /** Stop every ring and forget the negotiated device state (RESET_DEVICE, RESET_OWNER, SET_STATUS 0). */
    /**
     * SET_STATUS(0): a device reset, except that each ring's position survives for GET_VRING_BASE. QEMU 7.2's
     * vhost_dev_stop sends SET_STATUS(0) first and only then GET_VRING_BASE for every ring, and saves the
     * answers as the queues' last_avail_idx (for a later restart, VM resume or the migration stream): losing
     * them there makes the destination refuse the device state ("Guest index ... inconsistent with Host
     * index 0x0") and a paused VM resume on stale rings. A ring started afterwards gets its base from
     * SET_VRING_BASE as always.
     */
    private void resetKeepingRingPositions() {
        final int[] bases = new int[vrings.length];
        for (int i = 0; i < vrings.length; i++) {
            bases[i] = stopVring(i);
        }
        resetDevice();
        for (int i = 0; i < vrings.length; i++) {
            vrings[i].base = bases[i];
        }
    }

    private void resetDevice() {
        final List<EventFd> toClose = new ArrayList<>();
        dataplane.run(() -> {
            for (int i = 0; i < port.queueCount(); i++) {
                final Virtqueue q = port.queue(i);
                detachFds(q, toClose);
                q.reset();
            }
            port.setFeatures(0);
        });
        for (final VringState v : vrings) {
            v.clearRing();
            v.kick = null;
            v.call = null;
            v.err = null;
        }
        toClose.forEach(EventFd::close);
        // Queues dropped their regions in reset(); a reset device starts with a new buffer (the front-end gets
        // one again, or sets the one it keeps, before the next start).
        if (inflight != null) {
            inflight.close();
            inflight = null;
        }
        ackedFeatures = 0;
        featuresSet = false;
        status = 0;
        brokenQueueSeen = false;
    }

    private void detachFds(final Virtqueue q, final List<EventFd> toClose) {
        final EventFd kick = q.setKick(null);
        if (kick != null) {
            dataplane.unwatchKick(kick);
            toClose.add(kick);
        }
        final EventFd call = q.setCall(null);
        if (call != null) {
            toClose.add(call);
        }
        final EventFd err = q.setErr(null);
        if (err != null) {
            toClose.add(err);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Memory

    private void setMemTable(final VhostUserMessage m) throws ProtocolException {
        m.requireSizeAtLeast(MemoryTableMessage.HEADER_LENGTH);
        memoryTable.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final long n = memoryTable.nregions();
        if (n == 0 || n > MemoryTableMessage.MAX_REGIONS) {
            throw new ProtocolException("memory table with " + n + " regions (1.." + MemoryTableMessage.MAX_REGIONS + ")");
        }
        m.requireSizeAtLeast(MemoryTableMessage.lengthFor((int) n));
        m.requireFds((int) n);
        final List<GuestRegion> regions = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                final MemoryRegionMessage r = memoryTable.region(i);
                regions.add(GuestRegion.map(r.guestPhysAddr(), r.memorySize(), r.userAddr(), r.mmapOffset(), m.takeFd(i),
                    dataplane.unsealedMemory()));
            }
            dropIotlb("SET_MEM_TABLE");
            swapMemory(GuestMemory.of(regions));
            repeatedAdds.clear();
        } catch (final RuntimeException e) {
            // Mapped regions own (and now close) their fds; the fd of the region that failed was closed by
            // GuestRegion.map. Fds of regions after it were never taken: closeUntakenFds closes them.
            regions.forEach(GuestRegion::close);
            throw e;
        }
        LOG.info(name + ": memory table " + memory);
    }

    private void addMemReg(final VhostUserMessage m) throws ProtocolException {
        m.requireSizeAtLeast(SingleMemoryRegionMessage.LENGTH);
        m.requireFds(1);
        singleRegion.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final MemoryRegionMessage added = singleRegion.region();
        final RegionKey key = new RegionKey(added.guestPhysAddr(), added.memorySize(), added.userAddr(), added.mmapOffset());
        if (memory.regions().stream().anyMatch(g -> RegionKey.of(g).equals(key))) {
            // The same region again (another queue pair's vhost_dev): its fd is left untaken, hence closed.
            repeatedAdds.merge(key, 1, Integer::sum);
            return;
        }
        if (memory.regionCount() >= NetDeviceConfig.MAX_MEM_SLOTS) {
            throw new ProtocolException("all " + NetDeviceConfig.MAX_MEM_SLOTS + " memory slots are in use");
        }
        final MemoryRegionMessage r = singleRegion.region();
        final GuestRegion region = GuestRegion.map(r.guestPhysAddr(), r.memorySize(), r.userAddr(), r.mmapOffset(), m.takeFd(0),
            dataplane.unsealedMemory());
        final GuestMemory next;
        try {
            next = memory.withRegion(region);
        } catch (final RuntimeException e) {
            region.close();
            throw e;
        }
        swapMemory(next);
    }

    private void remMemReg(final VhostUserMessage m) throws ProtocolException {
        m.requireSizeAtLeast(SingleMemoryRegionMessage.LENGTH);
        if (m.fdCount() > 1) {
            throw new ProtocolException("REM_MEM_REG carries " + m.fdCount() + " fds");
        }
        singleRegion.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final MemoryRegionMessage r = singleRegion.region();
        // REM_MEM_REG carries no mmap offset that must match; a counted copy of a region with this description goes first.
        for (final GuestRegion g : memory.regions()) {
            final RegionKey key = RegionKey.of(g);
            if (g.describes(r.guestPhysAddr(), r.memorySize(), r.userAddr()) && repeatedAdds.containsKey(key)) {
                repeatedAdds.computeIfPresent(key, (k, copies) -> copies > 1 ? copies - 1 : null);
                return;
            }
        }
        final GuestMemory next = memory.withoutRegion(r.guestPhysAddr(), r.memorySize(), r.userAddr());
        if (next == null) {
            throw new ProtocolException(String.format("REM_MEM_REG of an unknown region gpa=0x%x size=0x%x uva=0x%x",
                r.guestPhysAddr(), r.memorySize(), r.userAddr()));
        }
        swapMemory(next);
    }

    /** Switch the dataplane to a new table, then release the old one (unmapping regions nobody uses now). */
    private void swapMemory(final GuestMemory next) {
        final GuestMemory old = memory;
        memory = next;
        dataplane.run(() -> {
            for (int i = 0; i < port.queueCount(); i++) {
                final QueueError e = port.queue(i).remap(next);
                if (e != QueueError.NONE && e != QueueError.IOTLB_MISS) {
                    port.queue(i).fail(e);
                }
            }
        });
        old.close();
    }

    // ---------------------------------------------------------------------------------------------
    // Vrings

    private long vringIndexFromState(final VhostUserMessage m) throws ProtocolException {
        m.requireSize(VringStateMessage.LENGTH);
        m.requireFds(0);
        vringState.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final long index = vringState.index();
        vring(index);
        return index;
    }

    private VringState vringFromState(final VhostUserMessage m) throws ProtocolException {
        return vring(vringIndexFromState(m));
    }

    private VringState vring(final long index) throws ProtocolException {
        if (index < 0 || index >= vrings.length) {
            throw new ProtocolException("vring index " + index + " out of range (" + vrings.length + " queues)");
        }
        return vrings[(int) index];
    }

    private static void requireStopped(final VringState v, final VhostUserMessage m) throws ProtocolException {
        if (v.started) {
            throw new ProtocolException(m.name() + " on a started ring (send GET_VRING_BASE first)");
        }
    }

    /** Index and fd of SET_VRING_KICK/CALL/ERR: u64 with index in bits 0-7 and "no fd" in bit 8. */
    private int vringFdIndex(final VhostUserMessage m, final boolean[] noFd) throws ProtocolException {
        m.requireSize(U64Message.LENGTH);
        u64.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final long value = u64.value();
        if ((value & ~(U64Message.VRING_INDEX_MASK | U64Message.VRING_NOFD_FLAG)) != 0) {
            throw new ProtocolException(m.name() + " payload 0x" + Long.toHexString(value) + " has unknown bits");
        }
        noFd[0] = (value & U64Message.VRING_NOFD_FLAG) != 0;
        m.requireFds(noFd[0] ? 0 : 1);
        final int index = (int) (value & U64Message.VRING_INDEX_MASK);
        vring(index);
        return index;
    }

    private void setVringKick(final VhostUserMessage m) throws ProtocolException {
        final boolean[] noFd = new boolean[1];
        final int index = vringFdIndex(m, noFd);
        final VringState v = vrings[index];
        final EventFd kick = noFd[0] ? null : EventFd.adopt(m.takeFd(0));
        final EventFd old = v.kick;
        v.kick = kick;
        if (!VirtioFeature.has(ackedFeatures, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)) {
            v.enabled = true; // without protocol features rings start enabled
        }
        startVring(index, v, old);
    }

    private void startVring(final int index, final VringState v, final EventFd oldKick) throws ProtocolException {
        if (v.num == 0 || !v.addressed) {
            if (v.kick != null) {
                // The request is refused, so nothing will ever use or close the fd it brought: close it now.
                v.kick.close();
                v.kick = null;
            }
            if (oldKick != null) {
                dataplane.run(() -> {
                    port.queue(index).setKick(null);
                    dataplane.unwatchKick(oldKick);
                });
                oldKick.close();
            }
            throw new ProtocolException("SET_VRING_KICK on ring " + index + " before its size and addresses");
        }
        v.started = true;
        final GuestMemory mem = memory;
        final int portIndex = dataplane.portIndex(port);
        final InflightBuffer.Region inflightRegion = inflightRegion(index, v.num);
        final QueueError result = dataplane.call(() -> {
            final Virtqueue q = port.queue(index);
            if (oldKick != null) {
                dataplane.unwatchKick(oldKick);
            }
            q.setKick(v.kick);
            if (v.kick != null) {
                dataplane.watchKick(portIndex, index, v.kick);
            }
            q.setEnabled(v.enabled);
            q.setInflight(inflightRegion);
            final QueueError e = q.start(mem, v.num, v.descUserAddr, v.availUserAddr, v.usedUserAddr, v.base);
            if (e == QueueError.IOTLB_MISS) {
                return QueueError.NONE; // rings resolve once the front-end answers the miss
            }
            if (e != QueueError.NONE) {
                q.fail(e);
            } else {
                q.disableKicks(); // the dataplane polls; kicks only matter while it sleeps
            }
            return e;
        });
        if (oldKick != null) {
            oldKick.close();
        }
        if (result != QueueError.NONE) {
            LOG.warning(name + ": ring " + index + " cannot start: " + result.description());
        } else {
            LOG.info(name + ": ring " + index + " started, size " + v.num + ", base " + v.base
                + (inflightRegion != null ? ", inflight tracked" : ""));
            if (inflightRegion != null) {
                final int resubmits = dataplane.call(() -> port.queue(index).pendingResubmits());
                if (resubmits > 0) {
                    LOG.info(name + ": ring " + index + ": resubmitting " + resubmits + " inflight descriptor chains");
                }
            }
        }
    }

    private int stopVring(final int index) {
        final VringState v = vrings[index];
        if (!v.started) {
            // Never started (or already stopped): the queue has not run, so SET_VRING_BASE's value (or the last
            // stop's) is the current base. Reading the idle queue's index would return 0 and lose it.
            return v.base;
        }
        final EventFd[] kick = new EventFd[1];
        final int base = dataplane.call(() -> {
            final Virtqueue q = port.queue(index);
            final int last = q.stop();
            kick[0] = q.setKick(null);
            if (kick[0] != null) {
                dataplane.unwatchKick(kick[0]);
            }
            return last;
        });
        if (kick[0] != null) {
            kick[0].close();
        }
        v.kick = null;
        v.started = false;
        v.base = base;
        LOG.info(name + ": ring " + index + " stopped at " + base);
        return base;
    }

    private void setVringCall(final VhostUserMessage m) throws ProtocolException {
        final boolean[] noFd = new boolean[1];
        final int index = vringFdIndex(m, noFd);
        final EventFd call = noFd[0] ? null : EventFd.adopt(m.takeFd(0));
        vrings[index].call = call;
        final EventFd old = dataplane.call(() -> port.queue(index).setCall(call));
        if (old != null) {
            old.close();
        }
    }

    private void setVringErr(final VhostUserMessage m) throws ProtocolException {
        final boolean[] noFd = new boolean[1];
        final int index = vringFdIndex(m, noFd);
        final EventFd err = noFd[0] ? null : EventFd.adopt(m.takeFd(0));
        vrings[index].err = err;
        final EventFd old = dataplane.call(() -> port.queue(index).setErr(err));
        if (old != null) {
            old.close();
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Config space

    private void writeConfigSpace() {
        final VirtioNetConfig c = new VirtioNetConfig();
        c.wrap(new UnsafeBuffer(configSpace), 0);
        c.mac(config.mac())
            .status(VirtioNetFeature.S_LINK_UP)
            .maxVirtqueuePairs(port.maxPairs())
            .mtu(mtu)
            .speed(VirtioNetConfig.SPEED_UNKNOWN)
            .duplex(VirtioNetConfig.DUPLEX_UNKNOWN);
    }

    private void getConfig(final VhostUserMessage m) throws IOException, ProtocolException {
        m.requireSizeAtLeast(ConfigMessage.HEADER_LENGTH);
        m.requireFds(0);
        configMessage.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final long offset = configMessage.configOffset();
        final long size = configMessage.size();
        if (size > ConfigMessage.MAX_CONFIG_SIZE || offset > ConfigMessage.MAX_CONFIG_SIZE - size
            || m.size() != ConfigMessage.HEADER_LENGTH + size) {
            throw new ProtocolException("GET_CONFIG offset " + offset + " size " + size + " outside the config space");
        }
        final UnsafeBuffer reply = channel.replyBuffer();
        final ConfigMessage out = new ConfigMessage();
        out.wrap(reply, VhostUserHeader.LENGTH);
        out.configOffset(offset).size(size).flags(0);
        new VirtioNetConfig().<VirtioNetConfig>wrap(new UnsafeBuffer(configSpace), 0)
            .status(delegation.linkUp() ? VirtioNetFeature.S_LINK_UP : 0);
        reply.putBytes(out.payloadOffset(), configSpace, (int) offset, (int) size);
        channel.sendReply(m.request(), ConfigMessage.HEADER_LENGTH + (int) size);
    }

    private void setConfig(final VhostUserMessage m) throws ProtocolException {
        m.requireSizeAtLeast(ConfigMessage.HEADER_LENGTH);
        m.requireFds(0);
        configMessage.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        final long offset = configMessage.configOffset();
        final long size = configMessage.size();
        if (size > ConfigMessage.MAX_CONFIG_SIZE || offset > ConfigMessage.MAX_CONFIG_SIZE - size
            || m.size() != ConfigMessage.HEADER_LENGTH + size) {
            throw new ProtocolException("SET_CONFIG offset " + offset + " size " + size + " outside the config space");
        }
        // virtio-net config space is read-only for the driver except the legacy MAC write: accept only that.
        if (offset + size > 6) {
            throw new ProtocolException("SET_CONFIG writes read-only virtio-net config fields");
        }
        m.buffer().getBytes(configMessage.payloadOffset(), configSpace, (int) offset, (int) size);
    }

    // ---------------------------------------------------------------------------------------------

    private static void noPayload(final VhostUserMessage m) throws ProtocolException {
        m.requireSize(0);
        m.requireFds(0);
    }

    private long readU64(final VhostUserMessage m) throws ProtocolException {
        m.requireSize(U64Message.LENGTH);
        m.requireFds(0);
        u64.wrap(m.buffer(), VhostUserMessage.payloadOffset());
        return u64.value();
    }

    private void requireProtocol(final int feature, final VhostUserMessage m) throws ProtocolException {
        if (!ProtocolFeature.has(ackedProtocolFeatures, feature)) {
            throw new ProtocolException(m.name() + " requires protocol feature " + feature + ", not negotiated");
        }
    }

    public long ackedFeatures() {
        return ackedFeatures;
    }

    public long ackedProtocolFeatures() {
        return ackedProtocolFeatures;
    }

    /** Front-end gone: stop the port, close every fd and unmap its memory. */
    @Override
    public void close() {
        delegation.detach(delegatedDevice);
        resetDevice();
        final GuestMemory old = memory;
        memory = GuestMemory.EMPTY;
        repeatedAdds.clear();
        dataplane.run(() -> {
            for (int i = 0; i < port.queueCount(); i++) {
                port.queue(i).remap(GuestMemory.EMPTY);
            }
        });
        old.close();
        if (dirtyLog != null) {
            dirtyLog.close();
            dirtyLog = null;
        }
        if (logFd != null) {
            logFd.close();
            logFd = null;
        }
        if (backendChannel != null) {
            backendChannel.close();
            backendChannel = null;
        }
        iotlb = null;
        ackedProtocolFeatures = 0;
        owned = false;
    }

    // ---------------------------------------------------------------------------------------------
    // vhost-pci peer mode: the handler's state as the delegation reads it (under its lock)

    private final class DelegatedDevice implements DeviceDelegation.Device {
        @Override
        public String name() {
            return name;
        }

        @Override
        public VirtioNetPort port() {
            return port;
        }

        @Override
        public Dataplane dataplane() {
            return dataplane;
        }

        @Override
        public byte[] mac() {
            return config.mac();
        }

        @Override
        public boolean featuresSet() {
            return featuresSet;
        }

        @Override
        public long ackedFeatures() {
            return ackedFeatures;
        }

        @Override
        public GuestMemory memory() {
            return memory;
        }

        @Override
        public int ringCount() {
            return vrings.length;
        }

        @Override
        public DeviceDelegation.Ring ring(final int index) {
            final VringState v = vrings[index];
            return new DeviceDelegation.Ring(index, v.num, v.descUserAddr, v.availUserAddr, v.usedUserAddr,
                v.logGuestAddr, (v.addrFlags & VringAddrMessage.F_LOG) != 0, v.started, v.enabled, v.kick, v.call);
        }

        @Override
        public void configChanged() {
            final BackendChannel c = backendChannel;
            if (c != null && ProtocolFeature.has(ackedProtocolFeatures, ProtocolFeature.BACKEND_REQ)
                && ProtocolFeature.has(ackedProtocolFeatures, ProtocolFeature.CONFIG)) {
                c.configChanged();
            }
        }
    }
}
