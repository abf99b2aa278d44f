package dev.vhostnet.e2e.dpdk;

/**
 * One port's totals from the "Forward statistics" testpmd prints when forwarding stops. In io mode a
 * TX-dropped packet was received but refused by the transmit queue, and has been freed.
 */
public record ForwardStats(int port, long rxPackets, long rxDropped, long txPackets, long txDropped) {
}
