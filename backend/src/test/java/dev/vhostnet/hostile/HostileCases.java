package dev.vhostnet.hostile;

import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.memory.UnsealedMemory;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.frontend.Await;
import dev.vhostnet.frontend.DriverSplitQueue;
import dev.vhostnet.frontend.GuestMemoryImage;
import dev.vhostnet.frontend.GuestMemoryImage.MemoryRegion;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.ConfigMessage;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.VhostUserHeader;
import dev.vhostnet.spec.VringAddrMessage;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.vhostnet.frontend.VhostUserFrontend.u64;
import static dev.vhostnet.frontend.VhostUserFrontend.vringState;
import static dev.vhostnet.spec.SplitRingLayout.DESC_F_WRITE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The hostile front-end cases, each an attack on port A of an {@link Arena} with the reaction the back-end
 * owes: refuse the request, close the connection, or break the abused queue (DEVICE_NEEDS_RESET in GET_STATUS,
 * one log line) while everything else goes on. Shared by the fast suite and the DPDK end-to-end test, which
 * runs them all before a real front-end pair forwards through the same back-end.
 */
final class HostileCases {
    /** One attack. */
    interface Attack {
        void run(Arena arena) throws Exception;
    }

    record Case(String name, Attack attack) {
    }

    private static final int TX = VirtioNetDriver.TX;
    private static final int RX = VirtioNetDriver.RX;
    /** Descriptor indexes the cases write by hand: well above those the driver's own chains use. */
    private static final int D = 100;

    private HostileCases() {
    }

    static List<Case> all() {
        final List<Case> cases = new ArrayList<>();
        byCategory().values().forEach(cases::addAll);
        return Collections.unmodifiableList(cases);
    }

    /**
     * The cases by category, in the order {@link #all} runs them: message framing and headers, fds, memory
     * tables, vring setup, live descriptor abuse, and faults around live traffic (memfd truncation, departures
     * mid-traffic, connect/disconnect floods, reset storms).
     */
    static Map<String, List<Case>> byCategory() {
        final Map<String, List<Case>> categories = new LinkedHashMap<>();
        categories.put("headers", category(HostileCases::headers));
        categories.put("fds", category(HostileCases::fds));
        categories.put("memory tables", category(HostileCases::memoryTables));
        categories.put("vring setup", category(HostileCases::vringSetup));
        categories.put("live descriptors", category(HostileCases::liveDescriptors));
        categories.put("faults (truncation, departures, disconnect floods)", category(HostileCases::faults));
        categories.put("transport (fds on bad messages, silence, floods)", category(HostileTransportCases::add));
        return Collections.unmodifiableMap(categories);
    }

    private static List<Case> category(final java.util.function.Consumer<List<Case>> adder) {
        final List<Case> cases = new ArrayList<>();
        adder.accept(cases);
        return Collections.unmodifiableList(cases);
    }

    // ---------------------------------------------------------------------------------------------
    // Framing: the connection is closed

    private static void headers(final List<Case> cases) {
        closes(cases, "version 0", header(FrontendRequest.GET_FEATURES, 0, 0));
        closes(cases, "version 2", header(FrontendRequest.GET_FEATURES, 2, 0));
        closes(cases, "version 3 with every flag", header(FrontendRequest.GET_FEATURES, 0xFFFF_FFFF, 0));
        closes(cases, "reply flag on a request", header(FrontendRequest.GET_FEATURES, VhostUserHeader.VERSION | VhostUserHeader.FLAG_REPLY, 0));
        closes(cases, "payload size 4097", header(FrontendRequest.SET_FEATURES, VhostUserHeader.VERSION, 4097));
        closes(cases, "payload size 2^32-1", header(FrontendRequest.SET_FEATURES, VhostUserHeader.VERSION, -1));
        closes(cases, "payload size 2^31", header(FrontendRequest.SET_MEM_TABLE, VhostUserHeader.VERSION, Integer.MIN_VALUE));
        closes(cases, "unknown request 9999 without REPLY_ACK", header(9999, VhostUserHeader.VERSION, 0));
        closes(cases, "request 0", header(0, VhostUserHeader.VERSION, 0));
        closes(cases, "request 2^32-1", header(-1, VhostUserHeader.VERSION, 0));
        cases.add(new Case("truncated payload then EOF", arena -> {
            try (Session s = Session.bare(arena.socket(Arena.PORT_A))) {
                final byte[] m = concat(header(FrontendRequest.SET_FEATURES, VhostUserHeader.VERSION, 8), new byte[3]);
                s.fe.sendRaw(m);
            }
        }));
        cases.add(new Case("EOF in the middle of a header", arena -> {
            try (Session s = Session.bare(arena.socket(Arena.PORT_A))) {
                s.fe.sendRaw(new byte[] {1, 0, 0, 0, 1});
            }
        }));
        cases.add(new Case("message byte by byte, then junk", arena -> {
            try (Session s = Session.bare(arena.socket(Arena.PORT_A))) {
                final byte[] m = header(FrontendRequest.GET_FEATURES, VhostUserHeader.VERSION, 0);
                for (final byte x : m) {
                    s.fe.sendRaw(new byte[] {x});
                }
                assertNotNull(s.fe.readReply());
                final byte[] junk = new byte[4096];
                new Random(7).nextBytes(junk);
                s.fe.sendRaw(junk);
                s.closed("4 KiB of random bytes");
            }
        }));
        cases.add(new Case("unknown request 9999 with REPLY_ACK", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(9999, new byte[16]);
            }
        }));
        cases.add(new Case("SET_FEATURES with a 4-byte payload", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_FEATURES, new byte[4]);
            }
        }));
        cases.add(new Case("SET_OWNER with a payload", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_OWNER, new byte[8]);
            }
        }));
        cases.add(new Case("GET_FEATURES with a payload", arena -> {
            try (Session s = Session.bare(arena.socket(Arena.PORT_A))) {
                s.fe.send(FrontendRequest.GET_FEATURES, VhostUserHeader.VERSION, new byte[8]);
                s.closed("GET_FEATURES with a payload (no REPLY_ACK: nothing else to answer)");
            }
        }));
    }

    private static void closes(final List<Case> cases, final String name, final byte[] header) {
        cases.add(new Case(name, arena -> {
            try (Session s = Session.bare(arena.socket(Arena.PORT_A))) {
                s.fe.sendRaw(concat(header, new byte[8]));
                s.closed(name);
            }
        }));
    }

    // ---------------------------------------------------------------------------------------------
    // Fds: refused, and every fd that came with the request closed (the arena checks the fd counts)

    private static void fds(final List<Case> cases) {
        cases.add(new Case("9 memfds with a one-region SET_MEM_TABLE", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final int[] fds = new int[9];
                java.util.Arrays.fill(fds, s.memory.fd());
                s.refused(FrontendRequest.SET_MEM_TABLE, VhostUserFrontend.memTable(List.of(s.memory.region())), fds);
            }
        }));
        // 60 was the most junixsocket 2.10 received with one message (its ancillary buffer is capped at 256 bytes;
        // past it the kernel truncated and the 60 installed fds leaked). The transport now receives the kernel's
        // maximum of 253; each count is refused and every fd closed (the arena compares the fd counts).
        for (final int n : new int[] {10, 60, 61, 200, 253}) {
            cases.add(new Case(n + " fds on one SET_VRING_CALL", arena -> {
                try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); EventFd e = EventFd.create()) {
                    final int[] fds = new int[n];
                    java.util.Arrays.fill(fds, e.fd());
                    s.refused(FrontendRequest.SET_VRING_CALL, u64(0), fds);
                }
            }));
        }
        cases.add(new Case("200 memfds on one SET_MEM_TABLE", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final int[] fds = new int[200];
                for (int i = 0; i < fds.length; i++) {
                    fds[i] = MemFd.create("hostile-" + i, 4096);
                }
                try {
                    s.refused(FrontendRequest.SET_MEM_TABLE, VhostUserFrontend.memTable(List.of(s.memory.region())), fds);
                } finally {
                    for (final int fd : fds) {
                        LibC.INSTANCE.close(fd);
                    }
                }
            }
        }));
        for (final int request : new int[] {FrontendRequest.SET_OWNER, FrontendRequest.RESET_OWNER,
            FrontendRequest.SET_VRING_NUM, FrontendRequest.SET_VRING_ENABLE, FrontendRequest.SET_FEATURES}) {
            cases.add(new Case("an fd on " + FrontendRequest.name(request) + " (takes none)", arena -> {
                try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); EventFd e = EventFd.create()) {
                    final byte[] payload = request == FrontendRequest.SET_OWNER || request == FrontendRequest.RESET_OWNER
                        ? new byte[0] : request == FrontendRequest.SET_FEATURES ? u64(Session.FEATURES) : vringState(0, 1);
                    s.refused(request, payload, e.fd());
                }
            }));
        }
        for (final int request : new int[] {FrontendRequest.GET_FEATURES, FrontendRequest.GET_STATUS}) {
            cases.add(new Case("an fd on " + FrontendRequest.name(request) + " (takes none, has its own reply)", arena -> {
                try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); EventFd e = EventFd.create()) {
                    s.fe.send(request, VhostUserHeader.VERSION, new byte[0], e.fd());
                    s.closed("an fd on " + FrontendRequest.name(request));
                }
            }));
        }
        cases.add(new Case("SET_VRING_KICK with two eventfds", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); EventFd e = EventFd.create()) {
                s.refused(FrontendRequest.SET_VRING_KICK, u64(0), e.fd(), e.fd());
            }
        }));
        cases.add(new Case("SET_VRING_CALL without fd and without the no-fd flag", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_VRING_CALL, u64(0));
            }
        }));
        cases.add(new Case("SET_VRING_CALL with unknown payload bits", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); EventFd e = EventFd.create()) {
                s.refused(FrontendRequest.SET_VRING_CALL, u64(0x200), e.fd());
            }
        }));
        cases.add(new Case("an eventfd as a memory region", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); EventFd e = EventFd.create()) {
                s.refused(FrontendRequest.SET_MEM_TABLE, VhostUserFrontend.memTable(List.of(s.memory.region())), e.fd());
            }
        }));
        cases.add(new Case("a read-only file as a memory region", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A));
                 java.io.FileInputStream file = new java.io.FileInputStream("/proc/self/exe")) {
                final int fd = org.newsclub.net.unix.FileDescriptorCast.using(file.getFD()).as(Integer.class);
                s.refused(FrontendRequest.SET_MEM_TABLE, VhostUserFrontend.memTable(
                    List.of(new MemoryRegion(0, 4096, 0x7000_0000_0000L, 0, fd))), fd);
            }
        }));
        cases.add(new Case("/dev/null as a memory region", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A));
                 java.io.FileInputStream file = new java.io.FileInputStream("/dev/null")) {
                final int fd = org.newsclub.net.unix.FileDescriptorCast.using(file.getFD()).as(Integer.class);
                s.refused(FrontendRequest.SET_MEM_TABLE, VhostUserFrontend.memTable(
                    List.of(new MemoryRegion(0, 4096, 0x7000_0000_0000L, 0, fd))), fd);
            }
        }));
    }

    // ---------------------------------------------------------------------------------------------
    // Memory tables: refused

    private static void memoryTables(final List<Case> cases) {
        table(cases, "no region", s -> List.of());
        table(cases, "9 regions", s -> {
            final List<MemoryRegion> r = new ArrayList<>();
            final long w = s.memory.size() / 9 & ~0xFFFL;
            for (int i = 0; i < 9; i++) {
                r.add(s.memory.window(i * w, w));
            }
            return r;
        });
        table(cases, "region beyond the fd's size", s -> List.of(s.memory.region().withSize(s.memory.size() + 4096)));
        table(cases, "region a byte beyond the fd's size", s -> List.of(s.memory.window(4096, s.memory.size() - 4095)));
        table(cases, "overlapping regions", s -> List.of(s.memory.window(0, 1 << 20),
            s.memory.window(1 << 20, 1 << 20).movedTo(s.memory.gpa(4096), s.memory.uva(2 << 20))));
        table(cases, "same region twice", s -> List.of(s.memory.region(), s.memory.region()));
        table(cases, "gpa + size wraps around 2^64", s -> List.of(s.memory.region().movedTo(-4096L, s.memory.uvaBase())));
        table(cases, "uva + size wraps around 2^64", s -> List.of(s.memory.region().movedTo(s.memory.gpaBase(), -8192L)));
        table(cases, "size 0", s -> List.of(s.memory.region().withSize(0)));
        table(cases, "size 2^64-1", s -> List.of(s.memory.region().withSize(-1)));
        table(cases, "mmap_offset beyond the fd", s -> List.of(new MemoryRegion(s.memory.gpaBase(), 4096, s.memory.uvaBase(),
            s.memory.size() + 4096, s.memory.fd())));
        table(cases, "mmap_offset + size wraps", s -> List.of(new MemoryRegion(s.memory.gpaBase(), 1 << 20, s.memory.uvaBase(),
            -4096L, s.memory.fd())));
        cases.add(new Case("2 regions, 1 fd", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_MEM_TABLE, VhostUserFrontend.memTable(
                    List.of(s.memory.window(0, 1 << 20), s.memory.window(1 << 20, 1 << 20))), s.memory.fd());
            }
        }));
        cases.add(new Case("nregions 2 in a one-region payload", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final byte[] p = VhostUserFrontend.memTable(List.of(s.memory.region()));
                new UnsafeBuffer(p).putInt(0, 2, ByteOrder.LITTLE_ENDIAN);
                s.refused(FrontendRequest.SET_MEM_TABLE, p, s.memory.fd(), s.memory.fd());
            }
        }));
        cases.add(new Case("nregions 2^32-1", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final byte[] p = VhostUserFrontend.memTable(List.of(s.memory.region()));
                new UnsafeBuffer(p).putInt(0, -1, ByteOrder.LITTLE_ENDIAN);
                s.refused(FrontendRequest.SET_MEM_TABLE, p, s.memory.fd());
            }
        }));
        cases.add(new Case("ADD_MEM_REG overlapping a region", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.fe.addMemReg(s.memory.window(0, 2 << 20));
                s.refused(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(s.memory.window(1 << 20, 2 << 20)), s.memory.fd());
            }
        }));
        cases.add(new Case("ADD_MEM_REG past the slot limit", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final long slots = s.fe.getMaxMemSlots();
                for (int i = 0; i < slots; i++) {
                    s.fe.addMemReg(s.memory.window(i * 65536L, 65536));
                }
                s.refused(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(s.memory.window(slots * 65536L, 65536)),
                    s.memory.fd());
            }
        }));
        cases.add(new Case("ADD_MEM_REG without fd", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(s.memory.region()));
            }
        }));
        cases.add(new Case("REM_MEM_REG of an unknown region", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.fe.addMemReg(s.memory.window(0, 1 << 20));
                s.refused(FrontendRequest.REM_MEM_REG, VhostUserFrontend.singleRegion(s.memory.window(1 << 20, 1 << 20)));
            }
        }));
        cases.add(new Case("a memfd truncated before SET_MEM_TABLE", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final int fd = MemFd.create("hostile-short", 1 << 20);
                try {
                    LibC.INSTANCE.ftruncate(fd, 4096);
                    s.refused(FrontendRequest.SET_MEM_TABLE, VhostUserFrontend.memTable(
                        List.of(new MemoryRegion(0, 1 << 20, 0x7000_0000_0000L, 0, fd))), fd);
                } finally {
                    dev.vhostnet.dataplane.sys.FileDescriptors.closeQuietly(fd);
                }
            }
        }));
        cases.add(new Case("a memfd that cannot be sealed against shrinking in SET_MEM_TABLE", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final int fd = MemFd.create("hostile-unsealable", 1 << 20, LibC.MFD_CLOEXEC); // born with F_SEAL_SEAL
                try {
                    unsealable(arena, s, FrontendRequest.SET_MEM_TABLE, VhostUserFrontend.memTable(
                        List.of(new MemoryRegion(0, 1 << 20, 0x7000_0000_0000L, 0, fd))), fd);
                } finally {
                    dev.vhostnet.dataplane.sys.FileDescriptors.closeQuietly(fd);
                }
            }
        }));
        cases.add(new Case("a memfd that cannot be sealed against shrinking in ADD_MEM_REG", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final int fd = MemFd.create("hostile-unsealable", 1 << 20, LibC.MFD_CLOEXEC);
                try {
                    unsealable(arena, s, FrontendRequest.ADD_MEM_REG, VhostUserFrontend.singleRegion(
                        new MemoryRegion(0, 1 << 20, 0x7000_0000_0000L, 0, fd)), fd);
                } finally {
                    dev.vhostnet.dataplane.sys.FileDescriptors.closeQuietly(fd);
                }
            }
        }));
    }

    /** Refused by default; mapped when the arena allows unsealed memory (HostileThenDpdkE2ETest, for DPDK). */
    private static void unsealable(final Arena arena, final Session s, final int request, final byte[] payload,
                                   final int fd) throws IOException {
        if (arena.unsealedMemory() == UnsealedMemory.REFUSE) {
            s.refused(request, payload, fd);
        } else {
            assertEquals(0L, s.fe.ack(request, payload, fd), FrontendRequest.name(request) + " allowed");
        }
    }

    private interface Regions {
        List<MemoryRegion> of(Session s);
    }

    private static void table(final List<Case> cases, final String name, final Regions regions) {
        cases.add(new Case("memory table: " + name, arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final List<MemoryRegion> r = regions.of(s);
                final int[] fds = new int[r.size()];
                java.util.Arrays.fill(fds, s.memory.fd());
                final byte[] payload = r.isEmpty() ? VhostUserFrontend.memTable(List.of()) : VhostUserFrontend.memTable(r);
                s.refused(FrontendRequest.SET_MEM_TABLE, payload, fds);
            }
        }));
    }

    // ---------------------------------------------------------------------------------------------
    // Ring setup: refused, or the ring breaks at start

    private static void vringSetup(final List<Case> cases) {
        for (final long num : new long[] {0, 3, 300, 65536, 0xFFFF_FFFFL}) {
            cases.add(new Case("SET_VRING_NUM " + num, arena -> {
                try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                    s.refused(FrontendRequest.SET_VRING_NUM, vringState(0, num));
                }
            }));
        }
        for (final long index : new long[] {2, 255, 256, 0xFFFF_FFFFL}) {
            cases.add(new Case("vring index " + index + " in NUM, BASE, ADDR, ENABLE, GET_VRING_BASE", arena -> {
                try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                    s.refused(FrontendRequest.SET_VRING_NUM, vringState(index, 256));
                    s.refused(FrontendRequest.SET_VRING_BASE, vringState(index, 0));
                    s.refused(FrontendRequest.SET_VRING_ENABLE, vringState(index, 1));
                    s.refused(FrontendRequest.SET_VRING_ADDR, vringAddr(index, 0, 0, 0, 0));
                    s.fe.send(FrontendRequest.GET_VRING_BASE, VhostUserHeader.VERSION, vringState(index, 0));
                    s.closed("GET_VRING_BASE of ring " + index);
                }
            }));
        }
        cases.add(new Case("SET_VRING_KICK index 200", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); EventFd e = EventFd.create()) {
                s.refused(FrontendRequest.SET_VRING_KICK, u64(200), e.fd());
            }
        }));
        cases.add(new Case("SET_VRING_ADDR with unknown flags", arena -> {
            try (Session s = Session.withMemory(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_VRING_ADDR, vringAddr(0, 0x80, s.memory.uva(0), s.memory.uva(8192), s.memory.uva(4096)));
            }
        }));
        cases.add(new Case("SET_VRING_KICK before the ring's size and addresses", arena -> {
            try (Session s = Session.withMemory(arena.socket(Arena.PORT_A)); EventFd e = EventFd.create()) {
                s.refused(FrontendRequest.SET_VRING_KICK, u64(1), e.fd());
            }
        }));
        cases.add(new Case("split ring base above 16 bits", arena -> {
            try (Session s = Session.withMemory(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_VRING_BASE, vringState(0, 0x10000));
            }
        }));
        cases.add(new Case("SET_VRING_ENABLE 2", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_VRING_ENABLE, vringState(0, 2));
            }
        }));
        cases.add(new Case("features never offered", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_FEATURES, u64(-1L));
            }
        }));
        cases.add(new Case("protocol features never offered", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_PROTOCOL_FEATURES, u64(-1L));
            }
        }));
        cases.add(new Case("GET_CONFIG past the config space", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                // GET_CONFIG has a reply of its own: a refused one ends the connection.
                s.fe.send(FrontendRequest.GET_CONFIG, VhostUserHeader.VERSION, VhostUserFrontend.configPayload(250, new byte[16]));
                s.closed("GET_CONFIG of [250, 266)");
            }
        }));
        cases.add(new Case("SET_CONFIG of read-only fields", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_CONFIG, VhostUserFrontend.configPayload(6, new byte[4]));
                s.refused(FrontendRequest.SET_CONFIG, VhostUserFrontend.configPayload(0, new byte[ConfigMessage.MAX_CONFIG_SIZE + 1]));
            }
        }));
        cases.add(new Case("NET_SET_MTU 0 and 2^32", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.NET_SET_MTU, u64(0));
                s.refused(FrontendRequest.NET_SET_MTU, u64(1L << 32));
            }
        }));
        cases.add(new Case("SET_STATUS above 8 bits", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                s.refused(FrontendRequest.SET_STATUS, u64(0x100));
            }
        }));
        ringBreaksAtStart(cases, "ring outside guest memory", s -> new long[] {s.memory.uva(s.memory.size() + 65536),
            s.memory.uva(0x10000), s.memory.uva(0x20000)});
        ringBreaksAtStart(cases, "descriptor table running past the end of memory", s -> new long[] {
            s.memory.uva(s.memory.size() - 1024), s.memory.uva(0x10000), s.memory.uva(0x20000)});
        ringBreaksAtStart(cases, "used ring at a guest physical address", s -> new long[] {s.memory.uva(0),
            s.memory.uva(0x10000), s.memory.gpa(0x20000)});
        ringBreaksAtStart(cases, "misaligned descriptor table", s -> new long[] {s.memory.uva(8), s.memory.uva(0x10000),
            s.memory.uva(0x20000)});
        ringBreaksAtStart(cases, "ring addresses near 2^64", s -> new long[] {-16L, -8L, -4L});
        cases.add(new Case("REM_MEM_REG of the memory under running rings", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); EventFd kick = EventFd.create()) {
                s.fe.addMemReg(s.memory.region());
                startRing(s, 1, kick, s.memory.uva(0), s.memory.uva(0x10000), s.memory.uva(0x20000));
                Await.until("ring started", () -> arena.backend().queue(Arena.PORT_A, 1).isRunning());
                final int lines = arena.brokenQueueLines().size();
                s.fe.remMemReg(s.memory.region());
                arena.awaitBroken(1, QueueError.RING_UNMAPPED, lines);
                assertTrue(s.needsReset(), "GET_STATUS reports DEVICE_NEEDS_RESET");
            }
        }));
    }

    private interface RingAddrs {
        long[] of(Session s);
    }

    private static void ringBreaksAtStart(final List<Case> cases, final String name, final RingAddrs addrs) {
        cases.add(new Case(name, arena -> {
            try (Session s = Session.withMemory(arena.socket(Arena.PORT_A)); EventFd kick = EventFd.create()) {
                assertFalse(s.needsReset());
                final long[] a = addrs.of(s);
                final int lines = arena.brokenQueueLines().size();
                startRing(s, 1, kick, a[0], a[1], a[2]);
                arena.awaitBroken(1, QueueError.RING_UNMAPPED, lines);
                assertTrue(s.needsReset(), "GET_STATUS reports DEVICE_NEEDS_RESET");
                assertTrue(s.alive());
            }
        }));
    }

    private static void startRing(final Session s, final int index, final EventFd kick, final long desc, final long avail,
                                  final long used) throws IOException {
        s.fe.setVringNum(index, 256);
        s.fe.setVringBase(index, 0);
        s.fe.tell(FrontendRequest.SET_VRING_ADDR, vringAddr(index, 0, desc, used, avail));
        s.fe.setVringKick(index, kick.fd());
        s.fe.setVringEnable(index, true);
    }

    private static byte[] vringAddr(final long index, final long flags, final long desc, final long used, final long avail) {
        final byte[] p = new byte[VringAddrMessage.LENGTH];
        new VringAddrMessage().<VringAddrMessage>wrap(new UnsafeBuffer(p), 0).index(index).flags(flags)
            .descUserAddr(desc).usedUserAddr(used).availUserAddr(avail).logGuestAddr(0);
        return p;
    }

    // ---------------------------------------------------------------------------------------------
    // Live traffic: the guest writes garbage into its rings while the back-end forwards

    private static void liveDescriptors(final List<Case> cases) {
        for (final DescriptorAbuse abuse : DescriptorAbuse.catalogue()) {
            final VirtioNetDriver.Options options = abuse.indirect() ? VirtioNetDriver.Options.defaults()
                : VirtioNetDriver.Options.defaults().indirect(false);
            cases.add(new Case("live: " + abuse.name(), arena -> liveAttack(arena, options, abuse)));
        }
        cases.add(new Case("receive buffer outside guest memory", arena -> {
            try (VirtioNetDriver a = arena.startA()) {
                a.postRxBuffers(4, 2048);
                arena.exchange(a);
                final int lines = arena.brokenQueueLines().size();
                final GuestMemoryImage m = a.memory();
                a.rx().writeRawDescriptor(D, m.gpa(m.size()) + 4096, 2048, DESC_F_WRITE, 0);
                a.rx().pushAvail(D);
                a.rx().publish();
                drainA(a);
                // B keeps sending: frames reach A's bad buffer, A's receive queue breaks, B's sends still complete.
                for (int i = 0; i < 8; i++) {
                    arena.b().send(dev.vhostnet.backend.Frames.frame(dev.vhostnet.backend.InProcessBackend.MAC_A,
                        dev.vhostnet.backend.InProcessBackend.MAC_B, 100, i));
                }
                arena.awaitBroken(RX, QueueError.BUFFER_UNMAPPED, lines);
                assertTrue(arena.b().awaitTxDone(Arena.WAIT), "B's transmissions complete while A cannot receive");
                assertTrue(a.tx().size() > 0 && arena.backend().queue(Arena.PORT_A, TX).isRunning(), "A's TX queue goes on");
                assertEquals(64, a.frontend().getStatus() & 64, "DEVICE_NEEDS_RESET");
            }
        }));
        cases.add(new Case("transmit chain with only device-writable buffers", arena -> {
            try (VirtioNetDriver a = arena.startA()) {
                a.postRxBuffers(4, 2048);
                arena.exchange(a);
                final long errors = arena.backend().counter(Arena.PORT_A, TX, QueueCounters.ERRORS);
                a.tx().add(List.of(DriverSplitQueue.Segment.writable(DescriptorAbuse.frame(a.memory()), 64)), false);
                a.tx().publish();
                arena.backend().awaitCounter(Arena.PORT_A, TX, QueueCounters.ERRORS, errors + 1);
                assertTrue(arena.backend().queue(Arena.PORT_A, TX).isRunning(), "a bad frame is dropped, not fatal");
                arena.exchange(a);
            }
        }));
        cases.add(new Case("guest scribbles random bytes over its TX rings under traffic", arena -> {
            final Random random = new Random(42);
            for (int round = 0; round < 5; round++) {
                try (VirtioNetDriver a = arena.startA()) {
                    a.postRxBuffers(8, 2048);
                    arena.exchange(a);
                    final UnsafeBuffer image = a.memory().buffer();
                    final int desc = (int) (a.tx().descUva() - a.memory().uvaBase());
                    final int avail = (int) (a.tx().availUva() - a.memory().uvaBase());
                    for (int i = 0; i < 200; i++) {
                        final int at = (random.nextBoolean() ? desc + random.nextInt(16 * 256) : avail + random.nextInt(4 + 2 * 256)) & ~1;
                        image.putShortVolatile(at, (short) random.nextInt());
                        if (i % 20 == 0) {
                            arena.b().send(dev.vhostnet.backend.Frames.frame(dev.vhostnet.backend.InProcessBackend.MAC_A,
                                dev.vhostnet.backend.InProcessBackend.MAC_B, 100, i));
                        }
                    }
                    assertTrue(a.frontend().getFeatures() != 0, "the control plane still answers");
                }
                arena.drainB();
            }
        }));
    }

    /**
     * A well-behaved start (frames both ways), then the abuse on A's TX ring: that queue breaks with the
     * abuse's error, one log line, DEVICE_NEEDS_RESET; A's receive queue and B go on.
     */
    private static void liveAttack(final Arena arena, final VirtioNetDriver.Options options, final DescriptorAbuse abuse)
        throws IOException {
        try (VirtioNetDriver a = arena.startA(options)) {
            a.postRxBuffers(8, 2048);
            arena.exchange(a);
            assertEquals(0, a.frontend().getStatus() & 64, "no DEVICE_NEEDS_RESET before the abuse");
            final int lines = arena.brokenQueueLines().size();
            abuse.abuse().run(a.tx(), a.memory(), D);
            a.tx().publish();
            a.tx().kick();
            arena.awaitBroken(TX, abuse.expected(), lines);
            assertEquals(64, a.frontend().getStatus() & 64, "GET_STATUS reports DEVICE_NEEDS_RESET");
            // The other queue of the same device goes on: B's frames still arrive at A.
            final byte[] f = dev.vhostnet.backend.Frames.frame(dev.vhostnet.backend.InProcessBackend.MAC_A,
                dev.vhostnet.backend.InProcessBackend.MAC_B, 300, 77);
            arena.drainB();
            arena.b().send(f);
            assertArrayEquals(f, a.receive(Arena.WAIT), "A still receives while its TX queue is broken");
            assertEquals(lines + 1, arena.brokenQueueLines().size(), "exactly one log line: " + arena.brokenQueueLines());
        }
    }

    private static void drainA(final VirtioNetDriver a) {
        while (a.receive(Duration.ZERO) != null) {
            // nothing expected
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Faults around live traffic

    private static void faults(final List<Case> cases) {
        cases.add(new Case("memfd truncation to 0 under traffic (refused by the seal)", arena -> truncateUnderTraffic(arena, 0)));
        cases.add(new Case("memfd truncation to one page under traffic (refused by the seal)",
            arena -> truncateUnderTraffic(arena, 4096)));
        cases.add(new Case("front-end gone mid-traffic", arena -> {
            final VirtioNetDriver a = arena.startA();
            a.postRxBuffers(32, 2048);
            for (int i = 0; i < 100; i++) {
                a.send(dev.vhostnet.backend.Frames.frame(300, i));
                arena.b().send(dev.vhostnet.backend.Frames.frame(dev.vhostnet.backend.InProcessBackend.MAC_A,
                    dev.vhostnet.backend.InProcessBackend.MAC_B, 300, i));
            }
            a.close(); // no GET_VRING_BASE: rings mid-flight, memory unmapped on our side
            assertTrue(arena.b().awaitTxDone(Arena.WAIT), "B's transmissions complete (dropped) with A gone");
        }));
        cases.add(new Case("a receiver that never returns its buffers", arena -> {
            try (VirtioNetDriver a = arena.startA()) {
                a.postRxBuffers(8, 2048);
                final long drops = arena.backend().txDrops(Arena.PORT_B);
                for (int i = 0; i < 1000; i++) {
                    arena.b().send(dev.vhostnet.backend.Frames.frame(dev.vhostnet.backend.InProcessBackend.MAC_A,
                        dev.vhostnet.backend.InProcessBackend.MAC_B, 100, i));
                }
                assertTrue(arena.b().awaitTxDone(Arena.WAIT), "B is never blocked by A's full receive ring");
                Await.until("B's frames beyond A's 8 buffers dropped",
                    () -> arena.backend().txDrops(Arena.PORT_B) >= drops + 992);
                for (int i = 0; i < 8; i++) {
                    assertNotNull(a.receive(Arena.WAIT), "A's 8 buffers were filled");
                }
                a.postRxBuffers(8, 2048);
                arena.exchange(a);
            }
        }));
        cases.add(new Case("500 connects and disconnects", arena -> {
            final Resources before = Resources.now();
            for (int i = 0; i < 500; i++) {
                try (VhostUserFrontend fe = VhostUserFrontend.connect(arena.socket(Arena.PORT_A))) {
                    switch (i % 5) {
                        case 0:
                            break; // connect, close
                        case 1:
                            fe.sendRaw(new byte[] {1, 0, 0}); // half a header
                            break;
                        case 2:
                            fe.send(FrontendRequest.GET_FEATURES, VhostUserHeader.VERSION, new byte[0]); // reply unread
                            break;
                        case 3:
                            fe.setOwner();
                            fe.send(FrontendRequest.SET_FEATURES, VhostUserHeader.VERSION, u64(Session.FEATURES));
                            break;
                        default:
                            try (EventFd e = EventFd.create()) {
                                fe.send(FrontendRequest.SET_VRING_CALL, VhostUserHeader.VERSION, u64(0), e.fd());
                            }
                    }
                }
            }
            arena.awaitPortStopped(Arena.PORT_A);
            before.awaitNoMoreThan("500 connect/disconnect cycles");
        }));
        cases.add(new Case("60 full sessions (memory mapped, rings started) in a row", arena -> {
            final Resources before = Resources.now();
            for (int i = 0; i < 60; i++) {
                try (VirtioNetDriver a = arena.startA()) {
                    a.postRxBuffers(2, 2048);
                    if (i % 10 == 0) {
                        arena.exchange(a);
                    }
                }
            }
            arena.awaitPortStopped(Arena.PORT_A);
            before.awaitNoMoreThan("60 full sessions");
        }));
        cases.add(new Case("RESET_OWNER and RESET_DEVICE storms under traffic", arena -> {
            try (VirtioNetDriver a = arena.startA()) {
                a.postRxBuffers(8, 2048);
                arena.exchange(a);
                for (int i = 0; i < 20; i++) {
                    a.frontend().resetDevice();
                    a.frontend().resetOwner();
                }
                assertFalse(arena.backend().queue(Arena.PORT_A, TX).isStarted(), "reset stops the rings");
            }
        }));
    }

    /**
     * The front-end tries to shrink the memfd behind its guest memory while B sends to A and A's rings are polled
     * (unsealed, the back-end's next access would SIGBUS, which HotSpot does not always survive). The back-end
     * sealed the file against shrinking when it received it: ftruncate fails with EPERM, A's queues go on and
     * frames cross both ways.
     */
    private static void truncateUnderTraffic(final Arena arena, final long newSize) throws IOException {
        try (VirtioNetDriver a = arena.startA()) {
            a.postRxBuffers(64, 2048);
            arena.exchange(a);
            assertEquals(-1, LibC.INSTANCE.ftruncate(a.memory().fd(), newSize), "ftruncate must fail");
            assertEquals(LibC.EPERM, LibC.errno(), "refused by F_SEAL_SHRINK");
            for (int i = 0; i < 32; i++) {
                arena.b().send(dev.vhostnet.backend.Frames.frame(dev.vhostnet.backend.InProcessBackend.MAC_A,
                    dev.vhostnet.backend.InProcessBackend.MAC_B, 1000, i));
            }
            for (int i = 0; i < 32; i++) {
                assertNotNull(a.receive(Arena.WAIT), "frame " + i + " reaches A's intact memory");
            }
            a.tx().kick();
            arena.exchange(a);
            assertEquals(QueueError.NONE, arena.backend().queue(Arena.PORT_A, RX).error(), "A's RX queue still runs");
            assertEquals(QueueError.NONE, arena.backend().queue(Arena.PORT_A, TX).error(), "A's TX queue still runs");
            assertEquals(0, a.frontend().getStatus() & 64, "no DEVICE_NEEDS_RESET");
            assertTrue(arena.b().awaitTxDone(Arena.WAIT), "B's transmissions complete");
        }
    }

    // ---------------------------------------------------------------------------------------------

    static byte[] header(final int request, final int flags, final int size) {
        final byte[] h = new byte[VhostUserHeader.LENGTH];
        final UnsafeBuffer b = new UnsafeBuffer(h);
        b.putInt(0, request, ByteOrder.LITTLE_ENDIAN);
        b.putInt(4, flags, ByteOrder.LITTLE_ENDIAN);
        b.putInt(8, size, ByteOrder.LITTLE_ENDIAN);
        return h;
    }

    static byte[] concat(final byte[] x, final byte[] y) {
        final byte[] r = java.util.Arrays.copyOf(x, x.length + y.length);
        System.arraycopy(y, 0, r, x.length, y.length);
        return r;
    }

}
