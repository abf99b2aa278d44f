package dev.vhostnet.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.agent.PollMode;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A second back-end may take a socket path over from a running one (hand-over, live migration on
 * one host): the first one's close() must then leave the newcomer's socket file alone.
 */
class SocketTakeoverTest {

    @Test
    void closingTheOldServerKeepsTheSocketFileOfTheOneThatTookThePathOver(@TempDir final Path dir) throws Exception {
        final Path path = dir.resolve("vu.sock");
        final VirtioNetPort port = new VirtioNetPort(path.toString());
        try (Dataplane dataplane = new Dataplane(new VirtioNetPort[] {port}, new VirtioNetPort[1], PollMode.ADAPTIVE, -1)) {
            final NetDeviceConfig config = new NetDeviceConfig(InProcessBackend.MAC_A);
            final VhostUserServer old = VhostUserServer.listen(path, port, dataplane, config, null);
            final VhostUserServer newer = VhostUserServer.listen(path, port, dataplane, config, null);
            final Object newerFile = key(path);
            old.close();
            assertTrue(Files.exists(path), "the old server removed the socket file the new one listens on");
            assertEquals(newerFile, key(path));
            newer.close();
            assertFalse(Files.exists(path), "the server that owns the socket file removes it at close");
        }
    }

    private static Object key(final Path p) throws java.io.IOException {
        return Files.readAttributes(p, BasicFileAttributes.class, java.nio.file.LinkOption.NOFOLLOW_LINKS).fileKey();
    }
}
