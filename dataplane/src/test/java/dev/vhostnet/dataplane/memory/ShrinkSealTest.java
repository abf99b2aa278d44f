package dev.vhostnet.dataplane.memory;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.sys.Seals;
import dev.vhostnet.dataplane.testing.PosixFiles;
import dev.vhostnet.dataplane.virtq.InflightBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.IntConsumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every way shared memory enters the dataplane (guest regions, the dirty log, inflight buffers) seals the file
 * against shrinking before it is sized and mapped, accepts files sealed already, and refuses files that cannot
 * be sealed unless told to allow them. The "front-end" here keeps its own fd and tries to shrink the file.
 */
class ShrinkSealTest {
    private static final long SIZE = 1 << 20;
    private static final long GPA = 0x1_0000_0000L;
    private static final long UVA = 0x7f00_0000_0000L;

    @TempDir
    Path dir;

    /** ftruncate's errno, or 0 if it succeeded. */
    private static int shrink(final int fd, final long size) {
        return LibC.INSTANCE.ftruncate(fd, size) == 0 ? 0 : LibC.errno();
    }

    @Test
    void aSealableMemfdIsSealedSoTheFrontEndCannotShrinkItUnderTheMapping() {
        final int fd = MemFd.create("sealable", SIZE);
        try (GuestRegion region = GuestRegion.map(GPA, SIZE, UVA, 0, FileDescriptors.dup(fd), UnsealedMemory.REFUSE)) {
            assertTrue(Seals.has(Seals.get(fd), LibC.F_SEAL_SHRINK), "F_SEAL_SHRINK added");
            assertFalse(region.isShrinkable());
            assertEquals(LibC.EPERM, shrink(fd, 4096), "shrinking to one page is refused by the seal");
            assertEquals(LibC.EPERM, shrink(fd, 0), "shrinking to nothing is refused by the seal");
            assertEquals(SIZE, FileDescriptors.size(fd));
            // The last page is still there for the back-end and shared with the front-end.
            final UnsafeBuffer mapped = new UnsafeBuffer(region.hostAddr(), (int) SIZE);
            mapped.putLong((int) SIZE - 8, 0x5ea1ed);
            assertTrue(region.isIntact());
            assertEquals(0, shrink(fd, 2 * SIZE), "only shrinking is sealed: growing stays allowed");
        } finally {
            FileDescriptors.closeQuietly(fd);
        }
    }

    @Test
    void aMemfdSealedLikeQemuDoesIsAcceptedAsItIs() {
        final int fd = MemFd.create("qemu-like", SIZE);
        try {
            assertEquals(0, Seals.add(fd, MemFd.HANDED_OUT_SEALS)); // F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL
            try (GuestRegion region = GuestRegion.map(GPA, SIZE, UVA, 0, FileDescriptors.dup(fd), UnsealedMemory.REFUSE)) {
                assertFalse(region.isShrinkable());
                assertEquals(MemFd.HANDED_OUT_SEALS, Seals.get(fd), "nothing added");
            }
        } finally {
            FileDescriptors.closeQuietly(fd);
        }
    }

    @Test
    void theSealIsOnBeforeTheSizeIsChecked() {
        final int fd = MemFd.create("short", SIZE);
        try {
            final int dup = FileDescriptors.dup(fd);
            assertThrows(InvalidMemoryException.class,
                () -> GuestRegion.map(GPA, 2 * SIZE, UVA, 0, dup, UnsealedMemory.REFUSE), "beyond the end of the fd");
            assertFalse(FileDescriptors.isOpen(dup));
            // Sealed although refused: a size check of an unsealed file could be raced by a truncation.
            assertTrue(Seals.has(Seals.get(fd), LibC.F_SEAL_SHRINK));
        } finally {
            FileDescriptors.closeQuietly(fd);
        }
    }

    /** Files no seal can protect: DPDK's memfds, a memfd whose sender sealed the seals, tmpfs and regular files. */
    private interface Unsealable {
        int open() throws Exception;
    }

    private Unsealable[] unsealables() {
        return new Unsealable[] {
            () -> MemFd.create("born-sealed", SIZE, LibC.MFD_CLOEXEC),
            () -> {
                final int fd = MemFd.create("seal-sealed", SIZE);
                assertEquals(0, Seals.add(fd, LibC.F_SEAL_SEAL | LibC.F_SEAL_GROW));
                return fd;
            },
            () -> {
                final Path shm = Path.of("/dev/shm", "vhostnet-seal-test-" + ProcessHandle.current().pid());
                final int fd = PosixFiles.create(shm, SIZE);
                Files.delete(shm);
                return fd;
            },
            () -> PosixFiles.create(dir.resolve("regular"), SIZE),
        };
    }

    @Test
    void filesThatCannotBeSealedAreRefusedWithTheReasonAndTheFdClosed() throws Exception {
        for (final Unsealable u : unsealables()) {
            final int fd = u.open();
            try {
                final int dup = FileDescriptors.dup(fd);
                final InvalidMemoryException e = assertThrows(InvalidMemoryException.class,
                    () -> GuestRegion.map(GPA, SIZE, UVA, 0, dup, UnsealedMemory.REFUSE));
                assertTrue(e.getMessage().contains("can be truncated under us")
                    && e.getMessage().contains("--unsealed-memory allow"), e.getMessage());
                assertFalse(FileDescriptors.isOpen(dup), "refused fd closed");
                assertEquals(SIZE, FileDescriptors.size(fd));
            } finally {
                FileDescriptors.closeQuietly(fd);
            }
        }
    }

    @Test
    void allowMapsThemAndTheRegionKnowsItCanShrink() throws Exception {
        for (final Unsealable u : unsealables()) {
            final int fd = u.open();
            try (GuestRegion region = GuestRegion.map(GPA, SIZE, UVA, 0, FileDescriptors.dup(fd), UnsealedMemory.ALLOW)) {
                assertTrue(region.isShrinkable());
                assertTrue(region.isIntact());
                // What ALLOW trusts the sender not to do (the mapping is not touched after this).
                assertEquals(0, shrink(fd, 4096));
                assertFalse(region.isIntact());
            } finally {
                FileDescriptors.closeQuietly(fd);
            }
        }
    }

    @Test
    void theDirtyLogIsSealedOrRefused() {
        final int fd = MemFd.create("log", 8192);
        try (DirtyLog log = DirtyLog.map(FileDescriptors.dup(fd), 8192, 0, UnsealedMemory.REFUSE)) {
            assertEquals(LibC.EPERM, shrink(fd, 0));
            log.mark(0, 4096);
            assertTrue(log.isDirty(0));
        } finally {
            FileDescriptors.closeQuietly(fd);
        }
        refused(dup -> DirtyLog.map(dup, 8192, 0, UnsealedMemory.REFUSE));
    }

    @Test
    void inflightBuffersAreSealedBothWays() {
        // GET_INFLIGHT_FD: the memfd we hand out is sealed as QEMU seals its own.
        final int[] out = {-1};
        try (InflightBuffer created = InflightBuffer.create(2, 256, out)) {
            assertEquals(MemFd.HANDED_OUT_SEALS, Seals.get(out[0]));
            assertEquals(LibC.EPERM, shrink(out[0], 0));
            // SET_INFLIGHT_FD with that fd (e.g. after a restart of the back-end): accepted as sealed.
            final long size = created.size();
            try (InflightBuffer back = InflightBuffer.map(FileDescriptors.dup(out[0]), size, 0, 2, 256,
                UnsealedMemory.REFUSE)) {
                assertEquals(size, back.size());
            }
        } finally {
            FileDescriptors.closeQuietly(out[0]);
        }
        final long size = InflightBuffer.bufferSize(2, 256);
        final int fd = MemFd.create("inflight", size);
        try (InflightBuffer b = InflightBuffer.map(FileDescriptors.dup(fd), size, 0, 2, 256, UnsealedMemory.REFUSE)) {
            assertEquals(LibC.EPERM, shrink(fd, 0), "a front-end's own inflight memfd is sealed on SET_INFLIGHT_FD");
        } finally {
            FileDescriptors.closeQuietly(fd);
        }
        refused(dup -> InflightBuffer.map(dup, size, 0, 2, 256, UnsealedMemory.REFUSE));
    }

    /** {@code mapper} refuses an unsealable memfd with InvalidMemoryException and closes it. */
    private static void refused(final IntConsumer mapper) {
        final int fd = MemFd.create("unsealable", 1 << 16, LibC.MFD_CLOEXEC);
        try {
            final int dup = FileDescriptors.dup(fd);
            assertThrows(InvalidMemoryException.class, () -> mapper.accept(dup));
            assertFalse(FileDescriptors.isOpen(dup));
        } finally {
            FileDescriptors.closeQuietly(fd);
        }
    }
}
