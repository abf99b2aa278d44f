package dev.vhostnet.backend;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.Mapping;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.frontend.VirtioNetDriver;
import dev.vhostnet.spec.FrontendRequest;
import dev.vhostnet.spec.ProtocolFeature;
import dev.vhostnet.spec.VirtioFeature;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Live-migration logging: with VHOST_F_LOG_ALL acknowledged and a log set by SET_LOG_BASE, every page the
 * back-end writes in the guest (RX buffers, used ring) is marked in the shared bitmap; without LOG_ALL,
 * nothing is.
 */
class DirtyLogTest {
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final long PAGE = 4096;

    @TempDir
    Path dir;
    private InProcessBackend backend;

    @BeforeEach
    void startBackend() throws Exception {
        backend = InProcessBackend.peered(dir);
    }

    @AfterEach
    void stopBackend() {
        backend.close();
    }

    @Test
    void everyPageWrittenWhileLoggingIsMarkedAndNothingElse() throws Exception {
        try (VirtioNetDriver a = backend.start(0); VirtioNetDriver b = backend.start(1)) {
            assertTrue(ProtocolFeature.has(b.protocolFeatures(), ProtocolFeature.LOG_SHMFD), "LOG_SHMFD offered");
            final long gpaBase = b.memory().gpaBase();
            final long pages = (gpaBase + b.memory().size()) / PAGE;
            final long logBytes = (pages + 7) / 8;
            final int logFd = MemFd.create("dirty-log", logBytes);
            final Mapping logMap = Mapping.map(logFd, 0, Mapping.alignUp(logBytes, PAGE), true);
            try {
                final UnsafeBuffer bitmap = new UnsafeBuffer(logMap.address(), (int) logBytes);
                final VhostUserFrontend fe = b.frontend();
                final ByteBuffer payload = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(logBytes).putLong(0);
                final VhostUserFrontend.Reply reply = fe.call(FrontendRequest.SET_LOG_BASE, payload.array(), logFd);
                assertEquals(0, reply.u64(), "SET_LOG_BASE is answered with 0");

                // Logging not yet on (no LOG_ALL): traffic marks nothing.
                b.postRxBuffers(16, 2048);
                final byte[] first = Frames.frame(600, 1);
                a.send(first);
                assertArrayEquals(first, b.receive(WAIT));
                assertEquals(List.of(), dirtyPages(bitmap, logBytes), "no LOG_ALL, no marks");

                // Migration starts: QEMU re-sends SET_FEATURES with VHOST_F_LOG_ALL while the rings run.
                fe.setFeatures(b.features() | VirtioFeature.bit(VirtioFeature.VHOST_F_LOG_ALL));
                final byte[] second = Frames.frame(1400, 2);
                a.send(second);
                assertArrayEquals(second, b.receive(WAIT));
                final List<Long> dirty = dirtyPages(bitmap, logBytes);
                final long usedRingPage = (gpaBase + (b.rx().usedUva() - b.memory().uvaBase())) / PAGE;
                assertTrue(dirty.contains(usedRingPage), "used ring page " + usedRingPage + " marked, got " + dirty);
                assertTrue(dirty.size() >= 2, "an RX buffer page is marked too: " + dirty);
                for (final long page : dirty) {
                    assertTrue(page >= gpaBase / PAGE && page < pages, "page " + page + " is guest B's memory");
                }

                // Migration done: LOG_ALL off, bitmap cleared; further traffic marks nothing.
                fe.setFeatures(b.features());
                bitmap.setMemory(0, (int) logBytes, (byte) 0);
                final byte[] third = Frames.frame(900, 3);
                a.send(third);
                assertArrayEquals(third, b.receive(WAIT));
                assertEquals(List.of(), dirtyPages(bitmap, logBytes), "logging stopped");
            } finally {
                logMap.close();
                FileDescriptors.closeQuietly(logFd);
            }
        }
    }

    private static List<Long> dirtyPages(final UnsafeBuffer bitmap, final long bytes) {
        final List<Long> pages = new ArrayList<>();
        for (int i = 0; i < bytes; i++) {
            final int v = bitmap.getByteVolatile(i) & 0xFF;
            for (int bit = 0; bit < 8; bit++) {
                if ((v & (1 << bit)) != 0) {
                    pages.add(i * 8L + bit);
                }
            }
        }
        return pages;
    }
}
