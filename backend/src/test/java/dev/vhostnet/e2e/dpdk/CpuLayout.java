package dev.vhostnet.e2e.dpdk;

/**
 * Core placement for the two-core test machine. Two busy pollers must never share a core, so the
 * virtio_user front-end forwards on core 1 and whichever back-end is under test polls on core 0. The
 * testpmd main lcores only print statistics and mostly sleep, so they may share a core with a poller.
 */
public final class CpuLayout {
    /** Core the back-end under test (ours or DPDK's vhost PMD) polls on. */
    public static final int BACKEND_CORE = Integer.getInteger("e2e.backendCore", 0);
    /** Core the front-end testpmd forwards on. */
    public static final int FRONT_END_CORE = Integer.getInteger("e2e.frontEndCore", 1);

    private CpuLayout() {
    }

    /** EAL core arguments for a testpmd whose only forwarding lcore is {@code forwardingCore}. */
    static String[] ealCores(int forwardingCore, int mainCore) {
        return new String[] {"-l", Math.min(forwardingCore, mainCore) + "," + Math.max(forwardingCore, mainCore),
                "--main-lcore", Integer.toString(mainCore)};
    }
}
