package dev.vhostnet.backend.transport;

import dev.vhostnet.backend.OpenFds;
import dev.vhostnet.dataplane.sys.EventFd;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.LibC;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.EOFException;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The transport over real socket pairs: every fd that arrives is held by the message's {@link FdSet} and closed
 * with it, whatever the count (up to the kernel's 253), when the kernel truncates, and when the peer ends or goes
 * silent in the middle of a message; a peer that does not read is cut off; silence between messages is not.
 * Each test checks this process's open fds against the count before it (waiting out the short-lived fds the JVM
 * itself opens now and then, e.g. to read cgroup files: a leak shows as a time-out with the excess).
 */
class UnixMessageSocketTest {
    private static final int FD_CLOEXEC = 1;
    private static final SocketTimeouts SHORT = SocketTimeouts.of(Duration.ofMillis(200));

    private final List<AutoCloseable> toClose = new ArrayList<>();
    private long baseline;

    /** The first native call opens what jnr-ffi keeps for the JVM's lifetime: not part of any baseline. */
    @BeforeAll
    static void warmUp() throws IOException {
        EventFd.create().close();
        for (final UnixMessageSocket s : UnixMessageSocket.pair(SocketTimeouts.DEFAULTS, 1)) {
            s.close();
        }
    }

    @BeforeEach
    void countFds() {
        baseline = OpenFds.count();
    }

    @AfterEach
    void closeAllAndCheckFds() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        OpenFds.awaitBackTo(baseline, "after the test");
    }

    private UnixMessageSocket[] pair(final SocketTimeouts timeouts, final int maxFdsPerRead) throws IOException {
        final UnixMessageSocket[] p = UnixMessageSocket.pair(timeouts, maxFdsPerRead);
        toClose.add(p[0]);
        toClose.add(p[1]);
        return p;
    }

    private EventFd eventFd() {
        final EventFd e = EventFd.create();
        toClose.add(e);
        return e;
    }

    private static byte[] message(final int length, final int seed) {
        final byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (seed + i);
        }
        return b;
    }

    private static int[] copiesOf(final int fd, final int n) {
        final int[] fds = new int[n];
        Arrays.fill(fds, fd);
        return fds;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 10, 61, 200, 253})
    void everyFdOfAMessageArrivesAndIsClosedWithIt(final int n) throws Exception {
        final UnixMessageSocket[] p = pair(SocketTimeouts.DEFAULTS, UnixMessageSocket.MAX_FDS);
        final EventFd e = eventFd();
        final long before = OpenFds.count();
        final byte[] sent = message(40, n);
        p[1].send(sent, 0, sent.length, copiesOf(e.fd(), n), n);

        final FdSet fds = new FdSet();
        final byte[] got = new byte[40];
        assertTrue(p[0].readStart(got, 0, 12, fds, -1));
        p[0].readRest(got, 12, 28, fds);
        assertArrayEquals(sent, got);
        assertEquals(n, fds.count(), "fds held");
        assertFalse(fds.lost(), "nothing dropped by the kernel");
        assertTrue(OpenFds.count() >= before + n, "each received fd is a new open fd of this process");
        for (int i = 0; i < n; i++) {
            final int fd = fds.take(i);
            assertTrue(FileDescriptors.isOpen(fd));
            assertEquals(FD_CLOEXEC, LibC.INSTANCE.fcntl(fd, LibC.F_GETFD, 0) & FD_CLOEXEC, "received close-on-exec");
            FileDescriptors.closeQuietly(fd);
        }
        OpenFds.awaitBackTo(before, "taken fds closed by their taker");
    }

    @Test
    void untakenFdsAreClosedWhenTheMessageIsCleared() throws Exception {
        final UnixMessageSocket[] p = pair(SocketTimeouts.DEFAULTS, UnixMessageSocket.MAX_FDS);
        final EventFd e = eventFd();
        final long before = OpenFds.count();
        p[1].send(message(12, 1), 0, 12, copiesOf(e.fd(), 200), 200);
        final FdSet fds = new FdSet();
        assertTrue(p[0].readStart(new byte[12], 0, 12, fds, -1));
        final int kept = fds.take(7);
        fds.clear();
        OpenFds.awaitBackTo(before + 1, "only the taken fd is still open");
        assertTrue(FileDescriptors.isOpen(kept));
        FileDescriptors.closeQuietly(kept);
    }

    @Test
    void aTakenFdOutlivesTheSocketItCameOn() throws Exception {
        // junixsocket closed every fd it had received when its socket closed, so an fd a handler still held (or
        // whatever reused its number) was closed behind its back. Here nothing but the taker owns a received fd.
        final UnixMessageSocket[] p = pair(SocketTimeouts.DEFAULTS, UnixMessageSocket.MAX_FDS);
        final EventFd e = eventFd();
        p[1].send(message(12, 8), 0, 12, new int[] {e.fd()}, 1);
        final FdSet fds = new FdSet();
        assertTrue(p[0].readStart(new byte[12], 0, 12, fds, -1));
        final int kept = fds.take(0);
        fds.clear();
        p[0].close();
        p[1].close();
        assertTrue(FileDescriptors.isOpen(kept), "the taken fd is still open after its socket closed");
        try (EventFd received = EventFd.adopt(kept)) {
            assertTrue(e.signal() && received.fd() == kept, "and still the sender's eventfd");
        }
    }

    @Test
    void fdsBeyondTheSetsCapacityAreClosedOnArrival() throws Exception {
        final UnixMessageSocket[] p = pair(SocketTimeouts.DEFAULTS, UnixMessageSocket.MAX_FDS);
        final EventFd e = eventFd();
        final long before = OpenFds.count();
        p[1].send(message(12, 2), 0, 12, copiesOf(e.fd(), 100), 100);
        final FdSet fds = new FdSet(8);
        assertTrue(p[0].readStart(new byte[12], 0, 12, fds, -1));
        assertEquals(8, fds.count());
        assertEquals(100, fds.received());
        OpenFds.awaitBackTo(before + 8, "the 92 that did not fit are closed already");
        fds.clear();
        OpenFds.awaitBackTo(before, "after the message");
    }

    @Test
    void whenTheKernelTruncatesWhatArrivedIsHeldAndTheMessageMarked() throws Exception {
        // Room for 4 fds in the ancillary buffer: the kernel installs 4, sets MSG_CTRUNC and closes the other 6.
        final UnixMessageSocket[] p = pair(SocketTimeouts.DEFAULTS, 4);
        final EventFd e = eventFd();
        final long before = OpenFds.count();
        p[1].send(message(12, 3), 0, 12, copiesOf(e.fd(), 10), 10);
        final FdSet fds = new FdSet();
        final byte[] got = new byte[12];
        assertTrue(p[0].readStart(got, 0, 12, fds, -1));
        assertArrayEquals(message(12, 3), got, "the bytes arrive intact");
        assertTrue(fds.lost(), "MSG_CTRUNC seen");
        assertEquals(4, fds.count(), "the fds the kernel installed are held, not lost to us");
        fds.clear();
        OpenFds.awaitBackTo(before, "nothing of the 10 left open");
    }

    @Test
    void fdsOfAMessageCutShortByTheEndOfStreamAreHeldForClosing() throws Exception {
        final UnixMessageSocket[] p = pair(SocketTimeouts.DEFAULTS, UnixMessageSocket.MAX_FDS);
        final EventFd e = eventFd();
        p[1].send(message(5, 4), 0, 5, copiesOf(e.fd(), 3), 3);
        p[1].close();
        final long before = OpenFds.count();
        final FdSet fds = new FdSet();
        assertThrows(EOFException.class, () -> p[0].readStart(new byte[12], 0, 12, fds, -1));
        assertEquals(3, fds.count());
        fds.clear();
        OpenFds.awaitBackTo(before, "after the message");
    }

    @Test
    void silenceInTheMiddleOfAMessageTimesOutButSilenceBetweenMessagesDoesNot() throws Exception {
        final UnixMessageSocket[] idle = pair(SHORT, UnixMessageSocket.MAX_FDS);
        final UnixMessageSocket[] stalled = pair(SHORT, UnixMessageSocket.MAX_FDS);
        final EventFd e = eventFd();
        // The idle connection starts waiting for its next message first ...
        final byte[] idleGot = new byte[12];
        final FdSet idleFds = new FdSet();
        final CompletableFuture<Boolean> idleRead = CompletableFuture.supplyAsync(() -> {
            try {
                return idle[0].readStart(idleGot, 0, 12, idleFds, -1);
            } catch (final IOException ex) {
                throw new RuntimeException(ex);
            }
        });
        // ... then the other sends 3 bytes (and an fd) of a 12-byte message and says nothing more.
        stalled[1].send(message(3, 5), 0, 3, new int[] {e.fd()}, 1);
        final FdSet fds = new FdSet();
        final long start = System.nanoTime();
        final PeerTimeoutException timeout = assertThrows(PeerTimeoutException.class,
            () -> stalled[0].readStart(new byte[12], 0, 12, fds, -1));
        assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(200), "not before the time-out");
        assertTrue(timeout.getMessage().contains("in the middle of a message"), timeout.getMessage());
        assertEquals(1, fds.count(), "the fd of the stalled message is held for closing");
        fds.clear();

        // The idle connection has now been silent longer than the time-out, between messages: still waiting.
        assertFalse(idleRead.isDone(), "silence between messages is no reason to give up");
        idle[1].send(message(12, 6), 0, 12, null, 0);
        assertTrue(idleRead.get(5, TimeUnit.SECONDS));
        assertArrayEquals(message(12, 6), idleGot);
    }

    @Test
    void aPeerThatDoesNotReadIsCutOffAfterTheSendTimeout() throws Exception {
        final UnixMessageSocket[] p = pair(SHORT, UnixMessageSocket.MAX_FDS);
        final byte[] reply = message(64, 7);
        int sent = 0;
        final PeerTimeoutException e;
        try {
            while (true) {
                p[0].send(reply, 0, reply.length, null, 0);
                if (++sent > 1_000_000) {
                    throw new AssertionError("a million replies went into a socket nobody reads");
                }
            }
        } catch (final PeerTimeoutException t) {
            e = t;
        }
        assertTrue(sent > 0, "the socket buffer took some replies first");
        assertTrue(e.getMessage().contains("without reading"), e.getMessage());
        assertTrue(p[0].isClosed(), "the connection is cut: part of a message may be out");
        assertThrows(IOException.class, () -> p[0].readStart(new byte[12], 0, 12, new FdSet(), -1),
            "nothing more is read from a connection that was cut");
        // The peer reads what was queued, then the end of stream.
        final FdSet fds = new FdSet();
        final byte[] got = new byte[64];
        int read = 0;
        while (p[1].readStart(got, 0, 64, fds, 5000)) {
            read++;
        }
        assertTrue(read > 0 && read <= sent, read + " of " + sent);
    }

    @Test
    void closeFromAnotherThreadWakesABlockedReader() throws Exception {
        final UnixMessageSocket[] p = pair(SocketTimeouts.DEFAULTS, UnixMessageSocket.MAX_FDS);
        final CompletableFuture<Boolean> read = CompletableFuture.supplyAsync(() -> {
            try {
                return p[0].readStart(new byte[12], 0, 12, new FdSet(), -1);
            } catch (final IOException ex) {
                return false;
            }
        });
        p[0].close();
        assertFalse(read.get(5, TimeUnit.SECONDS), "the reader sees the end, not a hang");
        assertThrows(IOException.class, () -> p[0].send(new byte[1], 0, 1, null, 0));
    }

    @Test
    void aNonSocketIsNotAdoptedAndStaysTheCallers() throws Exception {
        final EventFd e = eventFd();
        assertThrows(IOException.class, () -> UnixMessageSocket.adopt(e.fd(), SocketTimeouts.DEFAULTS));
        assertTrue(FileDescriptors.isOpen(e.fd()));
    }

    @Test
    void moreFdsThanTheKernelPassesAreRefusedBeforeSending() throws Exception {
        final UnixMessageSocket[] p = pair(SocketTimeouts.DEFAULTS, UnixMessageSocket.MAX_FDS);
        final EventFd e = eventFd();
        assertThrows(IllegalArgumentException.class,
            () -> p[1].send(new byte[12], 0, 12, copiesOf(e.fd(), 254), 254));
    }
}
