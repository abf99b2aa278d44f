package dev.vhostnet.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.vhostnet.backend.vhostpci.VhostPciDevice;
import dev.vhostnet.backend.vhostpci.VhostPciSession;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.sys.Mapping;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.vhostpci.AckMessage;
import dev.vhostnet.spec.vhostpci.DeviceInfoMessage;
import dev.vhostnet.spec.vhostpci.DirtyPageLoggingMessage;
import dev.vhostnet.spec.vhostpci.FeatureBitsMessage;
import dev.vhostnet.spec.vhostpci.HeartbeatMessage;
import dev.vhostnet.spec.vhostpci.HelloMessage;
import dev.vhostnet.spec.vhostpci.MemoryInfoMessage;
import dev.vhostnet.spec.vhostpci.PeerConnectionMessage;
import dev.vhostnet.spec.vhostpci.VhostPci;
import dev.vhostnet.spec.vhostpci.VhostPciHeader;
import dev.vhostnet.spec.vhostpci.VirtqInfo;
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.FileDescriptor;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.SocketTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * Fuzz target: the device side of vhost-pci ({@link VhostPciSession} + {@link VhostPciDevice}) fed one client
 * connection per input over a real AF_UNIX socket, against a running dataplane. Most inputs open the session
 * with a proper HELLO exchange and then send messages shaped like real requests (known types, the right layout,
 * fuzzed fields: regions over a fixed 1 MiB memfd, ring addresses, sizes, indexes, formats and flags, features,
 * ACKs and heartbeats, with the memfd or an eventfd attached), mostly with the right sequence numbers; some are
 * raw (any type, version, declared length, seq, UUID). The guest writes a little ring content, since the
 * dataplane walks whatever rings a DEVICE_INFO ADD starts. The stream ends (possibly mid-message), the device
 * side must then let go of the client.
 *
 * <p>A finding is a JVM crash, the device side still holding the client (admitted, rings started, regions
 * mapped) after the connection ended, an fd left open, or a dead dataplane.
 */
class VhostPciSessionFuzzTest {
    private static final Logger PROJECT_LOG = Logger.getLogger("dev.vhostnet");
    private static final long UVA = 0x7f55_0000_0000L;
    private static final long GPA = 0x1_0000_0000L;
    private static final long MEMORY = 1 << 20;
    private static final long FEATURES = VirtioFeature.bit(VirtioFeature.VERSION_1)
        | VirtioFeature.bit(VirtioFeature.RING_INDIRECT_DESC) | VirtioFeature.bit(VirtioFeature.RING_EVENT_IDX);
    private static final int[] TYPES = {
        VhostPci.MEMORY_INFO, VhostPci.MEMORY_INFO, VhostPci.DEVICE_INFO, VhostPci.DEVICE_INFO, VhostPci.FEATURE_BITS,
        VhostPci.PEER_CONNECTION, VhostPci.DIRTY_PAGE_LOGGING, VhostPci.HEARTBEAT, VhostPci.ACK, VhostPci.HELLO,
    };

    private static final Path DIR;
    private static final Path SOCKET;
    private static final VirtioNetPort LOCAL = new VirtioNetPort("fuzz-local");
    private static final VirtioNetPort REMOTE = new VirtioNetPort("fuzz-remote");
    private static final Dataplane DATAPLANE;
    private static final VhostPciDevice DEVICE;
    private static final int MEMFD = MemFd.create("fuzz-client-guest", MEMORY);
    private static final UnsafeBuffer GUEST;
    private static final EventFd EVENTFD = EventFd.create();

    static {
        PROJECT_LOG.setLevel(Level.OFF); // refusals are the point; do not log each one
        try {
            DIR = Files.createTempDirectory("vhostnet-pci-fuzz");
            SOCKET = DIR.resolve("pci.sock");
            DATAPLANE = new Dataplane(new VirtioNetPort[] {LOCAL, REMOTE}, new VirtioNetPort[] {REMOTE, LOCAL},
                PollMode.ADAPTIVE, -1);
            DATAPLANE.start();
            DEVICE = new VhostPciDevice(SOCKET, LOCAL, REMOTE, DATAPLANE,
                VhostPciSession.Config.defaults(VhostPci.ROLE_DEVICE, UUID.randomUUID()), -1L);
            DEVICE.start();
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
        GUEST = new UnsafeBuffer(Mapping.map(MEMFD, 0, MEMORY, true).address(), (int) MEMORY);
    }

    @FuzzTest(maxDuration = "25s")
    void clientSessions(final FuzzedDataProvider data) throws Exception {
        final int scribbles = data.consumeInt(0, 4);
        for (int i = 0; i < scribbles; i++) {
            GUEST.putLong(data.consumeInt(0, 0x3FFF) * 8, data.consumeLong());
        }
        final long fdsBefore = openFds();
        final UUID uuid = new UUID(data.consumeLong(), data.consumeLong());
        final boolean handshake = data.consumeInt(0, 7) != 0;
        final List<byte[]> messages = new ArrayList<>();
        final List<int[]> messageFds = new ArrayList<>();
        long seq = 1;
        if (handshake) {
            messages.add(hello(uuid, data.consumeInt(0, 15) == 0 ? data.consumeBytes(HelloMessage.LENGTH) : null));
            messageFds.add(new int[0]);
            messages.add(ackOfDeviceHello(uuid));
            messageFds.add(new int[0]);
            seq = 3;
        }
        final int count = data.consumeInt(1, 16);
        for (int i = 0; i < count && data.remainingBytes() > 0; i++) {
            final boolean rightSeq = data.consumeInt(0, 31) != 0;
            messages.add(message(data, rightSeq ? seq : data.consumeLong(), uuid));
            messageFds.add(fds(data, messages.get(messages.size() - 1)));
            seq++;
        }
        final byte[] tail = data.consumeBoolean() ? data.consumeBytes(data.consumeInt(0, 64)) : new byte[0];

        try (AFUNIXSocket client = AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(SOCKET.toFile()))) {
            client.setSoTimeout(10_000);
            final OutputStream out = client.getOutputStream();
            final Thread drain = drainer(client.getInputStream());
            try {
                for (int i = 0; i < messages.size(); i++) {
                    final int[] fds = messageFds.get(i);
                    if (fds.length > 0) {
                        final FileDescriptor[] d = new FileDescriptor[fds.length];
                        for (int k = 0; k < fds.length; k++) {
                            d[k] = FileDescriptorCast.unsafeUsing(fds[k]).getFileDescriptor();
                        }
                        client.setOutboundFileDescriptors(d);
                    }
                    out.write(messages.get(i));
                }
                out.write(tail);
                out.flush();
                client.shutdownOutput(); // end of stream after the last (possibly truncated) message
            } catch (final IOException e) {
                // the device side closed on a protocol error before we were done
            }
            drain.join(15_000);
            if (drain.isAlive()) {
                throw new AssertionError("device side did not close the connection after the end of stream");
            }
        }
        awaitReleased(fdsBefore);
    }

    /** Reads (and discards) what the device side sends until it closes; the device's writes must not block. */
    private static Thread drainer(final InputStream in) {
        final Thread t = new Thread(() -> {
            final byte[] b = new byte[4096];
            try {
                while (in.read(b) >= 0) {
                    // discard
                }
            } catch (final SocketTimeoutException e) {
                // reported by the join
            } catch (final IOException e) {
                // reset: closed
            }
        }, "fuzz-drain");
        t.setDaemon(true);
        t.start();
        return t;
    }

    private static void awaitReleased(final long fdsBefore) throws InterruptedException {
        final long deadline = System.nanoTime() + 10_000_000_000L;
        while (DEVICE.clientUuid() != null || DEVICE.deviceRunning() || DEVICE.clientRegions() != 0
            || anyStarted() || openFds() > fdsBefore) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("device side still holds the client: uuid=" + DEVICE.clientUuid() + " running="
                    + DEVICE.deviceRunning() + " regions=" + DEVICE.clientRegions() + " started=" + anyStarted()
                    + " fds " + fdsBefore + " -> " + openFds());
            }
            Thread.sleep(1);
        }
        if (!DATAPLANE.call(() -> Boolean.TRUE)) {
            throw new AssertionError("dataplane gone");
        }
    }

    private static boolean anyStarted() {
        for (int q = 0; q < REMOTE.queueCount(); q++) {
            if (REMOTE.queue(q).isStarted()) {
                return true;
            }
        }
        return false;
    }

    // ---- messages ---------------------------------------------------------------------------------------------

    private static byte[] frame(final int type, final int version, final long seq, final UUID uuid, final long declared,
                                final byte[] payload) {
        final byte[] bytes = new byte[VhostPciHeader.LENGTH + payload.length];
        final UnsafeBuffer b = new UnsafeBuffer(bytes);
        new VhostPciHeader().<VhostPciHeader>wrap(b, 0).type(type).version(version).length(declared).seq(seq)
            .sender(uuid);
        b.putBytes(VhostPciHeader.LENGTH, payload);
        return bytes;
    }

    private static byte[] hello(final UUID uuid, final byte[] raw) {
        final byte[] p = raw != null && raw.length == HelloMessage.LENGTH ? raw : new byte[HelloMessage.LENGTH];
        if (raw == null || raw.length != HelloMessage.LENGTH) {
            new HelloMessage().<HelloMessage>wrap(new UnsafeBuffer(p), 0).role(VhostPci.ROLE_CLIENT).minVersion(1)
                .maxVersion(1).capabilities(VhostPci.CAP_ALL).heartbeatIntervalMs(1000).heartbeatTimeoutMs(5000)
                .maxRegions(32).maxVirtqueues(64);
        }
        return frame(VhostPci.HELLO, 1, 1, uuid, p.length, p);
    }

    /** The device side's HELLO is always its message 1. */
    private static byte[] ackOfDeviceHello(final UUID uuid) {
        final byte[] p = new byte[AckMessage.HEADER_LENGTH];
        new AckMessage().<AckMessage>wrap(new UnsafeBuffer(p), 0).ackedSeq(1).ackedType(VhostPci.HELLO)
            .status(VhostPci.DONE).value(1);
        return frame(VhostPci.ACK, 1, 2, uuid, p.length, p);
    }

    private static byte[] message(final FuzzedDataProvider data, final long seq, final UUID uuid) {
        if (data.consumeInt(0, 11) == 0) {
            final byte[] payload = data.consumeBytes(data.consumeInt(0, 400));
            final long declared = data.consumeInt(0, 7) == 0 ? data.consumeInt() & 0xFFFF_FFFFL : payload.length;
            return frame(data.consumeInt(0, 10), data.consumeBoolean() ? 1 : data.consumeInt(0, 0xFFFF), seq,
                data.consumeInt(0, 15) == 0 ? UUID.randomUUID() : uuid, declared, payload);
        }
        final int type = data.pickValue(TYPES);
        final byte[] payload = payload(data, type);
        return frame(type, 1, seq, uuid, payload.length, payload);
    }

    private static byte[] payload(final FuzzedDataProvider data, final int type) {
        switch (type) {
            case VhostPci.MEMORY_INFO: {
                final int n = data.consumeBoolean() ? 1 : data.consumeInt(0, 4);
                final byte[] p = new byte[MemoryInfoMessage.lengthFor(n)];
                final MemoryInfoMessage m = new MemoryInfoMessage().wrap(new UnsafeBuffer(p), 0);
                m.op(data.consumeInt(0, 7) == 0 ? data.consumeInt(0, 0xFFFF) : data.consumeInt(0, 1))
                    .nregions(data.consumeInt(0, 15) == 0 ? data.consumeInt() & 0xFFFF_FFFFL : n);
                for (int i = 0; i < n; i++) {
                    if (data.consumeBoolean()) {
                        m.region(i).guestPhysAddr(GPA).memorySize(MEMORY).userAddr(UVA).mmapOffset(0);
                    } else {
                        m.region(i).guestPhysAddr(data.consumeBoolean() ? GPA + data.consumeLong(0, MEMORY) : data.consumeLong())
                            .memorySize(data.consumeBoolean() ? data.consumeLong(0, MEMORY + 4096) : data.consumeLong())
                            .userAddr(data.consumeBoolean() ? UVA + data.consumeLong(0, MEMORY) : data.consumeLong())
                            .mmapOffset(data.consumeBoolean() ? data.consumeLong(0, MEMORY) : data.consumeLong());
                    }
                }
                return p;
            }
            case VhostPci.DEVICE_INFO: {
                final boolean add = data.consumeInt(0, 3) != 0;
                final int n = add ? (data.consumeBoolean() ? 2 : data.consumeInt(0, 4)) : data.consumeInt(0, 2);
                final byte[] p = new byte[DeviceInfoMessage.lengthFor(add ? VhostPci.OP_ADD : VhostPci.OP_DEL, n)];
                final DeviceInfoMessage m = new DeviceInfoMessage().wrap(new UnsafeBuffer(p), 0);
                m.op(add ? VhostPci.OP_ADD : VhostPci.OP_DEL).deviceType(data.consumeInt(0, 7) == 0 ? data.consumeInt(0, 3)
                    : VhostPci.DEVICE_NET).nvqs(n).deviceId(data.consumeBoolean() ? 0x0000_0c0c_0c00_5452L : data.consumeLong())
                    .features(add ? (data.consumeBoolean() ? FEATURES : data.consumeLong()) : 0);
                for (int i = 0; i < n && add; i++) {
                    final VirtqInfo v = m.virtq(i);
                    v.index(data.consumeBoolean() ? i : data.consumeInt(0, 0xFFFF))
                        .lastAvailIdx(data.consumeInt(0, 0xFFFF)).lastUsedIdx(data.consumeInt(0, 0xFFFF))
                        .stateFlags(data.consumeInt(0, 7) == 0 ? data.consumeInt(0, 0xFF) : data.consumeInt(0, 3))
                        .size(data.consumeBoolean() ? 1 << data.consumeInt(0, 10) : data.consumeInt(0, 0xFFFF))
                        .format(data.consumeInt(0, 7) == 0 ? data.consumeInt(0, 0xFF) : data.consumeInt(0, 1))
                        .fdFlags(data.consumeInt(0, 7) == 0 ? data.consumeInt(0, 0xFF) : data.consumeInt(0, 3))
                        .descAddr(ringAddr(data)).driverAddr(ringAddr(data)).deviceAddr(ringAddr(data))
                        .logAddr(data.consumeLong());
                }
                if (!add) {
                    for (int i = 0; i < n; i++) {
                        m.state(i).index(data.consumeInt(0, 3)).lastAvailIdx(data.consumeInt(0, 0xFFFF));
                    }
                }
                return p;
            }
            case VhostPci.FEATURE_BITS: {
                final byte[] p = new byte[FeatureBitsMessage.LENGTH];
                new FeatureBitsMessage().<FeatureBitsMessage>wrap(new UnsafeBuffer(p), 0)
                    .features(data.consumeBoolean() ? FEATURES : data.consumeLong()).flags(data.consumeInt(0, 3));
                return p;
            }
            case VhostPci.PEER_CONNECTION: {
                final byte[] p = new byte[PeerConnectionMessage.LENGTH];
                new PeerConnectionMessage().<PeerConnectionMessage>wrap(new UnsafeBuffer(p), 0).state(data.consumeInt(0, 2));
                return p;
            }
            case VhostPci.DIRTY_PAGE_LOGGING: {
                final byte[] p = new byte[DirtyPageLoggingMessage.LENGTH];
                new DirtyPageLoggingMessage().<DirtyPageLoggingMessage>wrap(new UnsafeBuffer(p), 0).op(data.consumeInt(0, 2))
                    .logSize(data.consumeBoolean() ? data.consumeLong(0, MEMORY + 1) : data.consumeLong())
                    .mmapOffset(data.consumeBoolean() ? data.consumeLong(0, MEMORY) : data.consumeLong());
                return p;
            }
            case VhostPci.HEARTBEAT: {
                final byte[] p = new byte[HeartbeatMessage.LENGTH];
                new HeartbeatMessage().<HeartbeatMessage>wrap(new UnsafeBuffer(p), 0).op(data.consumeInt(0, 2))
                    .pingSeq(data.consumeInt(0, 8)).timestampNs(data.consumeLong());
                return p;
            }
            case VhostPci.ACK: {
                final int n = data.consumeInt(0, 2);
                final byte[] p = new byte[AckMessage.lengthFor(n)];
                new AckMessage().<AckMessage>wrap(new UnsafeBuffer(p), 0).ackedSeq(data.consumeInt(0, 8))
                    .ackedType(data.consumeInt(0, 9)).status(data.consumeInt(0, 7)).reason(data.consumeInt(0, 20))
                    .value(data.consumeLong()).nvqs(n);
                return p;
            }
            default: // a second HELLO
                return new byte[HelloMessage.LENGTH];
        }
    }

    private static long ringAddr(final FuzzedDataProvider data) {
        return data.consumeInt(0, 7) == 0 ? data.consumeLong() : UVA + data.consumeInt(0, (int) MEMORY) / 16 * 16;
    }

    /** Mostly the fds the message announces (the memfd for regions, the eventfd for rings), sometimes any. */
    private static int[] fds(final FuzzedDataProvider data, final byte[] message) {
        final UnsafeBuffer b = new UnsafeBuffer(message);
        final int type = b.getShort(0, java.nio.ByteOrder.LITTLE_ENDIAN) & 0xFFFF;
        int n;
        if (data.consumeInt(0, 7) == 0) {
            n = data.consumeInt(0, 8); // at most 8: more than junixsocket's 60 is a known transport leak
        } else if (type == VhostPci.MEMORY_INFO && message.length >= VhostPciHeader.LENGTH + 8) {
            n = (int) Math.min(8, b.getInt(VhostPciHeader.LENGTH + 4, java.nio.ByteOrder.LITTLE_ENDIAN) & 0xFFFF_FFFFL);
            if ((b.getShort(VhostPciHeader.LENGTH, java.nio.ByteOrder.LITTLE_ENDIAN) & 0xFFFF) != VhostPci.OP_ADD) {
                n = 0;
            }
        } else if (type == VhostPci.DEVICE_INFO && message.length >= VhostPciHeader.LENGTH + DeviceInfoMessage.HEADER_LENGTH) {
            n = 0;
            for (int at = VhostPciHeader.LENGTH + DeviceInfoMessage.HEADER_LENGTH + 11; at < message.length && n < 8;
                 at += VirtqInfo.LENGTH) {
                n += Integer.bitCount(b.getByte(at) & 3);
            }
        } else if (type == VhostPci.DIRTY_PAGE_LOGGING && message.length > VhostPciHeader.LENGTH) {
            n = b.getByte(VhostPciHeader.LENGTH) == VhostPci.LOG_START ? 1 : 0;
        } else {
            n = 0;
        }
        final int[] fds = new int[Math.min(n, 8)];
        for (int i = 0; i < fds.length; i++) {
            final boolean memory = type == VhostPci.MEMORY_INFO || type == VhostPci.DIRTY_PAGE_LOGGING;
            fds[i] = data.consumeInt(0, 15) == 0 ? (memory ? EVENTFD.fd() : MEMFD) : memory ? MEMFD : EVENTFD.fd();
        }
        return fds;
    }

    /** Sockets, eventfds and memfds open (not jar files the JVM opens lazily, nor Jazzer's own files). */
    private static long openFds() {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.map(VhostPciSessionFuzzTest::target)
                .filter(t -> t.startsWith("socket:") || t.contains("eventfd") || t.startsWith("/memfd:"))
                .count();
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String target(final Path fd) {
        try {
            return Files.readSymbolicLink(fd).toString();
        } catch (final IOException e) {
            return "";
        }
    }
}
