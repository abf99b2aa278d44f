package dev.vhostnet.hostile;

import dev.vhostnet.backend.transport.FdSet;
import dev.vhostnet.backend.transport.PeerTimeoutException;
import dev.vhostnet.backend.transport.SocketTimeouts;
import dev.vhostnet.backend.transport.UnixMessageSocket;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.VhostUserHeader;

import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static dev.vhostnet.hostile.HostileCases.concat;
import static dev.vhostnet.hostile.HostileCases.header;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Hostile cases at the transport: fds on messages that are malformed, refused or cut short, a front-end that
 * goes silent in the middle of a message, and one that floods requests without reading the replies. Each costs
 * only its own connection: the arena then checks that port B still forwards, port A serves again and no fd
 * (memfd, eventfd, socket) is left open.
 */
final class HostileTransportCases {
    /** Short enough for a test, long beyond any scheduling hiccup of a loaded machine. */
    static final SocketTimeouts SHORT = SocketTimeouts.of(Duration.ofMillis(300));

    private HostileTransportCases() {
    }

    static void add(final List<HostileCases.Case> cases) {
        cases.add(new HostileCases.Case("5 memfds on a header with version 0", arena -> {
            try (Session s = Session.bare(arena.socket(Arena.PORT_A)); Fds m = Fds.memfds(5)) {
                s.fe.sendRaw(concat(header(FrontendRequest.GET_FEATURES, 0, 0), new byte[8]), m.fds);
                s.closed("a bad header with fds");
            }
        }));
        cases.add(new HostileCases.Case("8 memfds on a header announcing 4097 bytes", arena -> {
            try (Session s = Session.bare(arena.socket(Arena.PORT_A)); Fds m = Fds.memfds(8)) {
                s.fe.sendRaw(header(FrontendRequest.SET_MEM_TABLE, VhostUserHeader.VERSION, 4097), m.fds);
                s.closed("an oversized payload with fds");
            }
        }));
        cases.add(new HostileCases.Case("3 eventfds on a SET_FEATURES with a 4-byte payload", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); Fds e = Fds.eventfds(3)) {
                s.refused(FrontendRequest.SET_FEATURES, new byte[4], e.fds);
            }
        }));
        cases.add(new HostileCases.Case("an eventfd on an unknown request with REPLY_ACK", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); Fds e = Fds.eventfds(1)) {
                s.refused(9999, new byte[8], e.fds);
            }
        }));
        cases.add(new HostileCases.Case("fds on the header and on the payload of one SET_VRING_KICK", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); Fds e = Fds.eventfds(4)) {
                final byte[] h = header(FrontendRequest.SET_VRING_KICK,
                    VhostUserHeader.VERSION | VhostUserHeader.FLAG_NEED_REPLY, 8);
                s.fe.sendRaw(h, e.fds[0], e.fds[1]);
                s.fe.sendRaw(VhostUserFrontend.u64(0), e.fds[2], e.fds[3]);
                assertTrue(s.fe.readReply().u64() != 0, "4 fds on SET_VRING_KICK refused");
                assertTrue(s.alive(), "connection still served");
            }
        }));
        cases.add(new HostileCases.Case("4 memfds on half a header, then EOF", arena -> {
            try (Session s = Session.bare(arena.socket(Arena.PORT_A)); Fds m = Fds.memfds(4)) {
                s.fe.sendRaw(new byte[] {1, 0, 0, 0, 1}, m.fds);
            }
        }));
        cases.add(new HostileCases.Case("a memfd on half a SET_MEM_TABLE payload, then EOF", arena -> {
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final byte[] table = VhostUserFrontend.memTable(List.of(s.memory.region()));
                final byte[] m = concat(header(FrontendRequest.SET_MEM_TABLE, VhostUserHeader.VERSION, table.length),
                    java.util.Arrays.copyOf(table, table.length / 2));
                s.fe.sendRaw(m, s.memory.fd());
            }
        }));
        cases.add(new HostileCases.Case("silent in the middle of a message (not between messages)", arena -> {
            arena.backend().timeouts(Arena.PORT_A, SHORT);
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A)); Fds e = Fds.eventfds(2)) {
                // Between messages: let a time-out's worth of silence pass (measured by a socket with the same
                // time-out timing out), then the connection must still be served.
                awaitOneTimeOut();
                assertTrue(s.alive(), "an idle front-end is served however long it was silent between messages");
                // In the middle of a message: cut.
                s.fe.sendRaw(concat(header(FrontendRequest.SET_FEATURES, VhostUserHeader.VERSION, 8), new byte[3]),
                    e.fds);
                s.closed("silence in the middle of a message");
            } finally {
                arena.backend().timeouts(Arena.PORT_A, SocketTimeouts.DEFAULTS);
            }
        }));
        cases.add(new HostileCases.Case("requests flooded without reading a reply", arena -> {
            arena.backend().timeouts(Arena.PORT_A, SHORT);
            try (Session s = Session.negotiated(arena.socket(Arena.PORT_A))) {
                final byte[] batch = new byte[512 * VhostUserHeader.LENGTH];
                for (int i = 0; i < 512; i++) {
                    System.arraycopy(header(FrontendRequest.GET_FEATURES, VhostUserHeader.VERSION, 0), 0, batch,
                        i * VhostUserHeader.LENGTH, VhostUserHeader.LENGTH);
                }
                final CompletableFuture<Long> flood = CompletableFuture.supplyAsync(() -> {
                    long sent = 0;
                    try {
                        while (sent < 100_000_000L) {
                            s.fe.sendRaw(batch);
                            sent += 512;
                        }
                    } catch (final IOException e) {
                        return sent; // the back-end cut the connection
                    }
                    return -1L;
                });
                final long sent;
                try {
                    sent = flood.get(30, TimeUnit.SECONDS);
                } catch (final TimeoutException e) {
                    s.fe.close();
                    throw new AssertionError("the back-end still takes requests whose replies nobody reads");
                }
                assertTrue(sent > 0, "requests went out before the cut: " + sent);
                drainUntilClosed(s.fe);
            } finally {
                arena.backend().timeouts(Arena.PORT_A, SocketTimeouts.DEFAULTS);
            }
        }));
    }

    /** Returns once a socket with {@link #SHORT} time-outs, stalled mid-message, has timed out. */
    private static void awaitOneTimeOut() throws IOException {
        final UnixMessageSocket[] clock = UnixMessageSocket.pair(SHORT, UnixMessageSocket.MAX_FDS);
        try {
            clock[1].send(new byte[1], 0, 1, null, 0);
            assertThrows(PeerTimeoutException.class, () -> clock[0].readStart(new byte[2], 0, 2, new FdSet(), -1));
        } finally {
            clock[0].close();
            clock[1].close();
        }
    }

    /** Read what the back-end answered until the end of the connection (or its reset). */
    private static void drainUntilClosed(final VhostUserFrontend fe) {
        try {
            for (int i = 0; i < 100_000_000; i++) {
                fe.readReply();
            }
            fail("the connection was never closed");
        } catch (final IOException e) {
            // closed (end of stream, reset, or the read time-out of the front-end: the latter fails below)
            assertTrue(!(e instanceof java.net.SocketTimeoutException), "the back-end neither answers nor closes");
        }
    }

    /** Fds the hostile front-end sends (its own copies, closed when the case ends). */
    private static final class Fds implements AutoCloseable {
        final int[] fds;

        private Fds(final int[] fds) {
            this.fds = fds;
        }

        static Fds memfds(final int n) {
            final int[] fds = new int[n];
            for (int i = 0; i < n; i++) {
                fds[i] = MemFd.create("hostile-transport-" + i, 4096);
            }
            return new Fds(fds);
        }

        static Fds eventfds(final int n) {
            final int[] fds = new int[n];
            for (int i = 0; i < n; i++) {
                fds[i] = EventFd.create().fd();
            }
            return new Fds(fds);
        }

        @Override
        public void close() {
            for (final int fd : fds) {
                LibC.INSTANCE.close(fd);
            }
        }
    }
}
