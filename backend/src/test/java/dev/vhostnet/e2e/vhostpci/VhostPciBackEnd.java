package dev.vhostnet.e2e.vhostpci;

import dev.vhostnet.e2e.dpdk.BackEndCounters;
import dev.vhostnet.e2e.dpdk.BackendUnderTest;
import dev.vhostnet.e2e.dpdk.CpuLayout;
import dev.vhostnet.e2e.dpdk.E2eLogs;
import dev.vhostnet.e2e.dpdk.LoggedProcess;
import dev.vhostnet.e2e.dpdk.SocketFiles;
import dev.vhostnet.e2e.dpdk.VhostBackEnd;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * For main's DPDK loop harness ({@code dev.vhostnet.e2e.dpdk}): our back-end as two processes joined over
 * vhost-pci, socket A served by the device side and socket B by the client side, both pinned like
 * {@link BackendUnderTest} (the device side does all the forwarding; the client side idles while delegated).
 * {@link #start} returns once the two have joined: before that each drops what its front-end sends (no peer),
 * which would end a {@code --tx-first} loop (its only burst lost); the client's first connect can come before
 * the device side listens, and then it retries only a second later.
 */
public final class VhostPciBackEnd implements VhostBackEnd {
    private static final Duration STOP_GRACE = Duration.ofSeconds(20);

    private final LoggedProcess device;
    private final LoggedProcess client;

    private VhostPciBackEnd(LoggedProcess device, LoggedProcess client) {
        this.device = device;
        this.client = client;
    }

    public static VhostPciBackEnd start(SocketFiles sockets, Duration timeout, String... extraArgs)
            throws IOException, InterruptedException {
        Path pci = sockets.a().resolveSibling("pci.sock");
        LoggedProcess device = launch("vhost-pci-device", sockets.a(), List.of("--vhost-pci-listen", pci.toString()),
                line -> { }, extraArgs);
        LoggedProcess client;
        CountDownLatch joined = new CountDownLatch(1);
        try {
            client = launch("vhost-pci-client", sockets.b(), List.of("--vhost-pci-connect", pci.toString()),
                    line -> {
                        if (line.contains("vhost-pci: connected to device side")) {
                            joined.countDown();
                        }
                    }, extraArgs);
        } catch (IOException | RuntimeException e) {
            device.close();
            throw e;
        }
        VhostPciBackEnd b = new VhostPciBackEnd(device, client);
        try {
            sockets.awaitBoth(timeout, () -> device.isAlive() && client.isAlive(),
                    () -> "device: " + device.tail() + System.lineSeparator() + "client: " + client.tail());
            if (!joined.await(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new IllegalStateException("the client did not join the device side within " + timeout
                        + System.lineSeparator() + "device: " + device.tail() + System.lineSeparator() + "client: "
                        + client.tail());
            }
        } catch (RuntimeException | InterruptedException e) {
            b.close();
            throw e;
        }
        return b;
    }

    private static LoggedProcess launch(String role, Path socket, List<String> roleArgs,
                                        Consumer<String> listener, String... extraArgs)
            throws IOException {
        List<String> command = new ArrayList<>(List.of("taskset", "-c", Integer.toString(CpuLayout.BACKEND_CORE),
                Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.addAll(split(System.getProperty("e2e.backend.jvmArgs", "")));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), BackendUnderTest.MAIN_CLASS,
                "--socket-path", socket.toString(), "--stats-interval", "1",
                // DPDK's virtio_user memory (memfd_create("nohuge", 0)) cannot be sealed against shrinking; the
                // device side maps the same fds.
                "--unsealed-memory", "allow"));
        command.addAll(roleArgs);
        command.addAll(split(System.getProperty("e2e.backend.args", "")));
        command.addAll(Arrays.asList(extraArgs));
        return LoggedProcess.start(role, command, E2eLogs.newLogFile(role), listener);
    }

    private static List<String> split(String args) {
        return args.isBlank() ? List.of() : Arrays.asList(args.trim().split("\\s+"));
    }

    @Override
    public String name() {
        return "vhost-user-net over vhost-pci (two processes)";
    }

    @Override
    public Path log() {
        return device.log();
    }

    public Path clientLog() {
        return client.log();
    }

    /** SIGTERM to both (the device side hands the client's device back first). No counters: two processes. */
    @Override
    public Optional<BackEndCounters> stop() {
        device.stop(null, STOP_GRACE);
        client.stop(null, STOP_GRACE);
        return Optional.empty();
    }

    @Override
    public void close() {
        try {
            device.close();
        } finally {
            client.close();
        }
    }
}
