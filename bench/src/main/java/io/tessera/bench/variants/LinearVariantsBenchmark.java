package io.tessera.bench.variants;

import io.tessera.variant.AttentionOperator;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantRegistry;
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
 * The linear-time variants over sequence length (B=1, H=8, D=64), each in the configuration
 * {@link VariantRegistry} hands out (Linformer k = 256, Performer m = 256): time should grow
 * linearly in n (log-log slope ≈ 1), where dense attention grows quadratically.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2)
@Measurement(iterations = 3)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED", "-Xmx8g"})
public class LinearVariantsBenchmark {
    @Param({"linformer", "performer", "linear-attention"})
    public String variant;
    @Param({"4096", "16384", "65536"})
    public int n;

    private Arena arena;
    private Tensor q, k, v, out;
    private Runnable call;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        q = Tensor.randomNormal(arena, 1, 1f, 1, 8, n, 64);
        k = Tensor.randomNormal(arena, 2, 1f, 1, 8, n, 64);
        v = Tensor.randomNormal(arena, 3, 1f, 1, 8, n, 64);
        out = Tensor.zeros(arena, 1, 8, n, 64);
        // The registry's default configuration of each variant (k = m = 256 for Linformer and the Performer).
        VariantInfo.Configured configured = VariantRegistry.named(variant).create(1, 8, n, 64);
        AttentionOperator op = configured.operator();
        call = () -> op.forward(q, k, v, out);
    }

    @TearDown(Level.Trial)
    public void tearDown() { arena.close(); }

    @Benchmark
    public Tensor forward() {
        call.run();
        return out;
    }
}
