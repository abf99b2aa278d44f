package dev.vhostnet.e2e.dpdk;

/**
 * One port's block of testpmd's periodic {@code --stats-period} output. Counters are cumulative since
 * the port started; the pps figures cover the interval since the previous block (testpmd measures that
 * interval itself). {@code nanoTime} is when the harness read the block, by {@link System#nanoTime()}.
 */
public record PortSnapshot(int port, long nanoTime, long rxPackets, long rxMissed, long txPackets, long txErrors,
                           long rxPps, long txPps) {
}
