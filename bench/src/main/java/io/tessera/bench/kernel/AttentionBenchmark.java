package io.tessera.bench.kernel;

import io.tessera.attention.Attention;
import io.tessera.kernel.Backend;
import io.tessera.pattern.BlockLayout;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.HeadLayouts;
import io.tessera.pattern.LayoutSpec;
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
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
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

    /** Layout specs by name; structured ones come from the pattern compiler when it is there. */
    public static LayoutSpec spec(String pattern) {
        return switch (pattern) {
            case "dense" -> LayoutSpec.dense();
            case "causal" -> predicateSpec("causal", (n) -> (i, j) -> CausalAlignment.TOP_LEFT.allows(i, j, n, n));
            case "window256" -> predicateSpec("window ±256", (n) -> (i, j) -> Math.abs(i - j) <= 256);
            default -> throw new IllegalArgumentException("unknown pattern '" + pattern + "'");
        };
    }

    private interface PredicateFactory { io.tessera.pattern.ElementPredicate at(int n); }

    private static LayoutSpec predicateSpec(String name, PredicateFactory f) {
        return (heads, qLen, kvLen, bq, bkv) -> HeadLayouts.shared(BlockLayout.fromPredicate(name, qLen, kvLen, bq, bkv, f.at(qLen)));
    }

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        q = Tensor.randomNormal(arena, 1, 1f, 1, HEADS, n, headDim);
        k = Tensor.randomNormal(arena, 2, 1f, 1, HEADS, n, headDim);
        v = Tensor.randomNormal(arena, 3, 1f, 1, HEADS, n, headDim);
        out = Tensor.zeros(arena, 1, HEADS, n, headDim);
        attention = Attention.sparse(spec(pattern)).on(Backend.named(backend).withThreads(threads));
        BlockLayout layout = attention.layouts(HEADS, n, n).first();
        System.out.printf("%n[layout] %s density %.4f, %.2f GFLOP per call%n", pattern, layout.density(), layout.flops(headDim) * HEADS / 1e9);
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
