package dev.vhostnet.bench.e2e;

import dev.vhostnet.e2e.dpdk.BackendUnderTest;
import dev.vhostnet.e2e.dpdk.DpdkVhostReference;
import dev.vhostnet.e2e.dpdk.LoopSession;
import java.time.Duration;

/** A back-end the benchmark measures: ours, or DPDK's vhost PMD as the reference. */
enum Contender {
    OURS("vhost-user-net") {
        @Override
        LoopSession.BackEndStarter starter(int queues, Duration timeout) {
            return sockets -> BackendUnderTest.start(sockets, timeout);
        }
    },
    DPDK("dpdk-vhost") {
        @Override
        LoopSession.BackEndStarter starter(int queues, Duration timeout) {
            return sockets -> DpdkVhostReference.start(sockets, queues, timeout);
        }
    };

    private final String label;

    Contender(String label) {
        this.label = label;
    }

    String label() {
        return label;
    }

    abstract LoopSession.BackEndStarter starter(int queues, Duration timeout);
}
