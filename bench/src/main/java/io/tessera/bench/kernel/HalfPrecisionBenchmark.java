package io.tessera.bench.kernel;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.tensor.ElementType;
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
 * The fused dense forward with half-precision storage against float32, in one run: B=1, H=8,
 * D=64 (the {@link AttentionBenchmark} shape). {@code storage} names the element types of q, k, v
 * (and the output, which takes the value type):
 * {@code F32}, {@code BF16}, {@code F16}, and {@code F32Q_BF16KV} (float32 queries and output over
 * a bfloat16 KV, the decode-cache case). Inputs are the same normal samples, rounded to the type.
 * The target is half-precision no slower than F32: the kernels widen each tile once while packing
 * and the float32 micro-kernels do the rest.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
public class HalfPrecisionBenchmark {
    @Param({"F32", "BF16", "F16", "F32Q_BF16KV"})
    public String storage;
    @Param({"1024", "4096"})
    public int n;
    @Param({"64"})
    public int headDim;
    @Param({"simd"})
    public String backend;
    @Param({"2"})
    public int threads;

    @Param({"dense"})
    public String pattern;

    public static final int HEADS = AttentionBenchmark.HEADS;

    private Arena arena;
    private Tensor q, k, v, out;
    private Attention attention;

    @Setup(Level.Trial)
    public void setup() {
        ElementType queries, keysAndValues;
        switch (storage) {
            case "F32" -> { queries = ElementType.F32; keysAndValues = ElementType.F32; }
            case "BF16" -> { queries = ElementType.BF16; keysAndValues = ElementType.BF16; }
            case "F16" -> { queries = ElementType.F16; keysAndValues = ElementType.F16; }
            case "F32Q_BF16KV" -> { queries = ElementType.F32; keysAndValues = ElementType.BF16; }
            default -> throw new IllegalArgumentException("unknown storage '" + storage + "'");
        }
        arena = Arena.ofShared();
        q = Tensor.randomNormal(arena, 1, 1f, 1, HEADS, n, headDim).to(arena, queries);
        k = Tensor.randomNormal(arena, 2, 1f, 1, HEADS, n, headDim).to(arena, keysAndValues);
        v = Tensor.randomNormal(arena, 3, 1f, 1, HEADS, n, headDim).to(arena, keysAndValues);
        out = Tensor.zeros(arena, queries, 1, HEADS, n, headDim);
        attention = Attention.sparse(AttentionBenchmark.spec(pattern)).on(Backend.named(backend).withThreads(threads));
        attention.layouts(HEADS, n, n);   // compile outside the measurement
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
