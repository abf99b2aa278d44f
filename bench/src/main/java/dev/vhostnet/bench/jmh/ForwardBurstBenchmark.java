package dev.vhostnet.bench.jmh;

import dev.vhostnet.dataplane.net.PacketForwarder;
import dev.vhostnet.dataplane.net.VirtioNetPort;
import dev.vhostnet.dataplane.testing.DriverSplitRing;
import dev.vhostnet.dataplane.testing.TestGuest;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.spec.VirtioFeature;
import dev.vhostnet.spec.VirtioNetFeature;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * One forwarding burst of peer mode: 32 frames from guest A's TX ring into guest B's RX ring (mergeable
 * buffers, VERSION_1 header), including both drivers' work of refilling and reaping. Per frame.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class ForwardBurstBenchmark {
    private static final int BURST = 32;
    private static final int HEADER = 12;

    @Param({"64", "1518"})
    public int frame;

    private TestGuest guestA;
    private TestGuest guestB;
    private DriverSplitRing txA;
    private DriverSplitRing rxB;
    private VirtioNetPort portA;
    private VirtioNetPort portB;
    private final PacketForwarder forwarder = new PacketForwarder();
    private long[] txGpa;
    private int[] txLen;
    private boolean[] txWritable;
    private long[] rxGpa;
    private int[] rxLen;
    private boolean[] rxWritable;

    @Setup(Level.Trial)
    public void setUp() {
        final long features = VirtioFeature.bit(VirtioFeature.VERSION_1) | VirtioFeature.bit(VirtioNetFeature.MRG_RXBUF);
        guestA = new TestGuest(8L << 20);
        guestB = new TestGuest(8L << 20);
        portA = new VirtioNetPort("A");
        portB = new VirtioNetPort("B");
        portA.setFeatures(features);
        portB.setFeatures(features);
        txA = new DriverSplitRing(guestA, 256);
        final DriverSplitRing rxA = new DriverSplitRing(guestA, 256);
        rxB = new DriverSplitRing(guestB, 256);
        final DriverSplitRing txB = new DriverSplitRing(guestB, 256);
        start(portA, 1, guestA, txA);
        start(portA, 0, guestA, rxA);
        start(portB, 0, guestB, rxB);
        start(portB, 1, guestB, txB);
        final long txBuf = guestA.alloc(HEADER + frame, 64);
        guestA.bytes.setMemory((int) txBuf, HEADER, (byte) 0);
        txGpa = new long[] {guestA.gpa(txBuf)};
        txLen = new int[] {HEADER + frame};
        txWritable = new boolean[] {false};
        rxGpa = new long[] {guestB.gpa(guestB.alloc(2048, 64))};
        rxLen = new int[] {2048};
        rxWritable = new boolean[] {true};
    }

    private static void start(final VirtioNetPort port, final int q, final TestGuest g, final DriverSplitRing r) {
        port.queue(q).setEnabled(true);
        final QueueError e = port.queue(q).start(g.memory, r.size, g.uva(r.descOffset), g.uva(r.availOffset),
            g.uva(r.usedOffset), 0);
        if (e != QueueError.NONE) {
            throw new IllegalStateException(e.description());
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        guestA.close();
        guestB.close();
    }

    @Benchmark
    @OperationsPerInvocation(BURST)
    public int burst() {
        for (int i = 0; i < BURST; i++) {
            txA.add(txGpa, txLen, txWritable);
            rxB.add(rxGpa, rxLen, rxWritable);
        }
        final int forwarded = forwarder.forward(portA, portB);
        if (forwarded != BURST) {
            throw new IllegalStateException("forwarded " + forwarded);
        }
        return txA.reapAll() + rxB.reapAll();
    }
}
