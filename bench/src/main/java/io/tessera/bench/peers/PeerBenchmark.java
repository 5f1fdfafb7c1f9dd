package io.tessera.bench.peers;

import io.tessera.bench.kernel.AttentionBenchmark;
import io.tessera.pattern.ElementPredicate;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.ServiceLoader;
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
 * A peer on the same inputs as {@link AttentionBenchmark} (same seeds, B=1, H=8). Sparse patterns
 * run as the peer's masked dense attention: what a user of that library would run.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
public class PeerBenchmark {
    @Param({"onnxruntime"})
    public String peer;
    @Param({"1024"})
    public int n;
    @Param({"64"})
    public int headDim;
    @Param({"2"})
    public int threads;
    @Param({"dense"})
    public String pattern;

    private Peer impl;

    public static Peer find(String id) {
        for (Peer p : ServiceLoader.load(Peer.class)) if (p.id().equals(id)) return p;
        throw new IllegalArgumentException("no peer '" + id + "' on the class path (build bench with -Ppeers)");
    }

    /** Row-major [n, n] mask of a named pattern, or null for dense. */
    public static boolean[] mask(String pattern, int n) {
        if (pattern.equals("dense")) return null;
        ElementPredicate rule = AttentionBenchmark.pattern(pattern).predicate(n, n);
        boolean[] mask = new boolean[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) mask[i * n + j] = rule.allows(i, j);
        return mask;
    }

    @Setup(Level.Trial)
    public void setup() throws Exception {
        impl = find(peer);
        if (impl.unavailableReason() != null) throw new IllegalStateException(impl.unavailableReason());
        int h = AttentionBenchmark.HEADS;
        try (Arena arena = Arena.ofConfined()) {
            impl.prepare(h, n, headDim,
                    Tensor.randomNormal(arena, 1, 1f, 1, h, n, headDim).toArray(),
                    Tensor.randomNormal(arena, 2, 1f, 1, h, n, headDim).toArray(),
                    Tensor.randomNormal(arena, 3, 1f, 1, h, n, headDim).toArray(),
                    mask(pattern, n), threads);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        impl.close();
    }

    @Benchmark
    public Peer forward() throws Exception {
        impl.run();
        return impl;
    }
}
