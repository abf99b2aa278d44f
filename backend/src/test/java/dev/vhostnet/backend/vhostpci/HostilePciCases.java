package dev.vhostnet.backend.vhostpci;

import dev.vhostnet.backend.vhostpci.HostileClient.Answer;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.GuestMemoryImage.MemoryRegion;
import dev.vhostnet.hostile.DescriptorAbuse;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
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
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.FileInputStream;
import java.io.IOException;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;

import static dev.vhostnet.spec.SplitRingLayout.DESC_F_WRITE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The hostile vhost-pci client cases, each an attack on the device side of a {@link PciArena} with the reaction
 * the device side owes (spec/VHOST-PCI.md §10): a FAIL ACK with the right reason while the connection goes on
 * being served, a closed connection, or (for hostile ring contents in the client's guest memory) a broken
 * client queue while everything else goes on.
 */
final class HostilePciCases {
    /** One attack. */
    interface Attack {
        void run(PciArena arena) throws Exception;
    }

    record Case(String name, Attack attack) {
    }

    private static final int RX = PciArena.RX;
    private static final int TX = PciArena.TX;
    private static final long F = ClientGuest.FEATURES;
    private static final long INDIRECT = VirtioFeature.bit(VirtioFeature.RING_INDIRECT_DESC);
    /** Descriptor indexes the cases write by hand: above those the guest's own chains use. */
    private static final int D = 40;

    private HostilePciCases() {
    }

    static List<Case> all() {
        final List<Case> cases = new ArrayList<>();
        byCategory().values().forEach(cases::addAll);
        return Collections.unmodifiableList(cases);
    }

    /**
     * Cases that fail until the fd ownership of the vhost-pci transport is fixed (issue 10, on another branch):
     * junixsocket receives at most 60 fds per message (it then throws without closing the 60 it installed), and
     * it closes every fd a connection received a second time when that socket closes, after the device side has
     * closed (or handed to epoll) its own use of the number.
     */
    static List<Case> fdTransport() {
        final List<Case> cases = new ArrayList<>();
        for (final int n : new int[] {61, VhostPci.MAX_FDS}) {
            open(cases, "FEATURE_BITS with " + n + " eventfds (at most MAX_FDS: refused BAD_FDS, connection kept)",
                (arena, c, g) -> {
                    final int[] fds = new int[n];
                    java.util.Arrays.fill(fds, g.rx.kickFd().fd());
                    refused(c, c.awaitAck(c.send(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, null, fds)),
                        VhostPci.FAIL, VhostPci.R_BAD_FDS);
                });
        }
        for (final int n : new int[] {VhostPci.MAX_FDS + 1, 200, 253}) {
            open(cases, "MEMORY_INFO ADD with " + n + " memfds (more than MAX_FDS: closed)", (arena, c, g) -> {
                final int[] fds = new int[n];
                java.util.Arrays.fill(fds, g.memory.fd());
                c.sendMemory(VhostPci.OP_ADD, List.of(g.region()), fds);
                closed(c, n + " fds on one message");
            });
        }
        add(cases, "the same kick and call eventfds handed to consecutive sessions", arena -> {
            try (ClientGuest g = new ClientGuest()) {
                for (int i = 0; i < 3; i++) {
                    try (HostileClient c = running(arena, g, F)) {
                        c.delDevice();
                    }
                    arena.awaitNoClient("session " + i);
                }
            }
        });
        return Collections.unmodifiableList(cases);
    }

    static Map<String, List<Case>> byCategory() {
        final Map<String, List<Case>> categories = new LinkedHashMap<>();
        categories.put("framing", category(HostilePciCases::framing));
        categories.put("hello", category(HostilePciCases::hello));
        categories.put("headers after open", category(HostilePciCases::headersAfterOpen));
        categories.put("malformed requests", category(HostilePciCases::malformed));
        categories.put("fds", category(HostilePciCases::fds));
        categories.put("regions", category(HostilePciCases::regions));
        categories.put("rings", category(HostilePciCases::rings));
        categories.put("live descriptors", category(HostilePciCases::liveDescriptors));
        categories.put("liveness and admission", category(HostilePciCases::liveness));
        return Collections.unmodifiableMap(categories);
    }

    private static List<Case> category(final java.util.function.Consumer<List<Case>> adder) {
        final List<Case> cases = new ArrayList<>();
        adder.accept(cases);
        return Collections.unmodifiableList(cases);
    }

    // ---- helpers ------------------------------------------------------------------------------------------

    /** A request refused with {@code status}/{@code reason}; the connection still served. */
    static void refused(final HostileClient c, final Answer a, final int status, final long reason) throws IOException {
        assertEquals(VhostPci.statusName(status) + "/" + VhostPci.reasonName(reason), VhostPci.statusName(a.status())
            + "/" + VhostPci.reasonName(a.reason()), "answer");
        assertTrue(c.alive(), "connection still served after the refusal");
    }

    static void closed(final HostileClient c, final String why) {
        assertTrue(c.closedByDevice(), "device side must close the connection on " + why);
    }

    /** Open, with the guest's whole memory added. */
    static HostileClient withMemory(final PciArena arena, final ClientGuest g) throws IOException {
        final HostileClient c = HostileClient.open(arena.pci);
        assertEquals(VhostPci.ADD_DONE, c.addMemory(g.region()).status(), "memory");
        return c;
    }

    /** Open, memory added, {@code features} accepted. */
    static HostileClient ready(final PciArena arena, final ClientGuest g, final long features) throws IOException {
        final HostileClient c = withMemory(arena, g);
        final Answer a = c.features(features, true);
        assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, a.status());
        assertEquals(features, a.value(), "all features accepted");
        return c;
    }

    /** Open, the client's device runs on the device side and a frame went each way. */
    static HostileClient running(final PciArena arena, final ClientGuest g, final long features) throws IOException {
        final HostileClient c = ready(arena, g, features);
        final Answer a = c.addDevice(features, g.rings(), g.ringFds());
        assertEquals(VhostPci.ADD_DONE, a.status(), "device: " + a);
        arena.exchange(g);
        return c;
    }

    private static void add(final List<Case> cases, final String name, final Attack attack) {
        cases.add(new Case(name, attack));
    }

    /** A case on a fresh guest and a client that has opened the session. */
    private interface OpenAttack {
        void run(PciArena arena, HostileClient c, ClientGuest g) throws Exception;
    }

    private static void open(final List<Case> cases, final String name, final OpenAttack attack) {
        add(cases, name, arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = HostileClient.open(arena.pci)) {
                attack.run(arena, c, g);
            }
        });
    }

    /** A case on a client whose memory is added and features accepted. */
    private static void ready(final List<Case> cases, final String name, final long features, final OpenAttack attack) {
        add(cases, name, arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = ready(arena, g, features)) {
                attack.run(arena, c, g);
            }
        });
    }

    private static byte[] header(final int type, final int version, final long length, final long seq, final UUID uuid) {
        final byte[] h = new byte[VhostPciHeader.LENGTH];
        new VhostPciHeader().<VhostPciHeader>wrap(new UnsafeBuffer(h), 0).type(type).version(version).length(length)
            .seq(seq).sender(uuid);
        return h;
    }

    private static byte[] concat(final byte[] x, final byte[] y) {
        final byte[] r = java.util.Arrays.copyOf(x, x.length + y.length);
        System.arraycopy(y, 0, r, x.length, y.length);
        return r;
    }

    private static byte[] helloPayload(final int role, final int min, final int max, final long interval,
                                       final long timeout) {
        final byte[] p = new byte[HelloMessage.LENGTH];
        new HelloMessage().<HelloMessage>wrap(new UnsafeBuffer(p), 0).role(role).minVersion(min).maxVersion(max)
            .capabilities(VhostPci.CAP_ALL).heartbeatIntervalMs(interval).heartbeatTimeoutMs(timeout)
            .maxRegions(32).maxVirtqueues(64);
        return p;
    }

    // ---- framing: the connection is closed -----------------------------------------------------------------

    private static void framing(final List<Case> cases) {
        for (final int type : new int[] {0, 9, 0xFFFF}) {
            add(cases, "msg_type " + type + " as the first message", arena -> {
                try (HostileClient c = HostileClient.connect(arena.pci)) {
                    c.sendRaw(concat(header(type, 1, 32, 1, c.uuid), new byte[32]));
                    closed(c, "unknown msg_type " + type);
                }
            });
        }
        for (final long len : new long[] {VhostPci.MAX_PAYLOAD + 1, 0xFFFF_FFFFL, 0x8000_0000L}) {
            add(cases, "HELLO announcing msg_len " + len, arena -> {
                try (HostileClient c = HostileClient.connect(arena.pci)) {
                    c.sendRaw(concat(header(VhostPci.HELLO, 1, len, 1, c.uuid), new byte[64]));
                    closed(c, "msg_len " + len + " (refused before the payload is read)");
                }
            });
        }
        add(cases, "EOF inside a header", arena -> {
            try (HostileClient c = HostileClient.connect(arena.pci)) {
                c.sendRaw(new byte[] {1, 0, 1, 0, 32});
            }
        });
        add(cases, "EOF inside a HELLO payload", arena -> {
            try (HostileClient c = HostileClient.connect(arena.pci)) {
                c.sendRaw(concat(header(VhostPci.HELLO, 1, 32, 1, c.uuid), new byte[10]));
            }
        });
        open(cases, "EOF inside a MEMORY_INFO payload with its memfd attached", (arena, c, g) -> {
            final byte[] h = header(VhostPci.MEMORY_INFO, 1, MemoryInfoMessage.lengthFor(1), c.nextSeq, c.uuid);
            c.sendRaw(concat(h, new byte[12]), g.memory.fd());
        });
        add(cases, "HELLO byte by byte, then 4 KiB of junk", arena -> {
            try (HostileClient c = HostileClient.connect(arena.pci)) {
                c.deviceHello = c.read();
                final byte[] m = concat(header(VhostPci.HELLO, 1, 32, 1, c.uuid), helloPayload(VhostPci.ROLE_CLIENT, 1, 1, 1000, 5000));
                for (final byte b : m) {
                    c.sendRaw(new byte[] {b});
                }
                c.nextSeq = 2;
                assertEquals(VhostPci.DONE, c.awaitAck(1).status(), "a HELLO sent byte by byte is a HELLO");
                final byte[] junk = new byte[4096];
                new Random(7).nextBytes(junk);
                c.sendRaw(junk);
                closed(c, "4 KiB of random bytes");
            }
        });
        add(cases, "4 KiB of random bytes as the first message", arena -> {
            try (HostileClient c = HostileClient.connect(arena.pci)) {
                final byte[] junk = new byte[4096];
                new Random(11).nextBytes(junk);
                junk[0] = 1; // HELLO type, so that the length and what follows are garbage
                junk[1] = 0;
                c.sendRaw(junk);
                closed(c, "random bytes");
            }
        });
        open(cases, "msg_type 9 after the session is open", (arena, c, g) -> {
            c.sendAs(9, 1, c.nextSeq, c.uuid, 0, 0, null);
            closed(c, "unknown msg_type");
        });
        open(cases, "msg_len 4097 after the session is open", (arena, c, g) -> {
            c.sendAs(VhostPci.FEATURE_BITS, 1, c.nextSeq, c.uuid, VhostPci.MAX_PAYLOAD + 1, 16, null);
            closed(c, "msg_len 4097");
        });
        open(cases, "MEMORY_INFO msg_len 4096 with 8 bytes sent, then silence", (arena, c, g) -> {
            c.sendAs(VhostPci.MEMORY_INFO, 1, c.nextSeq, c.uuid, 4096, 8, null);
            assertTrue(c.closedWithin(Duration.ofMillis(PciArena.TIMEOUT_MS + 3000)),
                "a message that never completes costs its connection after the heartbeat timeout");
        });
    }

    // ---- HELLO -------------------------------------------------------------------------------------------

    private interface HelloAttack {
        void run(PciArena arena, HostileClient c) throws Exception;
    }

    /** Read the device side's HELLO first, then attack. */
    private static void afterDeviceHello(final List<Case> cases, final String name, final HelloAttack attack) {
        add(cases, name, arena -> {
            try (HostileClient c = HostileClient.connect(arena.pci)) {
                c.deviceHello = c.read();
                assertEquals(VhostPci.HELLO, c.deviceHello.type());
                attack.run(arena, c);
            }
        });
    }

    /** Our HELLO refused with {@code reason}, then the connection closed. */
    private static void helloRefused(final List<Case> cases, final String name, final long reason,
                                     final HelloAttack send) {
        afterDeviceHello(cases, name, (arena, c) -> {
            send.run(arena, c);
            final Answer a = c.awaitAck(1);
            assertEquals(VhostPci.FAIL, a.status(), "HELLO answer");
            assertEquals(VhostPci.reasonName(reason), VhostPci.reasonName(a.reason()), "reason");
            if (reason == VhostPci.R_VERSION_UNSUPPORTED) {
                assertEquals(1 | 1L << 16, a.value(), "the device side's own version range");
            }
            closed(c, "a refused HELLO");
        });
    }

    private static void hello(final List<Case> cases) {
        helloRefused(cases, "HELLO of 31 bytes", VhostPci.R_BAD_MESSAGE, (arena, c) ->
            c.sendRaw(concat(header(VhostPci.HELLO, 1, 31, 1, c.uuid),
                java.util.Arrays.copyOf(helloPayload(VhostPci.ROLE_CLIENT, 1, 1, 1000, 5000), 31))));
        helloRefused(cases, "HELLO of 0 bytes", VhostPci.R_BAD_MESSAGE, (arena, c) ->
            c.sendRaw(header(VhostPci.HELLO, 1, 0, 1, c.uuid)));
        helloRefused(cases, "HELLO versions 2..3", VhostPci.R_VERSION_UNSUPPORTED,
            (arena, c) -> c.hello(VhostPci.ROLE_CLIENT, 2, 3, 1000, 5000));
        helloRefused(cases, "HELLO versions 0..0", VhostPci.R_VERSION_UNSUPPORTED,
            (arena, c) -> c.hello(VhostPci.ROLE_CLIENT, 0, 0, 1000, 5000));
        helloRefused(cases, "HELLO versions 3..1 (min above max)", VhostPci.R_VERSION_UNSUPPORTED,
            (arena, c) -> c.hello(VhostPci.ROLE_CLIENT, 3, 1, 1000, 5000));
        helloRefused(cases, "HELLO versions 65535..65535", VhostPci.R_VERSION_UNSUPPORTED,
            (arena, c) -> c.hello(VhostPci.ROLE_CLIENT, 0xFFFF, 0xFFFF, 1000, 5000));
        for (final int role : new int[] {VhostPci.ROLE_DEVICE, 0, 0xFF}) {
            helloRefused(cases, "HELLO with role " + role, VhostPci.R_ROLE_CONFLICT,
                (arena, c) -> c.hello(role, 1, 1, 1000, 5000));
        }
        afterDeviceHello(cases, "HELLO with the device side's own UUID", (arena, c) -> {
            c.sendRaw(concat(header(VhostPci.HELLO, 1, 32, 1, arena.deviceUuid()),
                helloPayload(VhostPci.ROLE_CLIENT, 1, 1, 1000, 5000)));
            final Answer a = c.awaitAck(1);
            assertEquals(VhostPci.R_SELF, a.reason(), "reason " + a);
            closed(c, "our own UUID");
        });
        helloRefused(cases, "HELLO with heartbeat interval 0", VhostPci.R_BAD_MESSAGE,
            (arena, c) -> c.hello(VhostPci.ROLE_CLIENT, 1, 1, 0, 5000));
        helloRefused(cases, "HELLO with heartbeat timeout below twice the interval", VhostPci.R_BAD_MESSAGE,
            (arena, c) -> c.hello(VhostPci.ROLE_CLIENT, 1, 1, 1000, 1999));
        helloRefused(cases, "HELLO with heartbeat interval 2^32-1", VhostPci.R_BAD_MESSAGE,
            (arena, c) -> c.sendRaw(concat(header(VhostPci.HELLO, 1, 32, 1, c.uuid),
                helloPayload(VhostPci.ROLE_CLIENT, 1, 1, 0xFFFF_FFFFL, 0xFFFF_FFFFL))));
        afterDeviceHello(cases, "HELLO with an eventfd attached", (arena, c) -> {
            try (EventFd e = EventFd.create()) {
                c.sendRaw(concat(header(VhostPci.HELLO, 1, 32, 1, c.uuid),
                    helloPayload(VhostPci.ROLE_CLIENT, 1, 1, 1000, 5000)), e.fd());
            }
            assertEquals(VhostPci.R_BAD_MESSAGE, c.awaitAck(1).reason());
            closed(c, "a HELLO with an fd");
        });
        afterDeviceHello(cases, "HELLO of 4096 bytes (a later version's extension) is accepted", (arena, c) -> {
            final byte[] p = java.util.Arrays.copyOf(helloPayload(VhostPci.ROLE_CLIENT, 1, 1, 1000, 5000), 4096);
            java.util.Arrays.fill(p, 32, 4096, (byte) 0x5A);
            c.sendRaw(concat(header(VhostPci.HELLO, 1, 4096, 1, c.uuid), p));
            c.nextSeq = 2;
            c.ack(c.deviceHello.seq(), VhostPci.HELLO, VhostPci.DONE, 0, 1);
            assertEquals(VhostPci.DONE, c.awaitAck(1).status());
            assertTrue(c.alive());
        });
        afterDeviceHello(cases, "HELLO with msg_version 2", (arena, c) -> {
            c.sendRaw(concat(header(VhostPci.HELLO, 2, 32, 1, c.uuid), helloPayload(VhostPci.ROLE_CLIENT, 1, 1, 1000, 5000)));
            closed(c, "HELLO msg_version 2");
        });
        for (final int type : new int[] {VhostPci.MEMORY_INFO, VhostPci.FEATURE_BITS, VhostPci.HEARTBEAT, VhostPci.ACK}) {
            afterDeviceHello(cases, VhostPci.typeName(type) + " before HELLO", (arena, c) -> {
                final int len = type == VhostPci.MEMORY_INFO ? MemoryInfoMessage.lengthFor(1)
                    : type == VhostPci.FEATURE_BITS ? FeatureBitsMessage.LENGTH
                    : type == VhostPci.HEARTBEAT ? HeartbeatMessage.LENGTH : AckMessage.HEADER_LENGTH;
                final byte[] p = new byte[len];
                if (type == VhostPci.MEMORY_INFO) {
                    new UnsafeBuffer(p).putInt(4, 1, ByteOrder.LITTLE_ENDIAN);
                }
                try (GuestMemoryImage m = GuestMemoryImage.create(1)) {
                    c.sendRaw(concat(header(type, 1, len, 1, c.uuid), p),
                        type == VhostPci.MEMORY_INFO ? new int[] {m.fd()} : new int[0]);
                }
                closed(c, VhostPci.typeName(type) + " before HELLO");
            });
        }
        afterDeviceHello(cases, "a request after HELLO but before accepting the device side's HELLO", (arena, c) -> {
            c.hello();
            c.send(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, null); // before our ACK of its HELLO: not open
            closed(c, "a request before the session is open");
        });
        afterDeviceHello(cases, "a second HELLO before the session is open", (arena, c) -> {
            c.hello();
            c.hello();
            closed(c, "a second HELLO");
        });
        open(cases, "a second HELLO after the session is open", (arena, c, g) -> {
            c.hello();
            closed(c, "a second HELLO");
        });
        afterDeviceHello(cases, "DONE for the device side's HELLO naming version 2", (arena, c) -> {
            c.hello();
            c.ack(c.deviceHello.seq(), VhostPci.HELLO, VhostPci.DONE, 0, 2);
            closed(c, "a DONE for another version");
        });
        afterDeviceHello(cases, "FAIL for the device side's HELLO", (arena, c) -> {
            c.hello();
            c.ack(c.deviceHello.seq(), VhostPci.HELLO, VhostPci.FAIL, VhostPci.R_BUSY, 0);
            closed(c, "our refusal of its HELLO");
        });
        afterDeviceHello(cases, "two DONEs for the device side's HELLO", (arena, c) -> {
            c.hello();
            c.ack(c.deviceHello.seq(), VhostPci.HELLO, VhostPci.DONE, 0, 1);
            c.ack(c.deviceHello.seq(), VhostPci.HELLO, VhostPci.DONE, 0, 1);
            closed(c, "an ACK for a request no longer pending");
        });
        afterDeviceHello(cases, "HELLO with msg_seq 0", (arena, c) -> {
            c.sendRaw(concat(header(VhostPci.HELLO, 1, 32, 0, c.uuid), helloPayload(VhostPci.ROLE_CLIENT, 1, 1, 1000, 5000)));
            closed(c, "msg_seq 0");
        });
    }

    // ---- headers after the session is open: the connection is closed ------------------------------------

    private static void headersAfterOpen(final List<Case> cases) {
        open(cases, "msg_seq skipping one", (arena, c, g) -> {
            c.sendAs(VhostPci.HEARTBEAT, 1, c.nextSeq + 1, c.uuid, HeartbeatMessage.LENGTH, HeartbeatMessage.LENGTH, null);
            closed(c, "a sequence gap");
        });
        open(cases, "msg_seq repeated", (arena, c, g) -> {
            c.ping();
            c.sendAs(VhostPci.HEARTBEAT, 1, c.nextSeq - 1, c.uuid, HeartbeatMessage.LENGTH, HeartbeatMessage.LENGTH, null);
            closed(c, "a repeated msg_seq");
        });
        open(cases, "msg_seq 2^64-1", (arena, c, g) -> {
            c.sendAs(VhostPci.HEARTBEAT, 1, -1L, c.uuid, HeartbeatMessage.LENGTH, HeartbeatMessage.LENGTH, null);
            closed(c, "msg_seq 2^64-1");
        });
        for (final int v : new int[] {0, 2, 0xFFFF}) {
            open(cases, "FEATURE_BITS with msg_version " + v, (arena, c, g) -> {
                c.sendAs(VhostPci.FEATURE_BITS, v, c.nextSeq, c.uuid, FeatureBitsMessage.LENGTH, FeatureBitsMessage.LENGTH, null);
                closed(c, "msg_version " + v);
            });
        }
        open(cases, "PING with msg_version 2", (arena, c, g) -> {
            c.sendAs(VhostPci.HEARTBEAT, 2, c.nextSeq, c.uuid, HeartbeatMessage.LENGTH, HeartbeatMessage.LENGTH, null);
            closed(c, "PING msg_version 2");
        });
        open(cases, "a request from another UUID", (arena, c, g) -> {
            c.sendAs(VhostPci.FEATURE_BITS, 1, c.nextSeq, UUID.randomUUID(), FeatureBitsMessage.LENGTH,
                FeatureBitsMessage.LENGTH, null);
            closed(c, "another sender UUID");
        });
        open(cases, "a PING with the device side's UUID", (arena, c, g) -> {
            c.sendAs(VhostPci.HEARTBEAT, 1, c.nextSeq, arena.deviceUuid(), HeartbeatMessage.LENGTH,
                HeartbeatMessage.LENGTH, null);
            closed(c, "the device side's own UUID");
        });
        open(cases, "an ACK for nothing", (arena, c, g) -> {
            c.ack(9999, VhostPci.PEER_CONNECTION, VhostPci.DONE, 0, 0);
            closed(c, "an ACK for a request never sent");
        });
        open(cases, "a PONG for nothing", (arena, c, g) -> {
            c.heartbeat(VhostPci.PONG, 12345, 42);
            closed(c, "a PONG for a PING never sent");
        });
        open(cases, "a PONG with the wrong timestamp", (arena, c, g) -> {
            c.playAlong = false;
            HostileClient.Msg m;
            do {
                m = c.read();
                assertNotNull(m, "the device side PINGs");
            } while (m.type() != VhostPci.HEARTBEAT || m.heartbeat().op() != VhostPci.PING);
            c.heartbeat(VhostPci.PONG, m.seq(), m.heartbeat().timestampNs() + 1);
            closed(c, "a PONG that does not echo its PING");
        });
        open(cases, "a PONG answering the same PING twice", (arena, c, g) -> {
            c.playAlong = false;
            HostileClient.Msg m;
            do {
                m = c.read();
            } while (m.type() != VhostPci.HEARTBEAT || m.heartbeat().op() != VhostPci.PING);
            c.heartbeat(VhostPci.PONG, m.seq(), m.heartbeat().timestampNs());
            c.heartbeat(VhostPci.PONG, m.seq(), m.heartbeat().timestampNs());
            closed(c, "a second PONG");
        });
        add(cases, "ACKs that do not fit the device side's PEER_CONNECTION request", arena -> {
            for (final int[] wrong : new int[][] {{VhostPci.FEATURE_BITS, VhostPci.DONE},
                {VhostPci.PEER_CONNECTION, VhostPci.FEATURE_BITS_ACCEPTED}, {VhostPci.PEER_CONNECTION, VhostPci.ADD_DONE}}) {
                try (ClientGuest g = new ClientGuest(); HostileClient c = ready(arena, g, F)) {
                    c.playAlong = false;
                    final long add = c.sendDevice(F, g.rings(), g.ringFds());
                    HostileClient.Msg m;
                    do {
                        m = c.read();
                        assertNotNull(m, "the device side announces PEER_CONNECTION after ADD_DONE");
                        if (m.type() == VhostPci.ACK) {
                            assertEquals(add, m.ack().ackedSeq());
                            assertEquals(VhostPci.ADD_DONE, m.ack().status());
                        }
                    } while (m.type() != VhostPci.PEER_CONNECTION);
                    c.ack(m.seq(), wrong[0], wrong[1], 0, 0);
                    closed(c, VhostPci.typeName(wrong[0]) + " " + VhostPci.statusName(wrong[1]));
                }
                arena.awaitNoClient("a bad ACK");
            }
        });
        open(cases, "a malformed ACK (status 7)", (arena, c, g) -> {
            c.send(VhostPci.ACK, AckMessage.HEADER_LENGTH, (b, at) -> new AckMessage().<AckMessage>wrap(b, at).status(7));
            closed(c, "an undefined ACK status");
        });
        open(cases, "an ACK of 31 bytes", (arena, c, g) -> {
            c.send(VhostPci.ACK, 31, null);
            closed(c, "a short ACK");
        });
        open(cases, "an ACK announcing 65 queue states", (arena, c, g) -> {
            c.send(VhostPci.ACK, AckMessage.HEADER_LENGTH, (b, at) -> new AckMessage().<AckMessage>wrap(b, at).nvqs(65));
            closed(c, "nvqs 65");
        });
        open(cases, "a HEARTBEAT with op 2", (arena, c, g) -> {
            c.send(VhostPci.HEARTBEAT, HeartbeatMessage.LENGTH, (b, at) -> b.putShort(at, (short) 2, ByteOrder.LITTLE_ENDIAN));
            closed(c, "HEARTBEAT op 2");
        });
        open(cases, "a HEARTBEAT of 8 bytes", (arena, c, g) -> {
            c.send(VhostPci.HEARTBEAT, 8, null);
            closed(c, "a short HEARTBEAT");
        });
        open(cases, "a PING with an eventfd attached", (arena, c, g) -> {
            try (EventFd e = EventFd.create()) {
                c.send(VhostPci.HEARTBEAT, HeartbeatMessage.LENGTH, null, e.fd());
            }
            closed(c, "a PING with an fd");
        });
        open(cases, "an ACK with a memfd attached", (arena, c, g) -> {
            c.send(VhostPci.ACK, AckMessage.HEADER_LENGTH, (b, at) -> new AckMessage().<AckMessage>wrap(b, at).ackedSeq(1),
                g.memory.fd());
            closed(c, "an ACK with an fd");
        });
    }

    // ---- malformed requests: FAIL BAD_MESSAGE, the connection goes on ---------------------------------------

    private interface Payload {
        void write(UnsafeBuffer b, int at);
    }

    private static void badMessage(final List<Case> cases, final String name, final int type, final int length,
                                   final Payload payload) {
        open(cases, name, (arena, c, g) -> {
            final long seq = c.send(type, length, (b, at) -> payload.write((UnsafeBuffer) b, at));
            final Answer a = c.awaitAck(seq);
            assertEquals(VhostPci.R_BAD_MESSAGE, a.reason(), "answer " + a);
            assertFalse(VhostPci.isSuccess(a.status()));
            assertTrue(c.alive(), "connection still served");
        });
    }

    private static void malformed(final List<Case> cases) {
        final ByteOrder le = ByteOrder.LITTLE_ENDIAN;
        badMessage(cases, "MEMORY_INFO of 7 bytes", VhostPci.MEMORY_INFO, 7, (b, at) -> { });
        badMessage(cases, "MEMORY_INFO op 2", VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(1), (b, at) -> {
            b.putShort(at, (short) 2, le);
            b.putInt(at + 4, 1, le);
        });
        badMessage(cases, "MEMORY_INFO with 0 regions", VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(0), (b, at) -> { });
        badMessage(cases, "MEMORY_INFO with 33 regions", VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(33),
            (b, at) -> b.putInt(at + 4, 33, le));
        badMessage(cases, "MEMORY_INFO with nregions 2^32-1", VhostPci.MEMORY_INFO, MemoryInfoMessage.lengthFor(1),
            (b, at) -> b.putInt(at + 4, -1, le));
        badMessage(cases, "MEMORY_INFO nregions 2 in a one-region payload", VhostPci.MEMORY_INFO,
            MemoryInfoMessage.lengthFor(1), (b, at) -> b.putInt(at + 4, 2, le));
        badMessage(cases, "DEVICE_INFO ADD with 0 queues", VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, 0),
            (b, at) -> b.putShort(at + 2, (short) VhostPci.DEVICE_NET, le));
        badMessage(cases, "DEVICE_INFO ADD with 65 queues", VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, 65),
            (b, at) -> b.putInt(at + 4, 65, le));
        badMessage(cases, "DEVICE_INFO ADD nvqs 2 in a one-queue payload", VhostPci.DEVICE_INFO,
            DeviceInfoMessage.lengthFor(VhostPci.OP_ADD, 1), (b, at) -> b.putInt(at + 4, 2, le));
        badMessage(cases, "DEVICE_INFO op 7", VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0),
            (b, at) -> b.putShort(at, (short) 7, le));
        badMessage(cases, "DEVICE_INFO of 31 bytes", VhostPci.DEVICE_INFO, 31, (b, at) -> { });
        badMessage(cases, "FEATURE_BITS of 8 bytes", VhostPci.FEATURE_BITS, 8, (b, at) -> { });
        badMessage(cases, "FEATURE_BITS of 4096 bytes", VhostPci.FEATURE_BITS, 4096, (b, at) -> { });
        badMessage(cases, "PEER_CONNECTION state 2", VhostPci.PEER_CONNECTION, PeerConnectionMessage.LENGTH,
            (b, at) -> b.putShort(at, (short) 2, le));
        badMessage(cases, "PEER_CONNECTION of 0 bytes", VhostPci.PEER_CONNECTION, 0, (b, at) -> { });
        badMessage(cases, "DIRTY_PAGE_LOGGING op 5", VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH,
            (b, at) -> b.putShort(at, (short) 5, le));
        open(cases, "40 requests in flight at once (past MAX_IN_FLIGHT): each answered once, in order", (arena, c, g) -> {
            final long first = c.nextSeq;
            for (int i = 0; i < VhostPci.MAX_IN_FLIGHT + 8; i++) {
                c.send(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, (b, at) ->
                    new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, at).features(F));
            }
            for (int i = 0; i < VhostPci.MAX_IN_FLIGHT + 8; i++) {
                assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, c.awaitAck(first + i).status());
            }
            assertTrue(c.alive());
        });
    }

    // ---- fds: refused, every fd that came with the request closed (the arena checks the counts) -----------

    private static int fdOf(final java.io.Closeable file) throws IOException {
        final java.io.FileDescriptor fd = file instanceof FileInputStream in ? in.getFD()
            : ((java.io.FileOutputStream) file).getFD();
        return FileDescriptorCast.using(fd).as(Integer.class);
    }

    /** A region over the guest's memory backed by {@code fd} (which is not the guest's memfd). */
    private static MemoryRegion regionOver(final ClientGuest g, final int fd, final long size) {
        return new MemoryRegion(g.memory.gpaBase(), size, g.memory.uvaBase(), 0, fd);
    }

    /** An fd of the wrong kind as the memory of a MEMORY_INFO ADD: MAP_FAILED, nothing mapped, fd closed. */
    private interface FdSource {
        void with(FdUser user) throws Exception;
    }

    private interface FdUser {
        void use(int fd) throws Exception;
    }

    private static void wrongMemoryFd(final List<Case> cases, final String name, final FdSource source) {
        open(cases, "MEMORY_INFO ADD with " + name + " as the memory", (arena, c, g) -> source.with(fd -> {
            refused(c, c.addMemory(regionOver(g, fd, 4096)), VhostPci.ADD_FAIL, VhostPci.R_MAP_FAILED);
            assertEquals(0, arena.dev.device.clientRegions());
        }));
    }

    /** An fd of the wrong kind where the kick or call eventfd of a queue belongs: the device is refused. */
    private static void wrongRingFd(final List<Case> cases, final String name, final int position, final FdSource source) {
        ready(cases, "DEVICE_INFO ADD with " + name + " as the " + (position % 2 == 0 ? "kick" : "call") + " fd of "
            + (position < 2 ? "RX" : "TX"), F, (arena, c, g) -> source.with(fd -> {
                final int[] fds = g.ringFds();
                fds[position] = fd;
                refused(c, c.addDevice(F, g.rings(), fds), VhostPci.ADD_FAIL, VhostPci.R_BAD_FDS);
                assertFalse(arena.dev.device.deviceRunning());
                // The same client goes on with the right fds.
                assertEquals(VhostPci.ADD_DONE, c.addDevice(F, g.rings(), g.ringFds()).status());
                arena.exchange(g);
            }));
    }

    private static void pipe(final FdUser user, final boolean readEnd) throws Exception {
        final int[] p = new int[2];
        assertEquals(0, Pipes.INSTANCE.pipe(p), "pipe");
        try {
            user.use(readEnd ? p[0] : p[1]);
        } finally {
            dev.vhostnet.dataplane.sys.FileDescriptors.closeQuietly(p[0]);
            dev.vhostnet.dataplane.sys.FileDescriptors.closeQuietly(p[1]);
        }
    }

    private static void socket(final FdUser user) throws Exception {
        final int fd = Pipes.INSTANCE.socket(Pipes.AF_UNIX, Pipes.SOCK_STREAM, 0);
        assertTrue(fd >= 0, "socket");
        try {
            user.use(fd);
        } finally {
            dev.vhostnet.dataplane.sys.FileDescriptors.closeQuietly(fd);
        }
    }

    private static void memfd(final FdUser user) throws Exception {
        final int fd = MemFd.create("hostile", 1 << 20);
        try {
            user.use(fd);
        } finally {
            dev.vhostnet.dataplane.sys.FileDescriptors.closeQuietly(fd);
        }
    }

    private static void fds(final List<Case> cases) {
        open(cases, "MEMORY_INFO ADD of one region without its fd", (arena, c, g) ->
            refused(c, c.awaitAck(c.sendMemory(VhostPci.OP_ADD, List.of(g.region()))), VhostPci.ADD_FAIL, VhostPci.R_BAD_FDS));
        open(cases, "MEMORY_INFO ADD of two regions with one fd", (arena, c, g) ->
            refused(c, c.awaitAck(c.sendMemory(VhostPci.OP_ADD, List.of(g.memory.window(0, 1 << 20),
                g.memory.window(1 << 20, 1 << 20)), g.memory.fd())), VhostPci.ADD_FAIL, VhostPci.R_BAD_FDS));
        open(cases, "MEMORY_INFO ADD of one region with three fds", (arena, c, g) -> {
            refused(c, c.awaitAck(c.sendMemory(VhostPci.OP_ADD, List.of(g.region()), g.memory.fd(), g.memory.fd(),
                g.memory.fd())), VhostPci.ADD_FAIL, VhostPci.R_BAD_FDS);
            assertEquals(0, arena.dev.device.clientRegions());
        });
        open(cases, "MEMORY_INFO ADD of one region with 60 fds", (arena, c, g) -> {
            final int[] fds = new int[60];
            java.util.Arrays.fill(fds, g.memory.fd());
            refused(c, c.awaitAck(c.sendMemory(VhostPci.OP_ADD, List.of(g.region()), fds)), VhostPci.ADD_FAIL,
                VhostPci.R_BAD_FDS);
        });
        open(cases, "MEMORY_INFO DEL with an fd", (arena, c, g) -> {
            assertEquals(VhostPci.ADD_DONE, c.addMemory(g.region()).status());
            refused(c, c.awaitAck(c.sendMemory(VhostPci.OP_DEL, List.of(g.region()), g.memory.fd())), VhostPci.DEL_FAIL,
                VhostPci.R_BAD_FDS);
            assertEquals(1, arena.dev.device.clientRegions(), "the region is still held");
        });
        open(cases, "FEATURE_BITS with two eventfds", (arena, c, g) -> refused(c, c.awaitAck(c.send(VhostPci.FEATURE_BITS,
            FeatureBitsMessage.LENGTH, null, g.rx.kickFd().fd(), g.tx.kickFd().fd())), VhostPci.FAIL, VhostPci.R_BAD_FDS));
        open(cases, "PEER_CONNECTION with a memfd", (arena, c, g) -> refused(c, c.awaitAck(c.send(VhostPci.PEER_CONNECTION,
            PeerConnectionMessage.LENGTH, null, g.memory.fd())), VhostPci.FAIL, VhostPci.R_BAD_FDS));
        open(cases, "DIRTY_PAGE_LOGGING START without its fd", (arena, c, g) -> refused(c, c.awaitAck(c.send(
            VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH, (b, at) -> new DirtyPageLoggingMessage()
                .<DirtyPageLoggingMessage>wrap(b, at).op(VhostPci.LOG_START).logSize(4096))), VhostPci.FAIL, VhostPci.R_BAD_FDS));
        open(cases, "DIRTY_PAGE_LOGGING START with an eventfd as the log", (arena, c, g) -> refused(c, c.awaitAck(c.send(
            VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH, (b, at) -> new DirtyPageLoggingMessage()
                .<DirtyPageLoggingMessage>wrap(b, at).op(VhostPci.LOG_START).logSize(4096), g.rx.kickFd().fd())),
            VhostPci.FAIL, VhostPci.R_MAP_FAILED));
        open(cases, "DIRTY_PAGE_LOGGING START with a log of 2^63 bytes", (arena, c, g) -> refused(c, c.awaitAck(c.send(
            VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH, (b, at) -> new DirtyPageLoggingMessage()
                .<DirtyPageLoggingMessage>wrap(b, at).op(VhostPci.LOG_START).logSize(Long.MIN_VALUE), g.memory.fd())),
            VhostPci.FAIL, VhostPci.R_MAP_FAILED));
        open(cases, "DIRTY_PAGE_LOGGING START at an offset past the fd", (arena, c, g) -> refused(c, c.awaitAck(c.send(
            VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH, (b, at) -> new DirtyPageLoggingMessage()
                .<DirtyPageLoggingMessage>wrap(b, at).op(VhostPci.LOG_START).logSize(4096).mmapOffset(-4096L),
            g.memory.fd())), VhostPci.FAIL, VhostPci.R_MAP_FAILED));
        open(cases, "DIRTY_PAGE_LOGGING START twice, STOP twice, then the client vanishes", (arena, c, g) -> {
            for (int i = 0; i < 2; i++) {
                assertEquals(VhostPci.DONE, c.awaitAck(c.send(VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH,
                    (b, at) -> new DirtyPageLoggingMessage().<DirtyPageLoggingMessage>wrap(b, at).op(VhostPci.LOG_START)
                        .logSize(4096), g.memory.fd())).status());
            }
            for (int i = 0; i < 2; i++) {
                assertEquals(VhostPci.DONE, c.awaitAck(c.send(VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH,
                    (b, at) -> new DirtyPageLoggingMessage().<DirtyPageLoggingMessage>wrap(b, at).op(VhostPci.LOG_STOP))).status());
            }
            assertEquals(VhostPci.DONE, c.awaitAck(c.send(VhostPci.DIRTY_PAGE_LOGGING, DirtyPageLoggingMessage.LENGTH,
                (b, at) -> new DirtyPageLoggingMessage().<DirtyPageLoggingMessage>wrap(b, at).op(VhostPci.LOG_START)
                    .logSize(4096), g.memory.fd())).status());
        });
        ready(cases, "DEVICE_INFO ADD announcing 4 fds with 3", F, (arena, c, g) -> {
            final int[] fds = java.util.Arrays.copyOf(g.ringFds(), 3);
            refused(c, c.addDevice(F, g.rings(), fds), VhostPci.ADD_FAIL, VhostPci.R_BAD_FDS);
        });
        ready(cases, "DEVICE_INFO ADD announcing 4 fds with 5", F, (arena, c, g) -> {
            final int[] fds = java.util.Arrays.copyOf(g.ringFds(), 5);
            fds[4] = g.memory.fd();
            refused(c, c.addDevice(F, g.rings(), fds), VhostPci.ADD_FAIL, VhostPci.R_BAD_FDS);
        });
        ready(cases, "DEVICE_INFO ADD announcing 4 fds with none", F, (arena, c, g) ->
            refused(c, c.addDevice(F, g.rings()), VhostPci.ADD_FAIL, VhostPci.R_BAD_FDS));
        wrongMemoryFd(cases, "an eventfd", user -> {
            try (EventFd e = EventFd.create()) {
                user.use(e.fd());
            }
        });
        wrongMemoryFd(cases, "a socket", user -> socket(user));
        wrongMemoryFd(cases, "a pipe", user -> pipe(user, false));
        wrongMemoryFd(cases, "/dev/zero", user -> {
            try (FileInputStream f = new FileInputStream("/dev/zero")) {
                user.use(fdOf(f));
            }
        });
        wrongMemoryFd(cases, "a read-only file", user -> {
            try (FileInputStream f = new FileInputStream("/proc/self/exe")) {
                user.use(fdOf(f));
            }
        });
        for (int position = 0; position < 4; position += 3) {
            final int p = position;
            wrongRingFd(cases, "a memfd", p, HostilePciCases::memfd);
            wrongRingFd(cases, "a socket", p, user -> socket(user));
            wrongRingFd(cases, "a pipe's write end", p, user -> pipe(user, false));
            wrongRingFd(cases, "a pipe's read end", p, user -> pipe(user, true));
        }
    }

    // ---- regions -------------------------------------------------------------------------------------------

    private interface Regions {
        List<MemoryRegion> of(ClientGuest g);
    }

    /** A MEMORY_INFO ADD refused with {@code reason}; nothing of it mapped. */
    private static void regionRefused(final List<Case> cases, final String name, final long reason, final Regions regions) {
        open(cases, "region: " + name, (arena, c, g) -> {
            refused(c, c.addMemory(regions.of(g)), VhostPci.ADD_FAIL, reason);
            assertEquals(0, arena.dev.device.clientRegions(), "nothing of a refused ADD is held");
        });
    }

    private static void regions(final List<Case> cases) {
        final long mib = 1 << 20;
        regionRefused(cases, "size 0", VhostPci.R_MAP_FAILED, g -> List.of(g.region().withSize(0)));
        regionRefused(cases, "size 2^64-1", VhostPci.R_MAP_FAILED, g -> List.of(g.region().withSize(-1)));
        regionRefused(cases, "a page past the end of its fd", VhostPci.R_MAP_FAILED,
            g -> List.of(g.region().withSize(g.memory.size() + 4096)));
        regionRefused(cases, "a byte past the end of its fd", VhostPci.R_MAP_FAILED,
            g -> List.of(g.memory.window(4096, g.memory.size() - 4095)));
        regionRefused(cases, "mmap_offset past the end of its fd", VhostPci.R_MAP_FAILED, g -> List.of(
            new MemoryRegion(g.memory.gpaBase(), 4096, g.memory.uvaBase(), g.memory.size() + 4096, g.memory.fd())));
        regionRefused(cases, "mmap_offset + size wrapping", VhostPci.R_MAP_FAILED, g -> List.of(
            new MemoryRegion(g.memory.gpaBase(), mib, g.memory.uvaBase(), -4096L, g.memory.fd())));
        regionRefused(cases, "mmap_offset 2^63", VhostPci.R_MAP_FAILED, g -> List.of(
            new MemoryRegion(g.memory.gpaBase(), 4096, g.memory.uvaBase(), Long.MIN_VALUE, g.memory.fd())));
        regionRefused(cases, "guest address + size wrapping around 2^64", VhostPci.R_MAP_FAILED,
            g -> List.of(g.region().movedTo(-4096L, g.memory.uvaBase())));
        regionRefused(cases, "user address + size wrapping around 2^64", VhostPci.R_MAP_FAILED,
            g -> List.of(g.region().movedTo(g.memory.gpaBase(), -8192L)));
        regionRefused(cases, "two regions overlapping in guest addresses", VhostPci.R_OVERLAP, g -> List.of(
            g.memory.window(0, mib), g.memory.window(mib, mib).movedTo(g.memory.gpa(4096), g.memory.uva(2 * mib))));
        regionRefused(cases, "two regions overlapping in user addresses", VhostPci.R_OVERLAP, g -> List.of(
            g.memory.window(0, mib), g.memory.window(mib, mib).movedTo(g.memory.gpa(2 * mib), g.memory.uva(mib - 4096))));
        regionRefused(cases, "the same region twice", VhostPci.R_OVERLAP, g -> List.of(g.region(), g.region()));
        regionRefused(cases, "three regions, the last past its fd (none mapped)", VhostPci.R_MAP_FAILED, g -> List.of(
            g.memory.window(0, mib), g.memory.window(mib, mib), g.memory.window(2 * mib, 3 * mib)));
        open(cases, "region overlapping a held one", (arena, c, g) -> {
            assertEquals(VhostPci.ADD_DONE, c.addMemory(g.memory.window(0, 2 * mib)).status());
            refused(c, c.addMemory(g.memory.window(mib, 2 * mib)), VhostPci.ADD_FAIL, VhostPci.R_OVERLAP);
            refused(c, c.addMemory(g.memory.window(2 * mib, mib).movedTo(g.memory.gpa(2 * mib), g.memory.uva(0))),
                VhostPci.ADD_FAIL, VhostPci.R_OVERLAP);
            assertEquals(1, arena.dev.device.clientRegions());
        });
        open(cases, "33 regions (32, then one more)", (arena, c, g) -> {
            final List<MemoryRegion> r = new ArrayList<>();
            for (int i = 0; i < VhostPci.MAX_REGIONS; i++) {
                r.add(g.memory.window(i * 65536L, 65536));
            }
            assertEquals(VhostPci.ADD_DONE, c.addMemory(r).status());
            assertEquals(VhostPci.MAX_REGIONS, arena.dev.device.clientRegions());
            refused(c, c.addMemory(g.memory.window(3 * mib, 4096)), VhostPci.ADD_FAIL, VhostPci.R_TOO_MANY);
        });
        open(cases, "mmap_offset not page-aligned works", (arena, c, g) -> {
            final MemoryRegion r = new MemoryRegion(g.memory.gpaBase(), 8192, g.memory.uvaBase(), 100, g.memory.fd());
            assertEquals(VhostPci.ADD_DONE, c.addMemory(r).status());
            assertEquals(VhostPci.DEL_DONE, c.delMemory(r).status());
        });
        open(cases, "DEL of a region never added", (arena, c, g) ->
            refused(c, c.delMemory(g.region()), VhostPci.DEL_FAIL, VhostPci.R_UNKNOWN_REGION));
        open(cases, "DEL naming a held region with another size", (arena, c, g) -> {
            assertEquals(VhostPci.ADD_DONE, c.addMemory(g.region()).status());
            refused(c, c.delMemory(g.region().withSize(4096)), VhostPci.DEL_FAIL, VhostPci.R_UNKNOWN_REGION);
            assertEquals(1, arena.dev.device.clientRegions());
        });
        open(cases, "DEL of the same region twice in one message (nothing deleted)", (arena, c, g) -> {
            assertEquals(VhostPci.ADD_DONE, c.addMemory(g.region()).status());
            refused(c, c.awaitAck(c.sendMemory(VhostPci.OP_DEL, List.of(g.region(), g.region()))), VhostPci.DEL_FAIL,
                VhostPci.R_UNKNOWN_REGION);
            assertEquals(1, arena.dev.device.clientRegions(), "a failed DEL leaves the state as it was");
        });
        add(cases, "DEL of the region the running rings lie in", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, F)) {
                refused(c, c.delMemory(g.region()), VhostPci.DEL_FAIL, VhostPci.R_REGION_IN_USE);
                arena.exchange(g);
            }
        });
    }

    // ---- rings (DEVICE_INFO ADD) -------------------------------------------------------------------------

    private interface RingEdit {
        List<ClientGuest.Ring> of(ClientGuest g);
    }

    /** DEVICE_INFO ADD refused with {@code reason}: no queue of the client started, its fds closed. */
    private static void ringRefused(final List<Case> cases, final String name, final long features, final long reason,
                                    final RingEdit edit) {
        ready(cases, "ring: " + name, features, (arena, c, g) -> {
            final List<ClientGuest.Ring> rings = edit.of(g);
            final int fds = rings.stream().mapToInt(r -> Integer.bitCount(r.fdFlags() & ClientGuest.KICK_CALL)).sum();
            final int[] all = new int[fds];
            for (int i = 0; i < fds; i++) {
                all[i] = g.ringFds()[i % 4];
            }
            refused(c, c.addDevice(features, rings, all), VhostPci.ADD_FAIL, reason);
            assertFalse(arena.dev.device.deviceRunning());
            assertFalse(arena.remoteQueue(RX).isStarted() || arena.remoteQueue(TX).isStarted(), "no queue started");
        });
    }

    private static List<ClientGuest.Ring> txEdited(final ClientGuest g, final java.util.function.UnaryOperator<ClientGuest.Ring> edit) {
        return List.of(ClientGuest.Ring.of(g.rx), edit.apply(ClientGuest.Ring.of(g.tx)));
    }

    private static void rings(final List<Case> cases) {
        final long packed = VirtioFeature.bit(VirtioFeature.RING_PACKED);
        final long mrg = VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF);
        open(cases, "ring: DEVICE_INFO ADD before FEATURE_BITS", (arena, c, g) -> {
            assertEquals(VhostPci.ADD_DONE, c.addMemory(g.region()).status());
            refused(c, c.addDevice(F, g.rings(), g.ringFds()), VhostPci.ADD_FAIL, VhostPci.R_FEATURES);
        });
        open(cases, "ring: DEVICE_INFO ADD before any memory", (arena, c, g) -> {
            assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, c.features(F, true).status());
            refused(c, c.addDevice(F, g.rings(), g.ringFds()), VhostPci.ADD_FAIL, VhostPci.R_NOT_READY);
        });
        ready(cases, "ring: features beyond those accepted", F, (arena, c, g) ->
            refused(c, c.addDevice(F | mrg, g.rings(), g.ringFds()), VhostPci.ADD_FAIL, VhostPci.R_FEATURES));
        open(cases, "ring: features never accepted (every bit offered, all bits used)", (arena, c, g) -> {
            assertEquals(VhostPci.ADD_DONE, c.addMemory(g.region()).status());
            final Answer a = c.features(-1L, true);
            assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, a.status());
            assertTrue(a.value() != -1L && (a.value() & VirtioFeature.bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)) == 0,
                "the device side does not accept what it cannot handle: 0x" + Long.toHexString(a.value()));
            refused(c, c.addDevice(-1L, g.rings(), g.ringFds()), VhostPci.ADD_FAIL, VhostPci.R_FEATURES);
        });
        add(cases, "ring: features accepted by an earlier FEATURE_BITS, then narrowed", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = ready(arena, g, F | mrg)) {
                assertEquals(F, c.features(F, true).value());
                refused(c, c.addDevice(F | mrg, g.rings(), g.ringFds()), VhostPci.ADD_FAIL, VhostPci.R_FEATURES);
            }
        });
        ready(cases, "ring: device type 2", F, (arena, c, g) -> refused(c, c.awaitAck(c.sendDevice(2, F, g.rings(),
            g.ringFds())), VhostPci.ADD_FAIL, VhostPci.R_UNSUPPORTED_DEVICE));
        ringRefused(cases, "3 queues on a one-pair device", F, VhostPci.R_TOO_MANY, g -> List.of(ClientGuest.Ring.of(g.rx),
            ClientGuest.Ring.of(g.tx), ClientGuest.Ring.of(g.rx).index(2)));
        ringRefused(cases, "64 queues", F, VhostPci.R_TOO_MANY, g -> {
            final List<ClientGuest.Ring> r = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                r.add(ClientGuest.Ring.of(g.rx).index(i).fdFlags(0));
            }
            return r;
        });
        for (final int index : new int[] {2, 64, 0xFFFF}) {
            ringRefused(cases, "index " + index, F, VhostPci.R_BAD_RING, g -> txEdited(g, r -> r.index(index)));
        }
        ringRefused(cases, "duplicate index", F, VhostPci.R_BAD_RING, g -> txEdited(g, r -> r.index(RX)));
        for (final int size : new int[] {0, 3, 48, 0xFFFF}) {
            ringRefused(cases, "split queue size " + size, F, VhostPci.R_BAD_RING, g -> txEdited(g, r -> r.size(size)));
        }
        ringRefused(cases, "format 2", F, VhostPci.R_BAD_MESSAGE, g -> txEdited(g, r -> r.format(2)));
        ringRefused(cases, "format 0xFF", F, VhostPci.R_BAD_MESSAGE, g -> txEdited(g, r -> r.format(0xFF)));
        ringRefused(cases, "reserved fd_flags bit", F, VhostPci.R_BAD_MESSAGE, g -> txEdited(g, r -> r.fdFlags(ClientGuest.KICK_CALL | 0x80)));
        ringRefused(cases, "reserved state_flags bit", F, VhostPci.R_BAD_MESSAGE, g -> txEdited(g, r -> r.stateFlags(0x40)));
        ringRefused(cases, "packed format without RING_PACKED", F, VhostPci.R_BAD_RING, g -> txEdited(g, r -> r.format(VhostPci.FORMAT_PACKED)));
        ringRefused(cases, "split format with RING_PACKED", F | packed, VhostPci.R_BAD_RING, g -> g.rings());
        ringRefused(cases, "packed last_avail_idx beyond the size", F | packed, VhostPci.R_BAD_RING, g -> List.of(
            ClientGuest.Ring.of(g.rx).format(VhostPci.FORMAT_PACKED),
            ClientGuest.Ring.of(g.tx).format(VhostPci.FORMAT_PACKED).positions(ClientGuest.SIZE, 0)));
        ringRefused(cases, "packed last_used_idx 0x7FFF", F | packed, VhostPci.R_BAD_RING, g -> List.of(
            ClientGuest.Ring.of(g.rx).format(VhostPci.FORMAT_PACKED),
            ClientGuest.Ring.of(g.tx).format(VhostPci.FORMAT_PACKED).positions(0, 0x7FFF)));
        ringRefused(cases, "descriptor table outside every region", F, VhostPci.R_BAD_RING,
            g -> txEdited(g, r -> r.at(g.memory.uva(g.memory.size()) + (1 << 20), r.driver(), r.device())));
        ringRefused(cases, "descriptor table straddling the region's end", F, VhostPci.R_BAD_RING,
            g -> txEdited(g, r -> r.at(g.memory.uva(g.memory.size() - 512), r.driver(), r.device())));
        ringRefused(cases, "available ring straddling the region's end", F, VhostPci.R_BAD_RING,
            g -> txEdited(g, r -> r.at(r.desc(), g.memory.uva(g.memory.size() - 64), r.device())));
        ringRefused(cases, "used ring straddling the region's end", F, VhostPci.R_BAD_RING,
            g -> txEdited(g, r -> r.at(r.desc(), r.driver(), g.memory.uva(g.memory.size() - 256))));
        ringRefused(cases, "used ring at 2^64-16", F, VhostPci.R_BAD_RING, g -> txEdited(g, r -> r.at(r.desc(), r.driver(), -16L)));
        ringRefused(cases, "ring addresses 0", F, VhostPci.R_BAD_RING, g -> txEdited(g, r -> r.at(0, 0, 0)));
        ringRefused(cases, "ring at a guest physical address (not a user address)", F, VhostPci.R_BAD_RING,
            g -> txEdited(g, r -> r.at(g.memory.gpa(0x1000), r.driver(), r.device())));
        add(cases, "ring: ring straddling two regions that are adjacent in user space only", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = HostileClient.open(arena.pci)) {
                final long half = g.memory.size() / 2;
                // Two regions, contiguous in user addresses, backed by distant parts of the memfd: a ring that
                // crosses their boundary is not contiguous in our mapping.
                final MemoryRegion low = g.memory.window(0, half);
                final MemoryRegion high = new MemoryRegion(g.memory.gpa(half), half, g.memory.uva(half), 0, g.memory.fd());
                assertEquals(VhostPci.ADD_DONE, c.addMemory(List.of(low, high)).status());
                assertEquals(VhostPci.FEATURE_BITS_ACCEPTED, c.features(F, true).status());
                refused(c, c.addDevice(F, txEdited(g, r -> r.at(g.memory.uva(half - 512), r.driver(), r.device())),
                    g.ringFds()), VhostPci.ADD_FAIL, VhostPci.R_BAD_RING);
            }
        });
        add(cases, "ring: DEVICE_INFO ADD twice", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, F)) {
                refused(c, c.addDevice(F, g.rings(), g.ringFds()), VhostPci.ADD_FAIL, VhostPci.R_DEVICE_EXISTS);
                arena.exchange(g);
            }
        });
        open(cases, "ring: DEVICE_INFO DEL without a device", (arena, c, g) ->
            refused(c, c.delDevice(), VhostPci.DEL_FAIL, VhostPci.R_UNKNOWN_DEVICE));
        add(cases, "ring: DEVICE_INFO DEL naming another device", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, F)) {
                final Answer a = c.awaitAck(c.send(VhostPci.DEVICE_INFO, DeviceInfoMessage.lengthFor(VhostPci.OP_DEL, 0),
                    (b, at) -> new DeviceInfoMessage().<DeviceInfoMessage>wrap(b, at).op(VhostPci.OP_DEL)
                        .deviceType(VhostPci.DEVICE_NET).deviceId(0x0000_0B0B_0B00_5452L)));
                refused(c, a, VhostPci.DEL_FAIL, VhostPci.R_UNKNOWN_DEVICE);
                assertTrue(arena.dev.device.deviceRunning(), "the client's device still runs");
                arena.exchange(g);
            }
        });
        add(cases, "ring: ADD, DEL, ADD again, 20 times", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, F)) {
                for (int i = 0; i < 20; i++) {
                    final Answer del = c.delDevice();
                    assertEquals(VhostPci.DEL_DONE, del.status());
                    assertEquals(2, del.nvqs());
                    final List<ClientGuest.Ring> rings = List.of(ClientGuest.Ring.of(g.rx), ClientGuest.Ring.of(g.tx));
                    assertEquals(VhostPci.ADD_DONE, c.addDevice(F, rings, g.ringFds()).status());
                }
                arena.exchange(g);
            }
        });
        ready(cases, "ring: kick only, no call fd (polled queue, never signalled)", F, (arena, c, g) -> {
            final List<ClientGuest.Ring> rings = List.of(ClientGuest.Ring.of(g.rx).fdFlags(VhostPci.FD_KICK),
                ClientGuest.Ring.of(g.tx).fdFlags(0));
            assertEquals(VhostPci.ADD_DONE, c.addDevice(F, rings, g.rx.kickFd().fd()).status());
            arena.exchange(g);
        });
    }

    // ---- live descriptors: the client's guest writes garbage into its rings -----------------------------------

    /**
     * The client's device runs and a frame went each way; then the abuse on its TX ring: that queue breaks with
     * the abuse's error while its RX queue still receives from our front-end and the connection is served.
     */
    private static void live(final List<Case> cases, final DescriptorAbuse abuse) {
        final long features = abuse.indirect() ? F | INDIRECT : F;
        add(cases, "live: " + abuse.name(), arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, features)) {
                abuse.abuse().run(g.tx, g.memory, D);
                g.tx.publish();
                g.tx.kick();
                arena.awaitBroken(c, TX, abuse.expected());
                final long rxBuf = g.postReceive();
                final int used = g.rx.usedIdx();
                final byte[] f = VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 300, 77);
                arena.d.send(f);
                Await.until("the client's RX queue still receives", PciArena.WAIT, () -> g.rx.usedIdx() != used,
                    () -> arena.remoteQueue(RX).toString());
                assertArrayEquals(f, g.received(rxBuf, f.length));
                assertTrue(c.alive(), "the connection is still served");
            }
        });
    }

    private static void liveDescriptors(final List<Case> cases) {
        for (final DescriptorAbuse abuse : DescriptorAbuse.catalogue()) {
            live(cases, abuse);
        }
        add(cases, "live: start position 1000 away from the ring's available index", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = ready(arena, g, F)) {
                final List<ClientGuest.Ring> rings = List.of(ClientGuest.Ring.of(g.rx),
                    ClientGuest.Ring.of(g.tx).positions(1000, 1000));
                assertEquals(VhostPci.ADD_DONE, c.addDevice(F, rings, g.ringFds()).status());
                g.transmit(VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 100, 1));
                arena.awaitBroken(c, TX, QueueError.AVAIL_IDX_JUMP);
                assertTrue(c.alive());
            }
        });
        add(cases, "live: receive buffer outside guest memory", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, F)) {
                g.rx.writeRawDescriptor(D, g.memory.gpa(g.memory.size()) + 4096, 2048, DESC_F_WRITE, 0);
                g.rx.pushAvail(D);
                g.rx.publish();
                for (int i = 0; i < 4; i++) {
                    arena.d.send(VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 100, i));
                }
                arena.awaitBroken(c, RX, QueueError.BUFFER_UNMAPPED);
                assertTrue(arena.d.awaitTxDone(PciArena.WAIT), "our front-end's frames complete");
                arena.drainOwn();
                final byte[] f = VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 200, 9);
                g.transmit(f);
                assertArrayEquals(f, arena.d.receive(PciArena.WAIT), "the client's TX queue goes on");
            }
        });
        add(cases, "live: receive chain of device-readable buffers only", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, F)) {
                g.rx.add(List.of(DriverSplitQueue.Segment.readable(DescriptorAbuse.frame(g.memory), 64)), false);
                g.rx.publish();
                arena.d.send(VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 100, 3));
                assertTrue(arena.d.awaitTxDone(PciArena.WAIT), "our front-end's frame completes (dropped or refused)");
                assertTrue(c.alive());
            }
        });
        add(cases, "live: the guest scribbles random bytes over its TX rings under traffic", arena -> {
            final Random random = new Random(42);
            for (int round = 0; round < 3; round++) {
                try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, F | INDIRECT)) {
                    final UnsafeBuffer image = g.memory.buffer();
                    final int desc = (int) (g.tx.descUva() - g.memory.uvaBase());
                    final int avail = (int) (g.tx.availUva() - g.memory.uvaBase());
                    for (int i = 0; i < 200; i++) {
                        final int at = (random.nextBoolean() ? desc + random.nextInt(16 * ClientGuest.SIZE)
                            : avail + random.nextInt(4 + 2 * ClientGuest.SIZE)) & ~1;
                        image.putShortVolatile(at, (short) random.nextInt());
                        if (i % 20 == 0) {
                            g.tx.kick();
                            arena.d.send(VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 100, i));
                        }
                    }
                    assertTrue(c.alive(), "the control plane still answers");
                }
                arena.awaitNoClient("scribbles round " + round);
                arena.drainOwn();
            }
        });
        add(cases, "live: the client vanishes mid-traffic", arena -> {
            final ClientGuest g = new ClientGuest();
            final HostileClient c = running(arena, g, F);
            try {
                for (int i = 0; i < 32; i++) {
                    g.postReceive();
                    arena.d.send(VhostPciPeerModeTest.frame(PeerBackend.MAC_C, PeerBackend.MAC_D, 1000, i));
                    g.transmit(VhostPciPeerModeTest.frame(PeerBackend.MAC_D, PeerBackend.MAC_C, 1000, i));
                }
            } finally {
                c.close(); // no DEVICE_INFO DEL: the device side must stop the rings itself
            }
            arena.awaitNoClient("a vanished client");
            g.close(); // only now: the device side no longer touches this memory
            assertTrue(arena.d.awaitTxDone(PciArena.WAIT), "our front-end's frames complete");
            arena.drainOwn();
        });
    }

    // ---- liveness and admission -------------------------------------------------------------------------------

    private interface Send {
        void to(HostileClient c) throws IOException;
    }

    /**
     * A client that sends 20000 messages and never reads: the device side's answers fill the socket, its writes
     * block. It must still give up on this client (heartbeat timeout) and serve the next one. The flood runs on
     * its own thread, because our writes block too once the device side stops reading.
     */
    private static void flood(final PciArena arena, final Send send) throws Exception {
        try (HostileClient c = HostileClient.open(arena.pci)) {
            c.playAlong = false;
            final Thread sender = new Thread(() -> {
                try {
                    for (int i = 0; i < 20_000; i++) {
                        send.to(c);
                    }
                } catch (final IOException e) {
                    // the device side closed on us
                }
            }, "hostile-flood");
            sender.setDaemon(true);
            sender.start();
            arena.awaitNoClientWithin("a client that never reads", Duration.ofMillis(PciArena.TIMEOUT_MS + 6000));
            c.close();
            sender.join(PciArena.WAIT.toMillis());
            assertFalse(sender.isAlive(), "flood thread ended");
        }
    }

    private static void liveness(final List<Case> cases) {
        add(cases, "silence before HELLO past the heartbeat timeout", arena -> {
            try (HostileClient c = HostileClient.connect(arena.pci)) {
                final long t0 = System.nanoTime();
                assertTrue(c.closedWithin(Duration.ofMillis(PciArena.TIMEOUT_MS + 4000)), "closed after the timeout");
                final long ms = (System.nanoTime() - t0) / 1_000_000;
                assertTrue(ms >= PciArena.TIMEOUT_MS - 200, "not closed before the timeout: " + ms + " ms");
            }
        });
        add(cases, "half a header, then silence", arena -> {
            try (HostileClient c = HostileClient.connect(arena.pci)) {
                c.sendRaw(new byte[] {1, 0, 1});
                assertTrue(c.closedWithin(Duration.ofMillis(PciArena.TIMEOUT_MS + 4000)), "closed after the timeout");
            }
        });
        add(cases, "silence after the session is open past the heartbeat timeout", arena -> {
            try (HostileClient c = HostileClient.open(arena.pci)) {
                final long t0 = System.nanoTime();
                c.playAlong = false;
                assertTrue(c.closedWithin(Duration.ofMillis(PciArena.TIMEOUT_MS + 4000)), "closed after the timeout");
                final long ms = (System.nanoTime() - t0) / 1_000_000;
                assertTrue(ms >= PciArena.TIMEOUT_MS - 200, "not closed before the timeout: " + ms + " ms");
            }
        });
        add(cases, "silence with the device running: rings stopped, memory unmapped", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient c = running(arena, g, F)) {
                c.playAlong = false;
                assertTrue(c.closedWithin(Duration.ofMillis(PciArena.TIMEOUT_MS + 4000)), "closed after the timeout");
                arena.awaitNoClient("a silent client");
            }
        });
        add(cases, "20000 PINGs without reading a PONG", arena -> flood(arena, c -> c.ping()));
        add(cases, "20000 FEATURE_BITS without reading an ACK", arena -> flood(arena, c ->
            c.send(VhostPci.FEATURE_BITS, FeatureBitsMessage.LENGTH, (b, at) ->
                new FeatureBitsMessage().<FeatureBitsMessage>wrap(b, at).features(F))));
        add(cases, "a second client while one is served", arena -> {
            try (ClientGuest g = new ClientGuest(); HostileClient first = running(arena, g, F);
                 HostileClient second = HostileClient.connect(arena.pci)) {
                second.deviceHello = second.read();
                final long hello = second.hello();
                second.ack(second.deviceHello.seq(), VhostPci.HELLO, VhostPci.DONE, 0, 1);
                final Answer a = second.awaitAck(hello);
                assertEquals(VhostPci.R_BUSY, a.reason(), "second client " + a);
                closed(second, "BUSY");
                assertTrue(first.alive(), "the first client is still served");
                arena.exchange(g);
            }
        });
        add(cases, "same-UUID takeover of a live session with a running device", arena -> {
            final UUID uuid = UUID.randomUUID();
            try (ClientGuest g = new ClientGuest(); HostileClient old = HostileClient.open(arena.pci, uuid)) {
                assertEquals(VhostPci.ADD_DONE, old.addMemory(g.region()).status());
                assertEquals(F, old.features(F, true).value());
                assertEquals(VhostPci.ADD_DONE, old.addDevice(F, g.rings(), g.ringFds()).status());
                arena.exchange(g);
                try (HostileClient taker = HostileClient.open(arena.pci, uuid)) {
                    closed(old, "the takeover by the same UUID");
                    assertEquals(uuid, arena.dev.device.clientUuid());
                    assertFalse(arena.dev.device.deviceRunning(), "the old session's device is stopped");
                    assertEquals(0, arena.dev.device.clientRegions(), "the old session's memory is unmapped");
                    try (ClientGuest g2 = new ClientGuest()) {
                        assertEquals(VhostPci.ADD_DONE, taker.addMemory(g2.region()).status());
                        assertEquals(F, taker.features(F, true).value());
                        assertEquals(VhostPci.ADD_DONE, taker.addDevice(F, g2.rings(), g2.ringFds()).status());
                        arena.exchange(g2);
                        taker.close();
                        arena.awaitNoClient("the taker");
                    }
                }
            }
        });
        add(cases, "same-UUID takeover, ten times in a row without closing", arena -> {
            final UUID uuid = UUID.randomUUID();
            final List<HostileClient> all = new ArrayList<>();
            try (ClientGuest g = new ClientGuest()) {
                for (int i = 0; i < 10; i++) {
                    final HostileClient c = HostileClient.open(arena.pci, uuid);
                    all.add(c);
                    assertEquals(VhostPci.ADD_DONE, c.addMemory(g.region()).status());
                }
                for (int i = 0; i < 9; i++) {
                    closed(all.get(i), "takeover " + (i + 1));
                }
                assertEquals(1, arena.dev.device.clientRegions());
            } finally {
                for (final HostileClient c : all) {
                    c.close();
                }
            }
        });
        add(cases, "20 clients connecting at once", arena -> {
            final List<HostileClient> all = new ArrayList<>();
            try {
                for (int i = 0; i < 20; i++) {
                    all.add(HostileClient.connect(arena.pci));
                }
                for (final HostileClient c : all) {
                    c.deviceHello = c.read();
                    c.hello();
                    c.ack(c.deviceHello.seq(), VhostPci.HELLO, VhostPci.DONE, 0, 1);
                }
                int admitted = 0;
                for (final HostileClient c : all) {
                    final Answer a = c.awaitAck(1);
                    if (a.status() == VhostPci.DONE) {
                        admitted++;
                    } else {
                        assertEquals(VhostPci.R_BUSY, a.reason());
                    }
                }
                assertEquals(1, admitted, "exactly one client admitted");
            } finally {
                for (final HostileClient c : all) {
                    c.close();
                }
            }
        });
        add(cases, "a storm of 300 connections", arena -> {
            try (ClientGuest g = new ClientGuest()) {
                for (int i = 0; i < 300; i++) {
                    try (HostileClient c = HostileClient.connect(arena.pci)) {
                        switch (i % 6) {
                            case 0:
                                break; // connect, close
                            case 1:
                                c.sendRaw(new byte[] {1, 0, 1}); // a third of a header
                                break;
                            case 2:
                                c.hello(); // HELLO, never accepting the device's
                                break;
                            case 3:
                                c.handshake();
                                break;
                            case 4:
                                c.handshake();
                                c.sendMemory(VhostPci.OP_ADD, List.of(g.region()), g.memory.fd()); // unanswered
                                break;
                            default:
                                c.handshake();
                                if (i % 30 == 5) {
                                    // A fresh guest (fresh eventfds) each time: handing the same eventfds to
                                    // consecutive sessions is a case of its own (fdTransport()).
                                    try (ClientGuest fresh = new ClientGuest()) {
                                        assertEquals(VhostPci.ADD_DONE, c.addMemory(fresh.region()).status());
                                        assertEquals(F, c.features(F, true).value());
                                        final Answer a = c.addDevice(F, fresh.rings(), fresh.ringFds());
                                        assertEquals(VhostPci.ADD_DONE, a.status(), "connection " + i + ": " + a);
                                        c.close();
                                        arena.awaitNoClient("connection " + i + " of the storm");
                                    }
                                }
                        }
                    }
                    // The next connection must not be refused BUSY because this one is still being cleaned up.
                    arena.awaitNoClient("connection " + i + " of the storm");
                }
            }
        });
    }
}
