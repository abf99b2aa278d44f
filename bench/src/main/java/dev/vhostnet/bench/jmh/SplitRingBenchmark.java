package dev.vhostnet.bench.jmh;

import dev.vhostnet.dataplane.testing.DriverSplitRing;
import dev.vhostnet.dataplane.testing.TestGuest;
import dev.vhostnet.dataplane.virtq.DescriptorChain;
import dev.vhostnet.dataplane.virtq.QueueCounters;
import dev.vhostnet.dataplane.virtq.QueueError;
import dev.vhostnet.dataplane.virtq.SplitVirtqueue;
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
 * Device-side walk of a split ring: one burst of 32 chains made available by the driver, popped (validated
 * and translated), completed and published, then reaped by the driver. Per chain; the driver's share of the
 * work is included, as it is in the real loop.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class SplitRingBenchmark {
    private static final int BURST = 32;

    /** Descriptors per chain; "indirect" puts 4 descriptors behind one indirect descriptor. */
    @Param({"1", "4", "indirect"})
    public String chain;

    private TestGuest guest;
    private DriverSplitRing driver;
    private SplitVirtqueue queue;
    private final DescriptorChain popped = new DescriptorChain(64);
    private long[] gpas;
    private int[] lens;
    private boolean[] writable;
    private long[] tableOffsets;
    private int nextTable;

    @Setup(Level.Trial)
    public void setUp() {
        guest = new TestGuest(8L << 20);
        driver = new DriverSplitRing(guest, 256);
        queue = new SplitVirtqueue(0, new QueueCounters());
        queue.setFeatures(false, true);
        queue.setEnabled(true);
        final QueueError e = queue.start(guest.memory, 256, guest.uva(driver.descOffset), guest.uva(driver.availOffset),
            guest.uva(driver.usedOffset), 0);
        if (e != QueueError.NONE) {
            throw new IllegalStateException(e.description());
        }
        final int n = "1".equals(chain) ? 1 : 4;
        final long buffers = guest.alloc(4096L * n, 64);
        gpas = new long[n];
        lens = new int[n];
        writable = new boolean[n];
        for (int i = 0; i < n; i++) {
            gpas[i] = guest.gpa(buffers + 1024L * i);
            lens[i] = i == 0 ? 76 : 256;
        }
        tableOffsets = new long[BURST];
        for (int i = 0; i < BURST; i++) {
            tableOffsets[i] = guest.alloc(16L * n, 16);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        guest.close();
    }

    @Benchmark
    @OperationsPerInvocation(BURST)
    public long burst() {
        final boolean indirect = "indirect".equals(chain);
        for (int i = 0; i < BURST; i++) {
            if (indirect) {
                final long t = tableOffsets[nextTable++ & (BURST - 1)];
                driver.addIndirect(t, guest.gpa(t), gpas, lens, writable);
            } else {
                driver.add(gpas, lens, writable);
            }
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
