package dev.vhostnet.e2e.dpdk;

/**
 * A back-end's own account of the loop, per direction: packets it took from the sending port's TX
 * queue and packets it placed in the receiving port's RX queue. A = port 0's socket, B = port 1's.
 */
public record BackEndCounters(long takenFromA, long deliveredToB, long takenFromB, long deliveredToA) {
}
