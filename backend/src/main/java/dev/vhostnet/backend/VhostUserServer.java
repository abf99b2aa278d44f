package dev.vhostnet.backend;

import dev.vhostnet.backend.transport.PeerTimeoutException;
import dev.vhostnet.backend.transport.SocketFile;
import dev.vhostnet.backend.transport.SocketTimeouts;
import dev.vhostnet.dataplane.agent.Dataplane;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.NativeException;
import org.newsclub.net.unix.AFUNIXServerSocket;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.IOException;
import java.nio.file.Path;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Serves one virtio-net port over a vhost-user socket: one front-end at a time, the next one accepted after
 * a disconnect, forever. The socket is either a path we listen on (created here, removed at close) or an
 * inherited fd (--fd), listening or already connected; a connected fd serves that one front-end, then
 * the server ends.
 */
public final class VhostUserServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(VhostUserServer.class.getName());
    private static final int ENFILE = 23;
    private static final int EMFILE = 24;

    private final VirtioNetPort port;
    private final Dataplane dataplane;
    private final NetDeviceConfig config;
    /** The socket file we listen on (null for an inherited fd): close() removes it only if it is still ours. */
    private final SocketFile socketFile;
    private final AFUNIXServerSocket listener;
    private final AFUNIXSocket preConnected;
    private final Thread thread;
    private volatile boolean closing;
    /** The connection being served (closing it ends its session), or null. */
    private volatile VhostUserChannel current;
    private volatile SocketTimeouts timeouts = SocketTimeouts.DEFAULTS;
    private final Runnable onFinished;
    private volatile dev.vhostnet.backend.vhostpci.DeviceDelegation delegation =
        dev.vhostnet.backend.vhostpci.DeviceDelegation.NONE;

    private VhostUserServer(final VirtioNetPort port, final Dataplane dataplane, final NetDeviceConfig config,
                            final SocketFile socketFile, final AFUNIXServerSocket listener, final AFUNIXSocket preConnected,
                            final Runnable onFinished) {
        this.port = port;
        this.dataplane = dataplane;
        this.config = config;
        this.socketFile = socketFile;
        this.listener = listener;
        this.preConnected = preConnected;
        this.onFinished = onFinished;
        this.thread = new Thread(this::serve, "vhost-control-" + port.name());
    }

    /** Listen on {@code path}, replacing a stale socket file (but never a non-socket file). */
    public static VhostUserServer listen(final Path path, final VirtioNetPort port, final Dataplane dataplane,
                                         final NetDeviceConfig config, final Runnable onFinished) throws IOException {
        final SocketFile file = SocketFile.listen(path, 1);
        return new VhostUserServer(port, dataplane, config, file, file.listener(), null, onFinished);
    }

    /** Serve on an inherited socket fd (listening or connected). */
    public static VhostUserServer inherit(final int fd, final VirtioNetPort port, final Dataplane dataplane,
                                          final NetDeviceConfig config, final Runnable onFinished) throws IOException {
        if (!FileDescriptors.isOpen(fd)) {
            throw new IOException("--fd " + fd + " is not an open file descriptor");
        }
        final FileDescriptorCast cast = FileDescriptorCast.unsafeUsing(fd);
        if (FileDescriptors.isListeningSocket(fd)) {
            return new VhostUserServer(port, dataplane, config, null, cast.as(AFUNIXServerSocket.class), null, onFinished);
        }
        return new VhostUserServer(port, dataplane, config, null, null, cast.as(AFUNIXSocket.class), onFinished);
    }

    /** vhost-pci peer mode: hand every front-end connection's device to this delegation (before start). */
    public void delegation(final dev.vhostnet.backend.vhostpci.DeviceDelegation d) {
        this.delegation = d;
    }

    /** Time-outs for the connections accepted from now on (tests shorten them). */
    public void timeouts(final SocketTimeouts t) {
        this.timeouts = t;
    }

    public void start() {
        thread.start();
    }

    public Path socketPath() {
        return socketFile == null ? null : socketFile.path();
    }

    public VirtioNetPort port() {
        return port;
    }

    private void serve() {
        try {
            if (preConnected != null) {
                session(preConnected);
                return;
            }
            int acceptFailures = 0;
            while (!closing) {
                final AFUNIXSocket socket;
                try {
                    socket = listener.accept();
                    acceptFailures = 0;
                } catch (final IOException e) {
                    if (closing) {
                        return;
                    }
                    if (listener.isClosed()) {
                        throw e;
                    }
                    // E.g. EMFILE while another front-end holds every fd we may open: the pending connection
                    // stays queued; retry once fds are free instead of giving the socket up for good.
                    if (acceptFailures++ == 0) {
                        LOG.warning(port.name() + ": accept failed (" + e.getMessage() + "); retrying");
                    }
                    pauseAfterAcceptFailure();
                    continue;
                }
                session(socket);
            }
        } catch (final IOException e) {
            if (!closing) {
                LOG.log(Level.SEVERE, port.name() + ": listener failed", e);
            }
        } finally {
            if (onFinished != null && !closing) {
                onFinished.run();
            }
        }
    }

    private void session(final AFUNIXSocket socket) {
        LOG.info(port.name() + ": front-end connected");
        try (VhostUserChannel channel = new VhostUserChannel(socket, timeouts);
             VhostUserNetHandler handler = new VhostUserNetHandler(port, dataplane, config, channel, delegation)) {
            current = channel;
            if (closing) {
                return; // close() ran while the connection was being set up
            }
            handler.serve();
        } catch (final PeerTimeoutException e) {
            LOG.warning(port.name() + ": " + e.getMessage() + "; closing the connection");
        } catch (final IOException e) {
            if (!closing) {
                LOG.info(port.name() + ": connection ended: " + e.getMessage());
            }
        } catch (final NativeException e) {
            if (e.errno() != EMFILE && e.errno() != ENFILE) {
                LOG.log(Level.SEVERE, port.name() + ": connection failed", e);
            } else if (!closing) {
                // Out of fds (ulimit -n, or the system's limit): the connection that needed one more is closed,
                // which releases what it held; the next front-end is served as usual.
                LOG.warning(port.name() + ": " + e.getMessage() + ": the process is out of file descriptors"
                    + (e.errno() == EMFILE ? " (ulimit -n)" : " (system-wide limit)") + "; closing the connection");
            }
        } catch (final RuntimeException | Error e) {
            // Whatever one front-end made us trip over ends its connection, not the server.
            LOG.log(Level.SEVERE, port.name() + ": connection failed", e);
        } finally {
            current = null;
            try {
                socket.close(); // when the channel could not even be set up (otherwise the channel owns the fd)
            } catch (final IOException e) {
                LOG.fine("close: " + e);
            }
        }
    }

    private static void pauseAfterAcceptFailure() {
        try {
            Thread.sleep(50);
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        closing = true;
        try {
            if (socketFile != null) {
                socketFile.close(); // stops listening; removes the file if it is still ours
            } else if (listener != null) {
                listener.close();
            }
            final VhostUserChannel c = current;
            if (c != null) {
                c.close();
            }
            if (preConnected != null) {
                preConnected.close();
            }
        } catch (final IOException e) {
            LOG.fine("close: " + e);
        }
        try {
            thread.join(3000);
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
