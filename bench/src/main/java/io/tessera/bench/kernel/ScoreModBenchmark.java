package io.tessera.bench.kernel;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.pattern.ScoreMod;
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
 * What a score modifier costs inside the fused kernel (issue #16), on {@link AttentionBenchmark}'s
 * shape (B=1, H=8, D=64), dense and causal, in one run: no modifier, ALiBi with the standard slopes,
 * soft-capping at 50 (Gemma 2's), both, and ALiBi written as a {@link ScoreMod.Function} (the
 * escape hatch, element by element). Target: a built-in ≤ 10 % over "none". Forward and forward +
 * backward. The modifier's per-call tables are built inside the measurement, as a user's call
 * builds them.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
public class ScoreModBenchmark {
    @Param({"simd"})
    public String backend;
    @Param({"4096"})
    public int n;
    @Param({"64"})
    public int headDim;
    @Param({"2"})
    public int threads;
    @Param({"dense", "causal"})
    public String pattern;
    @Param({"none", "alibi", "softcap", "alibi+softcap", "alibi-function"})
    public String mod;

    public static final int HEADS = AttentionBenchmark.HEADS;

    private Arena arena;
    private Tensor q, k, v, out, lse, dOut, dq, dk, dv;
    private Attention attention;

    /** The modifiers this benchmark compares, by name. */
    public static ScoreMod mod(String name, int heads) {
        float[] slopes = ScoreMod.alibiSlopes(heads);
        return switch (name) {
            case "none" -> null;
            case "alibi" -> ScoreMod.alibi(slopes);
            case "softcap" -> ScoreMod.softCap(50f);
            case "alibi+softcap" -> ScoreMod.alibi(slopes).then(ScoreMod.softCap(50f));
            case "alibi-function" -> ScoreMod.of("alibi as a function", (b, h, i, j, s) -> s + slopes[h] * (double) (j - i), (b, h, i, j, s) -> 1);
            default -> throw new IllegalArgumentException("unknown modifier '" + name + "'");
        };
    }

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        q = Tensor.randomNormal(arena, 1, 1f, 1, HEADS, n, headDim);
        k = Tensor.randomNormal(arena, 2, 1f, 1, HEADS, n, headDim);
        v = Tensor.randomNormal(arena, 3, 1f, 1, HEADS, n, headDim);
        out = Tensor.zeros(arena, 1, HEADS, n, headDim);
        lse = Tensor.zeros(arena, 1, HEADS, n);
        dOut = Tensor.randomNormal(arena, 4, 1f, 1, HEADS, n, headDim);
        dq = Tensor.zeros(arena, 1, HEADS, n, headDim);
        dk = Tensor.zeros(arena, 1, HEADS, n, headDim);
        dv = Tensor.zeros(arena, 1, HEADS, n, headDim);
        attention = Attention.sparse(AttentionBenchmark.spec(pattern)).on(Backend.named(backend).withThreads(threads)).withScoreMod(mod(mod, HEADS));
        attention.layouts(HEADS, n, n);   // compile outside the measurement
        attention.forwardWithLse(q, k, v, out, lse);
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

    @Benchmark
    public Tensor forwardBackward() {
        attention.forwardWithLse(q, k, v, out, lse);
        attention.backward(q, k, v, out, lse, dOut, dq, dk, dv);
        return dq;
    }
}
