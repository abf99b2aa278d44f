package dev.vhostnet.backend.transport;

import org.newsclub.net.unix.AFUNIXServerSocket;
import org.newsclub.net.unix.AFUNIXSocketAddress;

import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.logging.Logger;

/**
 * A listening AF_UNIX socket and its file: a stale socket file at the path is replaced (any other kind of file is
 * refused), and at close the file is removed only if it is still the one we bound, since another back-end may have
 * taken the path over meanwhile (a hand-over, a live migration) and its socket is not ours to remove.
 */
public final class SocketFile implements Closeable {
    private static final Logger LOG = Logger.getLogger(SocketFile.class.getName());
    private static final int S_IFMT = 0xF000;
    private static final int S_IFSOCK = 0xC000;

    private final Path path;
    private final AFUNIXServerSocket listener;
    /** Identity (device, inode) of the file we bound, or null if it could not be read. */
    private final Object key;

    private SocketFile(final Path path, final AFUNIXServerSocket listener, final Object key) {
        this.path = path;
        this.listener = listener;
        this.key = key;
    }

    /** Listen on {@code path} with {@code backlog} pending connections. */
    public static SocketFile listen(final Path path, final int backlog) throws IOException {
        if (Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            if (!isSocket(path)) {
                throw new IOException(path + " exists and is not a socket; refusing to replace it");
            }
            Files.delete(path);
        }
        final AFUNIXServerSocket server = AFUNIXServerSocket.newInstance();
        server.setDeleteOnClose(false); // close() removes the file, but only if it is still ours
        try {
            server.bind(AFUNIXSocketAddress.of(path.toFile()), backlog);
        } catch (final IOException e) {
            server.close();
            throw e;
        }
        return new SocketFile(path, server, fileKey(path));
    }

    public AFUNIXServerSocket listener() {
        return listener;
    }

    public Path path() {
        return path;
    }

    /** Stop listening, then remove the file if it is still ours. */
    @Override
    public void close() {
        try {
            listener.close();
        } catch (final IOException e) {
            LOG.fine("close " + path + ": " + e);
        }
        if (key == null || key.equals(fileKey(path))) {
            try {
                Files.deleteIfExists(path);
            } catch (final IOException e) {
                LOG.warning("cannot remove " + path + ": " + e.getMessage());
            }
        }
    }

    private static boolean isSocket(final Path path) {
        try {
            final Object mode = Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
            return ((Integer) mode & S_IFMT) == S_IFSOCK;
        } catch (final IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return false;
        }
    }

    private static Object fileKey(final Path path) {
        try {
            return Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        } catch (final IOException e) {
            return null;
        }
    }
}
