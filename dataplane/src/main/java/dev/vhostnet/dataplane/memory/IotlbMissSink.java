package dev.vhostnet.dataplane.memory;

/** Where a queue reports IOTLB misses and permission failures (the back-end channel to the front-end). */
public interface IotlbMissSink {
    /** Ask the front-end for a translation of {@code iova} with {@code perm} (IOTLB miss). */
    void miss(long iova, int perm);

    /** Tell the front-end an access to {@code iova} was denied by the mapping's permissions. */
    void accessFailed(long iova, int perm);
}
