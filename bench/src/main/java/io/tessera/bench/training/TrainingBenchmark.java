package io.tessera.bench.training;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.bench.kernel.AttentionBenchmark;
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
 * A training step of attention (forward keeping the log-sum-exp, then the backward pass) on
 * B = 1, H = 8, D = 64, and its two halves separately. Every tensor, gradients included, is made
 * once in setup: a step allocates nothing. GFLOP/s by the field's convention: forward
 * 4·pairs·D·H, backward 2.5× that.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
public class TrainingBenchmark {
    @Param({"simd"})
    public String backend;
    @Param({"1024", "4096", "5000"})
    public int n;
    @Param({"64"})
    public int headDim;
    @Param({"2"})
    public int threads;
    @Param({"dense", "causal", "window256", "bigbird"})
    public String pattern;

    public static final int HEADS = AttentionBenchmark.HEADS;

    private Arena arena;
    private Tensor q, k, v, out, lse, dOut, dq, dk, dv;
    private Attention attention;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        q = Tensor.randomNormal(arena, 1, 1f, 1, HEADS, n, headDim);
        k = Tensor.randomNormal(arena, 2, 1f, 1, HEADS, n, headDim);
        v = Tensor.randomNormal(arena, 3, 1f, 1, HEADS, n, headDim);
        dOut = Tensor.randomNormal(arena, 4, 1f, 1, HEADS, n, headDim);
        out = Tensor.zeros(arena, 1, HEADS, n, headDim);
        lse = Tensor.zeros(arena, 1, HEADS, n);
        dq = Tensor.zeros(arena, 1, HEADS, n, headDim);
        dk = Tensor.zeros(arena, 1, HEADS, n, headDim);
        dv = Tensor.zeros(arena, 1, HEADS, n, headDim);
        attention = Attention.sparse(AttentionBenchmark.spec(pattern)).on(Backend.named(backend).withThreads(threads));
        attention.forwardWithLse(q, k, v, out, lse);   // compiles the layout, fills out and lse for backward()
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public Tensor forward() {
        attention.forwardWithLse(q, k, v, out, lse);
        return out;
    }

    @Benchmark
    public Tensor backward() {
        attention.backward(q, k, v, out, lse, dOut, dq, dk, dv);
        return dq;
    }

    @Benchmark
    public Tensor trainingStep() {
        attention.forwardWithLse(q, k, v, out, lse);
        attention.backward(q, k, v, out, lse, dOut, dq, dk, dv);
        return dq;
    }
}
