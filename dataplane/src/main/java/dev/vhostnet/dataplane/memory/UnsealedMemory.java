package dev.vhostnet.dataplane.memory;

/**
 * What to do with shared memory whose file cannot be sealed against shrinking (hugetlbfs or tmpfs files of
 * QEMU's memory-backend-file, DPDK's memfds, memfds sealed with F_SEAL_SEAL but not F_SEAL_SHRINK). Whoever
 * holds such a file can truncate it under our mapping; the next access raises SIGBUS, which no mapping
 * option prevents and which HotSpot cannot always survive (it aborts on some faulting instructions). So
 * accepting such memory trusts its sender with the whole process.
 */
public enum UnsealedMemory {
    /** Refuse the region, log, dirty log or inflight buffer (the message fails; the default). */
    REFUSE,
    /** Map it anyway (logged): the sender is trusted not to shrink it. */
    ALLOW
}
