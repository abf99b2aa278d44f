package dev.vhostnet.bench.jmh;

import dev.vhostnet.dataplane.testing.DriverPackedRing;
import dev.vhostnet.dataplane.testing.TestGuest;
import dev.vhostnet.dataplane.virtq.DescriptorChain;
import dev.vhostnet.dataplane.virtq.PackedVirtqueue;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.QueueError;
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

/** Device-side walk of a packed ring, burst of 32 chains: available, pop, complete, publish, reap. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class PackedRingBenchmark {
    private static final int BURST = 32;

    @Param({"1", "4"})
    public int descriptors;

    private TestGuest guest;
    private DriverPackedRing driver;
    private PackedVirtqueue queue;
    private final DescriptorChain popped = new DescriptorChain(64);
    private long[] gpas;
    private int[] lens;
    private boolean[] writable;
    private int nextId;

    @Setup(Level.Trial)
    public void setUp() {
        guest = new TestGuest(8L << 20);
        driver = new DriverPackedRing(guest, 256);
        queue = new PackedVirtqueue(0, new QueueCounters());
        queue.setFeatures(false, false);
        queue.setEnabled(true);
        final QueueError e = queue.start(guest.memory, 256, guest.uva(driver.ringOffset),
            guest.uva(driver.driverEventOffset), guest.uva(driver.deviceEventOffset), 0x8000 | (0x8000 << 16));
        if (e != QueueError.NONE) {
            throw new IllegalStateException(e.description());
        }
        final long buffers = guest.alloc(4096L * descriptors, 64);
        gpas = new long[descriptors];
        lens = new int[descriptors];
        writable = new boolean[descriptors];
        for (int i = 0; i < descriptors; i++) {
            gpas[i] = guest.gpa(buffers + 1024L * i);
            lens[i] = i == 0 ? 76 : 256;
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        guest.close();
    }

    @Benchmark
    @OperationsPerInvocation(BURST)
    public long burst() {
        for (int i = 0; i < BURST; i++) {
            driver.add(nextId++ & 255, gpas, lens, writable);
        }
        long bytes = 0;
        while (queue.available() > 0) {
            if (!queue.pop(popped)) {
                throw new IllegalStateException(queue.error().description());
            }
            bytes += popped.readBytes();
            queue.addUsed(popped, 0);
        }
        queue.publishUsed();
        return bytes + driver.reapAll();
    }
}
