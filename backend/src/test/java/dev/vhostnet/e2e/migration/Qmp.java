package dev.vhostnet.e2e.migration;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A minimal QMP client over QEMU's {@code -qmp unix:PATH,server=on,wait=off} socket. Replies are
 * kept as raw JSON lines (tests match them with regexes); events are collected separately.
 * Every read is bounded: a QEMU whose main loop is stuck must fail the test, not hang it.
 */
final class Qmp implements AutoCloseable {
    private final SocketChannel channel;
    private final ByteBuffer in = ByteBuffer.allocate(1 << 16);
    private final StringBuilder pending = new StringBuilder();
    private final List<String> events = new ArrayList<>();
    private final ExecutorService reader = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "qmp-reader");
        t.setDaemon(true);
        return t;
    });

    private Qmp(SocketChannel channel) {
        this.channel = channel;
    }

    /** Connects (waiting for the socket to appear) and leaves capabilities negotiation mode. */
    static Qmp connect(Path socket, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!Files.exists(socket)) {
            if (System.nanoTime() > deadline) {
                throw new IOException("no QMP socket " + socket + " within " + timeout);
            }
            Thread.sleep(100);
        }
        SocketChannel ch;
        while (true) {
            ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                ch.connect(UnixDomainSocketAddress.of(socket));
                break;
            } catch (java.net.ConnectException e) {
                // QEMU binds the socket file a moment before it listens on it.
                ch.close();
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(50);
            }
        }
        Qmp qmp = new Qmp(ch);
        try {
            qmp.readLine(timeout); // greeting
            qmp.execute("{\"execute\":\"qmp_capabilities\"}", timeout);
        } catch (IOException | RuntimeException e) {
            qmp.close();
            throw e;
        }
        return qmp;
    }

    /** Sends one command and returns its reply line ({"return":...} or {"error":...}). */
    String execute(String json, Duration timeout) throws IOException, InterruptedException {
        channel.write(ByteBuffer.wrap((json + "\n").getBytes(StandardCharsets.UTF_8)));
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            String line = readLine(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
            if (line.contains("\"event\"")) {
                synchronized (events) {
                    events.add(line);
                }
                continue;
            }
            return line;
        }
    }

    /** Events seen so far (while waiting for replies). */
    List<String> events() {
        synchronized (events) {
            return List.copyOf(events);
        }
    }

    private String readLine(Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            int nl = pending.indexOf("\n");
            if (nl >= 0) {
                String line = pending.substring(0, nl).trim();
                pending.delete(0, nl + 1);
                if (!line.isEmpty()) {
                    return line;
                }
                continue;
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new IOException("no QMP reply within " + timeout);
            }
            Future<Integer> read = reader.submit(() -> channel.read(in));
            int n;
            try {
                n = read.get(left, TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                read.cancel(true); // closes the channel (interruptible): this client is done
                throw new IOException("no QMP reply within " + timeout + " (QEMU's main loop may be blocked)");
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IOException("QMP read failed", e.getCause());
            }
            if (n < 0) {
                throw new IOException("QMP connection closed by QEMU");
            }
            in.flip();
            pending.append(StandardCharsets.UTF_8.decode(in));
            in.clear();
        }
    }

    @Override
    public void close() {
        reader.shutdownNow();
        try {
            channel.close();
        } catch (IOException e) {
            // nothing to do
        }
    }
}
