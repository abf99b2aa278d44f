package dev.vhostnet.backend;

import dev.vhostnet.dataplane.memory.IotlbMissSink;
import dev.vhostnet.spec.BackendRequest;
import dev.vhostnet.spec.IotlbMessage;
import dev.vhostnet.spec.VhostUserHeader;
import dev.vhostnet.backend.transport.SocketTimeouts;
import dev.vhostnet.backend.transport.UnixMessageSocket;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * The back-end channel (SET_BACKEND_REQ_FD): requests this back-end sends to the front-end. The dataplane
 * reports IOTLB misses and access failures here without blocking: they are queued and written by this
 * channel's own thread, so a slow front-end never stalls packet processing. A front-end that does not read this
 * channel at all costs only it: the queue is bounded (what does not fit is dropped and logged), and the writer
 * waits for room as long as it takes, until the connection's end closes the channel (which wakes it).
 */
final class BackendChannel implements IotlbMissSink, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(BackendChannel.class.getName());

    /** Never give up on a slow reader by time: the queue bounds what it costs, close() ends the wait. */
    private static final SocketTimeouts PATIENT = SocketTimeouts.of(Duration.ofDays(365));

    private final UnixMessageSocket socket;
    private final BlockingQueue<long[]> pending = new ArrayBlockingQueue<>(4096);
    private final Thread writer;
    private final byte[] bytes = new byte[VhostUserHeader.LENGTH + IotlbMessage.LENGTH];
    private final UnsafeBuffer buffer = new UnsafeBuffer(bytes);
    private volatile boolean closed;

    /** Own {@code fd} if it is an AF_UNIX stream socket; otherwise throw, and the caller still owns it. */
    BackendChannel(final int fd, final String name) throws IOException {
        this.socket = UnixMessageSocket.adopt(fd, PATIENT);
        this.writer = new Thread(this::run, "vhost-backend-channel-" + name);
        writer.setDaemon(true);
        writer.start();
    }

    @Override
    public void miss(final long iova, final int perm) {
        enqueue(IotlbMessage.TYPE_MISS, iova, perm);
    }

    @Override
    public void accessFailed(final long iova, final int perm) {
        enqueue(IotlbMessage.TYPE_ACCESS_FAIL, iova, perm);
    }

    /** CONFIG_CHANGE_MSG (no reply asked): the front-end re-reads the config space (link state). */
    void configChanged() {
        enqueue(CONFIG_CHANGE, 0, 0);
    }

    private static final int CONFIG_CHANGE = -1;

    private void enqueue(final int type, final long iova, final int perm) {
        if (!closed && !pending.offer(new long[] {type, iova, perm})) {
            LOG.warning("back-end channel queue full; dropping IOTLB request for 0x" + Long.toHexString(iova));
        }
    }

    private void run() {
        final VhostUserHeader header = new VhostUserHeader();
        header.wrap(buffer, 0);
        final IotlbMessage msg = new IotlbMessage();
        msg.wrap(buffer, VhostUserHeader.LENGTH);
        try {
            while (!closed) {
                final long[] r = pending.poll(200, TimeUnit.MILLISECONDS);
                if (r == null) {
                    continue;
                }
                if (r[0] == CONFIG_CHANGE) {
                    header.request(BackendRequest.CONFIG_CHANGE_MSG).flags(VhostUserHeader.VERSION).size(0);
                    socket.send(bytes, 0, VhostUserHeader.LENGTH, null, 0);
                    continue;
                }
                header.request(BackendRequest.IOTLB_MSG).flags(VhostUserHeader.VERSION).size(IotlbMessage.LENGTH);
                msg.clear();
                msg.type((int) r[0]).iova(r[1]).perm((int) r[2]);
                socket.send(bytes, 0, bytes.length, null, 0);
            }
        } catch (final IOException e) {
            if (!closed) {
                LOG.warning("back-end channel: " + e.getMessage());
            }
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        closed = true;
        socket.close();
        writer.interrupt();
    }
}
