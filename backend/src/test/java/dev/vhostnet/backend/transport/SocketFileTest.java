package dev.vhostnet.backend.transport;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The listening socket's file: stale sockets replaced, other files refused, removed at close only if still ours. */
class SocketFileTest {
    @TempDir
    Path dir;

    @Test
    void aFileThatIsNotASocketIsRefusedAndLeftAlone() throws Exception {
        final Path path = dir.resolve("precious.txt");
        Files.writeString(path, "keep me");
        final IOException e = assertThrows(IOException.class, () -> SocketFile.listen(path, 1));
        assertTrue(e.getMessage().contains("is not a socket"), e.getMessage());
        assertEquals("keep me", Files.readString(path));
    }

    @Test
    void aStaleSocketFileIsReplacedAndTheNewOneRemovedAtClose() throws Exception {
        final Path path = dir.resolve("vu.sock");
        final SocketFile stale = SocketFile.listen(path, 1);
        stale.listener().close(); // a crashed back-end: its file stays behind
        assertTrue(Files.exists(path));
        try (SocketFile file = SocketFile.listen(path, 1);
             AFUNIXSocket client = AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(path.toFile()))) {
            assertTrue(client.isConnected(), "the new socket listens");
        }
        assertFalse(Files.exists(path), "removed at close");
    }

    @Test
    void closingDoesNotRemoveTheFileOfWhoeverTookThePathOver() throws Exception {
        final Path path = dir.resolve("vu.sock");
        final SocketFile first = SocketFile.listen(path, 1);
        try (SocketFile second = SocketFile.listen(path, 1)) { // e.g. the back-end that takes over in a hand-over
            first.close();
            assertTrue(Files.exists(path), "the second back-end's socket file is not the first one's to remove");
            try (AFUNIXSocket client = AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(path.toFile()))) {
                assertTrue(client.isConnected(), "and it still listens");
            }
        }
        assertFalse(Files.exists(path));
    }
}
