package dev.vhostnet.dataplane.agent;

/** How the dataplane waits when there is no traffic. */
public enum PollMode {
    /** Spin on the rings forever: lowest latency, one core always busy. */
    BUSY,
    /** Spin while busy; when idle for a while, re-enable kicks and sleep on the kick eventfds (epoll). */
    ADAPTIVE
}
