package dev.vhostnet.backend;

import dev.vhostnet.dataplane.memory.IotlbMissSink;
import dev.vhostnet.spec.BackendRequest;
import dev.vhostnet.spec.IotlbMessage;
import dev.vhostnet.spec.VhostUserHeader;
import org.agrona.concurrent.UnsafeBuffer;
import org.newsclub.net.unix.AFUNIXSocket;
import org.newsclub.net.unix.FileDescriptorCast;

import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * The back-end channel (SET_BACKEND_REQ_FD): requests this back-end sends to the front-end. The dataplane
 * reports IOTLB misses and access failures here without blocking: they are queued and written by this
 * channel's own thread, so a slow front-end never stalls packet processing.
 */
final class BackendChannel implements IotlbMissSink, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(BackendChannel.class.getName());

    private final AFUNIXSocket socket;
    private final OutputStream out;
    private final BlockingQueue<long[]> pending = new ArrayBlockingQueue<>(4096);
    private final Thread writer;
    private final byte[] bytes = new byte[VhostUserHeader.LENGTH + IotlbMessage.LENGTH];
    private final UnsafeBuffer buffer = new UnsafeBuffer(bytes);
    private volatile boolean closed;

    BackendChannel(final int fd, final String name) throws IOException {
        this.socket = FileDescriptorCast.unsafeUsing(fd).as(AFUNIXSocket.class);
        this.out = socket.getOutputStream();
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
                    out.write(bytes, 0, VhostUserHeader.LENGTH);
                    out.flush();
                    continue;
                }
                header.request(BackendRequest.IOTLB_MSG).flags(VhostUserHeader.VERSION).size(IotlbMessage.LENGTH);
                msg.clear();
                msg.type((int) r[0]).iova(r[1]).perm((int) r[2]);
                out.write(bytes, 0, bytes.length);
                out.flush();
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
        try {
            socket.close();
        } catch (final IOException e) {
            LOG.fine("close: " + e);
        }
        writer.interrupt();
    }
}
