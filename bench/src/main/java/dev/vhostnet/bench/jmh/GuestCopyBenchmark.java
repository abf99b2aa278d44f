package dev.vhostnet.bench.jmh;

import dev.vhostnet.dataplane.testing.TestGuest;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import sun.misc.Unsafe;

import java.util.concurrent.TimeUnit;

/** The one copy of peer mode: guest memory to guest memory (two memfd mappings), 64 B / 1518 B / 64 KiB. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class GuestCopyBenchmark {
    private static final Unsafe UNSAFE = org.agrona.UnsafeAccess.UNSAFE;

    @Param({"64", "1518", "65536"})
    public int bytes;

    private TestGuest from;
    private TestGuest to;
    private long src;
    private long dst;

    @Setup(Level.Trial)
    public void setUp() {
        from = new TestGuest(1L << 20);
        to = new TestGuest(1L << 20);
        src = from.bytes.addressOffset() + from.alloc(bytes, 64);
        dst = to.bytes.addressOffset() + to.alloc(bytes, 64);
        UNSAFE.setMemory(src, bytes, (byte) 0x5A);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        from.close();
        to.close();
    }

    @Benchmark
    public byte copy() {
        UNSAFE.copyMemory(src, dst, bytes);
        return UNSAFE.getByte(dst + bytes - 1);
    }
}
