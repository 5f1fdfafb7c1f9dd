package io.tessera.bench.kernel;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.layout.LayoutSpec;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;
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

/**
 * The fused kernel on B=1, H=8, D=64 (the reference shape). Tensors and layouts are made
 * once in setup: a call allocates nothing, so the measurement is the kernel, not page faults.
 * GFLOP/s = {@code layout.flops(D) · H / time}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
public class AttentionBenchmark {
    @Param({"simd"})
    public String backend;
    @Param({"1024", "4096"})
    public int n;
    @Param({"64"})
    public int headDim;
    @Param({"2"})
    public int threads;
    @Param({"dense"})
    public String pattern;

    public static final int HEADS = 8;

    private Arena arena;
    private Tensor q, k, v, out;
    private Attention attention;

    /** The patterns the benchmarks and the report use, by name. */
    public static Pattern pattern(String name) {
        return switch (name) {
            case "dense" -> Pattern.full();
            case "causal" -> Pattern.causal();
            case "window256" -> Pattern.slidingWindow(256);
            case "dilated" -> Pattern.dilatedWindow(128, 2);
            case "bigbird" -> Pattern.bigBird(64, 3, 1, 3, 7);
            case "longformer" -> Pattern.longformer(512, 1, 0, 1, 2, 3);
            case "strided" -> Pattern.sparseTransformerStrided(64, true);
            case "fixed" -> Pattern.sparseTransformerFixed(128, 16, true);
            default -> throw new IllegalArgumentException("unknown pattern '" + name + "'");
        };
    }

    public static LayoutSpec spec(String name) {
        return name.equals("dense") ? LayoutSpec.dense() : pattern(name);
    }

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        q = Tensor.randomNormal(arena, 1, 1f, 1, HEADS, n, headDim);
        k = Tensor.randomNormal(arena, 2, 1f, 1, HEADS, n, headDim);
        v = Tensor.randomNormal(arena, 3, 1f, 1, HEADS, n, headDim);
        out = Tensor.zeros(arena, 1, HEADS, n, headDim);
        attention = Attention.sparse(spec(pattern)).on(Backend.named(backend).withThreads(threads));
        attention.layouts(HEADS, n, n);   // compile outside the measurement
        if (backend.equals("tornado")) DeviceRowCheck.verify(attention, pattern, q, k, v, out);   // no silent fallback; the oracle on sampled rows
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public Tensor forward() {
        attention.forward(q, k, v, out);
        return out;
    }
}
