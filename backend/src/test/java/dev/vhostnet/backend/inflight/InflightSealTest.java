package dev.vhostnet.backend.inflight;

import dev.vhostnet.backend.InProcessBackend;
import dev.vhostnet.backend.OpenFds;
import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.MemFd;
import dev.vhostnet.dataplane.sys.Seals;
import dev.vhostnet.dataplane.virtq.InflightBuffer;
import dev.vhostnet.frontend.VhostUserFrontend;
import dev.vhostnet.spec.ProtocolFeature;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The inflight buffer cannot shrink under the back-end's mapping: the memfd it hands out (GET_INFLIGHT_FD) is
 * sealed as QEMU seals its memory, one the front-end brings (SET_INFLIGHT_FD) is sealed before it is mapped,
 * and one that cannot be sealed is refused.
 */
class InflightSealTest {
    private static final int QUEUE_SIZE = 256;

    @TempDir
    Path dir;

    private static int shrink(final int fd) {
        return LibC.INSTANCE.ftruncate(fd, 0) == 0 ? 0 : LibC.errno();
    }

    @Test
    void handedOutAndReceivedInflightBuffersAreSealedAndUnsealableOnesRefused() throws Exception {
        try (InProcessBackend backend = InProcessBackend.single(dir);
             VhostUserFrontend fe = VhostUserFrontend.connect(backend.socket(0))) {
            fe.setOwner();
            fe.getFeatures();
            fe.setProtocolFeatures(ProtocolFeature.bit(ProtocolFeature.INFLIGHT_SHMFD)
                | ProtocolFeature.bit(ProtocolFeature.REPLY_ACK));
            final InflightMessages.Inflight ours = InflightMessages.get(fe, 2, QUEUE_SIZE);
            try {
                assertEquals(MemFd.HANDED_OUT_SEALS, Seals.get(ours.fd()), "GET_INFLIGHT_FD: SHRINK | GROW | SEAL");
                assertEquals(LibC.EPERM, shrink(ours.fd()));
                InflightMessages.set(fe, ours); // accepted as sealed already
            } finally {
                FileDescriptors.closeQuietly(ours.fd());
            }
            final long size = InflightBuffer.bufferSize(2, QUEUE_SIZE);
            final int own = MemFd.create("fe-inflight", size);
            try {
                InflightMessages.set(fe, new InflightMessages.Inflight(size, 0, 2, QUEUE_SIZE, own));
                assertEquals(LibC.EPERM, shrink(own), "SET_INFLIGHT_FD sealed the front-end's memfd");
            } finally {
                FileDescriptors.closeQuietly(own);
            }
            final long fds = OpenFds.count();
            final int unsealable = MemFd.create("fe-inflight", size, LibC.MFD_CLOEXEC);
            try {
                assertThrows(VhostUserFrontend.Rejected.class,
                    () -> InflightMessages.set(fe, new InflightMessages.Inflight(size, 0, 2, QUEUE_SIZE, unsealable)));
                assertEquals(0, shrink(unsealable), "untouched: still the front-end's to resize");
            } finally {
                FileDescriptors.closeQuietly(unsealable);
            }
            OpenFds.awaitBackTo(fds, "refused SET_INFLIGHT_FD");
            assertEquals(ProtocolFeature.bit(ProtocolFeature.INFLIGHT_SHMFD),
                fe.getProtocolFeatures() & ProtocolFeature.bit(ProtocolFeature.INFLIGHT_SHMFD), "connection still served");
        }
    }
}
