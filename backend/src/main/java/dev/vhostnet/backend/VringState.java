package dev.vhostnet.backend;

import dev.vhostnet.dataplane.sys.EventFd;

/** What the front-end told us about one vring, as the control plane keeps it (control thread only). */
final class VringState {
    int num;
    long descUserAddr;
    long usedUserAddr;
    long availUserAddr;
    long logGuestAddr;
    long addrFlags;
    boolean addressed;
    int base;
    EventFd kick;
    EventFd call;
    EventFd err;
    /** Kick received (or "no fd": polling) and not stopped by GET_VRING_BASE since. */
    boolean started;
    boolean enabled;

    void clearRing() {
        num = 0;
        addressed = false;
        base = 0;
        started = false;
        enabled = false;
    }
}
