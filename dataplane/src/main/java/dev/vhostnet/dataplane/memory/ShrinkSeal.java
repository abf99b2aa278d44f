package dev.vhostnet.dataplane.memory;

import dev.vhostnet.dataplane.sys.FileDescriptors;
import dev.vhostnet.dataplane.sys.LibC;
import dev.vhostnet.dataplane.sys.Seals;

import java.util.logging.Logger;

/**
 * Makes sure a received shared-memory fd cannot shrink under our mapping before we check its size and map it:
 * a truncated file turns every access to the lost pages into SIGBUS, and HotSpot's recovery of faulting Unsafe
 * accesses holds only for some instructions (it aborts the JVM on others), so the seal is the defence, not
 * the fault handling. Seals are permanent, so once F_SEAL_SHRINK is on the file the size check that follows
 * cannot be raced.
 */
public final class ShrinkSeal {
    private static final Logger LOG = Logger.getLogger(ShrinkSeal.class.getName());

    /** How a file ended up protected, or not. */
    public enum Outcome {
        /** The sender had sealed it already (QEMU's memory-backend-memfd does, by default). */
        SEALED_BEFORE,
        /** We added F_SEAL_SHRINK. */
        SEALED_NOW,
        /** It cannot be sealed and {@link UnsealedMemory#ALLOW} let it through: it can still shrink. */
        UNSEALED
    }

    private ShrinkSeal() {
    }

    /**
     * Seal {@code fd} against shrinking, or check that it is sealed, or apply {@code policy} when neither is
     * possible. Does not close {@code fd}.
     *
     * @param what what the fd is for, for messages ("region 2", "dirty log")
     * @throws InvalidMemoryException if the file can shrink and the policy refuses it
     */
    public static Outcome apply(final int fd, final UnsealedMemory policy, final String what) {
        final int seals = Seals.get(fd);
        if (Seals.has(seals, LibC.F_SEAL_SHRINK)) {
            return Outcome.SEALED_BEFORE;
        }
        if (seals != Seals.UNSUPPORTED && (seals & LibC.F_SEAL_SEAL) == 0) {
            if (Seals.add(fd, LibC.F_SEAL_SHRINK) == 0) {
                return Outcome.SEALED_NOW;
            }
            // The sender raced us with F_SEAL_SEAL: fall through to what the file has now.
            if (Seals.has(Seals.get(fd), LibC.F_SEAL_SHRINK)) {
                return Outcome.SEALED_BEFORE;
            }
        }
        final String problem = what + " (" + describe(fd) + ") can be truncated under us: "
            + (seals == Seals.UNSUPPORTED ? "its file type has no seals (a regular file, or not a file)"
                : "F_SEAL_SHRINK cannot be added, F_SEAL_SEAL is set (a tmpfs or hugetlbfs file, or a memfd "
                    + "created without MFD_ALLOW_SEALING or sealed without F_SEAL_SHRINK)");
        if (policy == UnsealedMemory.ALLOW) {
            LOG.info(problem + "; mapped anyway (--unsealed-memory allow trusts its sender)");
            return Outcome.UNSEALED;
        }
        throw new InvalidMemoryException(problem + "; refused (--unsealed-memory refuse): back guest memory with "
            + "memory-backend-memfd, which seals it (hugetlb=on for huge pages), or start the back-end with "
            + "--unsealed-memory allow to trust this front-end with the process");
    }

    /** The file behind {@code fd} as /proc names it ("/memfd:guest (deleted)", "/dev/shm/vm0"), for messages. */
    static String describe(final int fd) {
        final String name = FileDescriptors.procName(fd);
        return name == null ? "fd " + fd : "fd " + fd + " = " + name;
    }
}
