package dev.vhostnet.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.vhostnet.backend.NetDeviceConfig;
import dev.vhostnet.backend.VhostUserChannel;
import dev.vhostnet.backend.VhostUserNetHandler;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.sys.Mapping;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.frontend.GuestMemoryImage.MemoryRegion;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.VhostUserHeader;
import dev.vhostnet.spec.VringAddrMessage;
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.AFUNIXServerSocket;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.FileDescriptor;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * Fuzz target: the vhost-user message decoder ({@link VhostUserChannel}) and protocol handler
 * ({@link VhostUserNetHandler}) fed a sequence of fuzzed messages over a real AF_UNIX connection, against a
 * running dataplane. Messages are mostly shaped like real requests (known request codes, payloads with the
 * right layout but fuzzed fields: feature bits, ring indexes and sizes, ring addresses, memory regions over a
 * fixed 1 MiB memfd, config ranges) and sometimes raw: any code, flags, declared size and fds (the memfd or an
 * eventfd, up to 10 per message), with a stream that may end mid-message.
 *
 * <p>A finding is any exception out of serve() or close() other than an IOException (the connection ending),
 * a port left with a started queue after close(), an fd left open after the connection, or a dead dataplane.
 */
class MessageHandlerFuzzTest {
    private static final Logger PROJECT_LOG = Logger.getLogger("dev.vhostnet");
    private static final long UVA = 0x7f55_0000_0000L;
    private static final long GPA = 0x1_0000_0000L;
    private static final long MEMORY = 1 << 20;
    private static final int[] REQUESTS = {
        FrontendRequest.GET_FEATURES, FrontendRequest.SET_FEATURES, FrontendRequest.SET_OWNER,
        FrontendRequest.RESET_OWNER, FrontendRequest.SET_MEM_TABLE, FrontendRequest.SET_VRING_NUM,
        FrontendRequest.SET_VRING_ADDR, FrontendRequest.SET_VRING_BASE, FrontendRequest.GET_VRING_BASE,
        FrontendRequest.SET_VRING_KICK, FrontendRequest.SET_VRING_CALL, FrontendRequest.SET_VRING_ERR,
        FrontendRequest.GET_PROTOCOL_FEATURES, FrontendRequest.SET_PROTOCOL_FEATURES, FrontendRequest.GET_QUEUE_NUM,
        FrontendRequest.SET_VRING_ENABLE, FrontendRequest.SEND_RARP, FrontendRequest.NET_SET_MTU,
        FrontendRequest.GET_CONFIG, FrontendRequest.SET_CONFIG, FrontendRequest.RESET_DEVICE,
        FrontendRequest.GET_MAX_MEM_SLOTS, FrontendRequest.ADD_MEM_REG, FrontendRequest.REM_MEM_REG,
        FrontendRequest.SET_STATUS, FrontendRequest.GET_STATUS, FrontendRequest.SET_LOG_BASE,
        FrontendRequest.SET_BACKEND_REQ_FD, FrontendRequest.GET_INFLIGHT_FD,
    };

    private static final Path DIR;
    private static final AFUNIXServerSocket LISTENER;
    private static final AFUNIXSocketAddress ADDRESS;
    private static final VirtioNetPort PORT = new VirtioNetPort("fuzz", 2);
    private static final Dataplane DATAPLANE;
    private static final NetDeviceConfig CONFIG = new NetDeviceConfig(new byte[] {0x52, 0x54, 0, 1, 2, 3}, 2, 1500);
    private static final int MEMFD = MemFd.create("fuzz-guest", MEMORY);
    private static final UnsafeBuffer GUEST;
    private static final EventFd EVENTFD = EventFd.create();

    static {
        PROJECT_LOG.setLevel(Level.OFF); // rejections are the point; do not log each one
        try {
            DIR = Files.createTempDirectory("vhostnet-fuzz");
            ADDRESS = AFUNIXSocketAddress.of(DIR.resolve("fuzz.sock").toFile());
            LISTENER = AFUNIXServerSocket.newInstance();
            LISTENER.bind(ADDRESS, 4);
        } catch (final IOException e) {
            throw new UncheckedIOException(e);
        }
        DATAPLANE = new Dataplane(new VirtioNetPort[] {PORT}, new VirtioNetPort[] {null}, PollMode.ADAPTIVE, -1);
        DATAPLANE.start();
        GUEST = new UnsafeBuffer(Mapping.map(MEMFD, 0, MEMORY, true).address(), (int) MEMORY);
    }

    @FuzzTest(maxDuration = "25s")
    void messages(final FuzzedDataProvider data) throws IOException {
        // The guest writes a little ring content (the dataplane walks whatever rings the messages start).
        final int scribbles = data.consumeInt(0, 4);
        for (int i = 0; i < scribbles; i++) {
            GUEST.putLong(data.consumeInt(0, 0x3FFF) * 8, data.consumeLong());
        }
        final long fdsBefore = openFds();
        final int count = data.consumeInt(1, 24);
        final List<byte[]> messages = new ArrayList<>();
        final List<int[]> messageFds = new ArrayList<>();
        for (int i = 0; i < count && data.remainingBytes() > 0; i++) {
            messages.add(message(data));
            messageFds.add(fds(data));
        }
        final byte[] tail = data.consumeBoolean() ? data.consumeRemainingAsBytes() : new byte[0];

        try (AFUNIXSocket client = AFUNIXSocket.connectTo(ADDRESS); AFUNIXSocket server = LISTENER.accept()) {
            final OutputStream out = client.getOutputStream();
            for (int i = 0; i < messages.size(); i++) {
                final int[] fds = messageFds.get(i);
                if (fds.length > 0) {
                    final FileDescriptor[] descriptors = new FileDescriptor[fds.length];
                    for (int k = 0; k < fds.length; k++) {
                        descriptors[k] = FileDescriptorCast.unsafeUsing(fds[k]).getFileDescriptor();
                    }
                    client.setOutboundFileDescriptors(descriptors);
                }
                out.write(messages.get(i));
            }
            out.write(tail);
            out.flush();
            client.shutdownOutput(); // end of stream after the last (possibly truncated) message

            final VhostUserChannel channel = new VhostUserChannel(server);
            final VhostUserNetHandler handler = new VhostUserNetHandler(PORT, DATAPLANE, CONFIG, channel);
            try {
                handler.serve();
            } catch (final IOException expected) {
                // the connection ended (EOF mid-message, reply to a closed peer): what serve() may throw
            } finally {
                handler.close();
                channel.close();
            }
        }
        for (int q = 0; q < PORT.queueCount(); q++) {
            if (PORT.queue(q).isStarted()) {
                throw new AssertionError("queue " + q + " still started after the connection closed");
            }
        }
        if (!DATAPLANE.call(() -> Boolean.TRUE)) {
            throw new AssertionError("dataplane gone");
        }
        final long fdsAfter = openFds();
        if (fdsAfter > fdsBefore) {
            throw new AssertionError((fdsAfter - fdsBefore) + " fds leaked by one connection");
        }
    }

    private static byte[] message(final FuzzedDataProvider data) {
        final boolean raw = data.consumeInt(0, 7) == 0;
        final int request = raw ? data.consumeInt() : data.pickValue(REQUESTS);
        final int flags = raw ? data.consumeInt()
            : VhostUserHeader.VERSION | (data.consumeBoolean() ? VhostUserHeader.FLAG_NEED_REPLY : 0);
        final byte[] payload = raw ? data.consumeBytes(data.consumeInt(0, 600)) : payload(data, request);
        final long declared = data.consumeInt(0, 15) == 0 ? data.consumeInt() & 0xFFFF_FFFFL : payload.length;
        final byte[] bytes = new byte[VhostUserHeader.LENGTH + payload.length];
        final UnsafeBuffer b = new UnsafeBuffer(bytes);
        new VhostUserHeader().<VhostUserHeader>wrap(b, 0).request(request).flags(flags).size((int) declared);
        b.putBytes(VhostUserHeader.LENGTH, payload);
        return bytes;
    }

    private static int[] fds(final FuzzedDataProvider data) {
        final int n = data.consumeInt(0, 15) < 12 ? data.consumeInt(0, 1) : data.consumeInt(0, 10);
        final int[] fds = new int[n];
        for (int i = 0; i < n; i++) {
            fds[i] = data.consumeBoolean() ? MEMFD : EVENTFD.fd();
        }
        return fds;
    }

    private static byte[] payload(final FuzzedDataProvider data, final int request) {
        switch (request) {
            case FrontendRequest.SET_FEATURES:
                return VhostUserFrontend.u64(data.consumeBoolean() ? CONFIG.offeredFeatures() & data.consumeLong() : data.consumeLong());
            case FrontendRequest.SET_PROTOCOL_FEATURES:
                return VhostUserFrontend.u64(data.consumeBoolean() ? NetDeviceConfig.OFFERED_PROTOCOL_FEATURES : data.consumeLong());
            case FrontendRequest.SEND_RARP:
            case FrontendRequest.NET_SET_MTU:
            case FrontendRequest.SET_STATUS:
            case FrontendRequest.SET_LOG_BASE:
                return VhostUserFrontend.u64(data.consumeBoolean() ? data.consumeLong(0, 70000) : data.consumeLong());
            case FrontendRequest.SET_VRING_KICK:
            case FrontendRequest.SET_VRING_CALL:
            case FrontendRequest.SET_VRING_ERR:
                return VhostUserFrontend.u64(data.consumeBoolean() ? data.consumeInt(0, 5) | (data.consumeBoolean() ? 0x100 : 0)
                    : data.consumeLong());
            case FrontendRequest.SET_VRING_NUM:
            case FrontendRequest.SET_VRING_BASE:
            case FrontendRequest.GET_VRING_BASE:
            case FrontendRequest.SET_VRING_ENABLE:
                return VhostUserFrontend.vringState(index(data),
                    data.consumeBoolean() ? 1L << data.consumeInt(0, 16) : data.consumeInt() & 0xFFFF_FFFFL);
            case FrontendRequest.SET_VRING_ADDR: {
                final byte[] p = new byte[VringAddrMessage.LENGTH];
                new VringAddrMessage().<VringAddrMessage>wrap(new UnsafeBuffer(p), 0).index(index(data))
                    .flags(data.consumeBoolean() ? 0 : data.consumeInt() & 0xFFFF_FFFFL)
                    .descUserAddr(uva(data)).usedUserAddr(uva(data)).availUserAddr(uva(data)).logGuestAddr(data.consumeLong());
                return p;
            }
            case FrontendRequest.SET_MEM_TABLE: {
                final int n = data.consumeBoolean() ? data.consumeInt(1, 2) : data.consumeInt(0, 9);
                final List<MemoryRegion> regions = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    regions.add(region(data));
                }
                return VhostUserFrontend.memTable(regions);
            }
            case FrontendRequest.ADD_MEM_REG:
            case FrontendRequest.REM_MEM_REG:
                return VhostUserFrontend.singleRegion(region(data));
            case FrontendRequest.GET_CONFIG:
            case FrontendRequest.SET_CONFIG: {
                final byte[] bytes = data.consumeBytes(data.consumeInt(0, 300));
                final byte[] p = VhostUserFrontend.configPayload(data.consumeInt(0, 300), bytes);
                if (data.consumeBoolean()) {
                    new UnsafeBuffer(p).putInt(4, data.consumeInt()); // a size that disagrees with the bytes
                }
                return p;
            }
            default:
                return data.consumeInt(0, 7) == 0 ? data.consumeBytes(16) : new byte[0];
        }
    }

    private static long index(final FuzzedDataProvider data) {
        return data.consumeBoolean() ? data.consumeInt(0, 4) : data.consumeInt() & 0xFFFF_FFFFL;
    }

    private static long uva(final FuzzedDataProvider data) {
        return data.consumeInt(0, 7) == 0 ? data.consumeLong() : UVA + data.consumeInt(0, (int) MEMORY) / 16 * 16;
    }

    private static MemoryRegion region(final FuzzedDataProvider data) {
        if (data.consumeBoolean()) {
            return new MemoryRegion(GPA, MEMORY, UVA, 0, MEMFD); // the whole memfd, as a guest would
        }
        final long gpa = data.consumeBoolean() ? GPA + data.consumeLong(0, MEMORY) : data.consumeLong();
        final long size = data.consumeBoolean() ? data.consumeLong(0, MEMORY + 4096) : data.consumeLong();
        final long uva = data.consumeBoolean() ? UVA + data.consumeLong(0, MEMORY) : data.consumeLong();
        final long offset = data.consumeBoolean() ? data.consumeLong(0, MEMORY) : data.consumeLong();
        return new MemoryRegion(gpa, size, uva, offset, MEMFD);
    }

    /**
     * Open fds a connection can leak: sockets, eventfds and memfds (not jar files the JVM opens lazily while
     * loading a class for the first time, nor Jazzer's own files).
     */
    private static long openFds() {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.map(MessageHandlerFuzzTest::target)
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
            return ""; // closed meanwhile (the directory stream's own fd)
        }
    }
}
