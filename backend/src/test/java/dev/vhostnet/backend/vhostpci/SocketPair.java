package dev.vhostnet.backend.vhostpci;

import org.newsclub.net.unix.AFUNIXServerSocket;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** A connected pair over a temporary vhost-pci socket path: [0] the accepted (device) end, [1] the client. */
final class SocketPair implements AutoCloseable {
    final AFUNIXSocket device;
    final AFUNIXSocket client;
    private final Path dir;

    private SocketPair(final AFUNIXSocket device, final AFUNIXSocket client, final Path dir) {
        this.device = device;
        this.client = client;
        this.dir = dir;
    }

    static SocketPair open() throws Exception {
        final Path dir = Files.createTempDirectory("vhost-pci");
        final Path path = dir.resolve("pci.sock");
        try (AFUNIXServerSocket server = AFUNIXServerSocket.newInstance()) {
            server.bind(AFUNIXSocketAddress.of(path.toFile()), 1);
            final CompletableFuture<AFUNIXSocket> accepted = CompletableFuture.supplyAsync(() -> {
                try {
                    return server.accept();
                } catch (final IOException e) {
                    throw new RuntimeException(e);
                }
            });
            final AFUNIXSocket client = AFUNIXSocket.connectTo(AFUNIXSocketAddress.of(path.toFile()));
            return new SocketPair(accepted.get(5, TimeUnit.SECONDS), client, dir);
        }
    }

    @Override
    public void close() throws IOException {
        device.close();
        client.close();
        Files.deleteIfExists(dir.resolve("pci.sock"));
        Files.deleteIfExists(dir);
    }
}
