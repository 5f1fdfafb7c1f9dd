package io.tessera.bench.decode;

import io.tessera.backend.Backend;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.Pattern;
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
 * One dense decode step (the {@link DecodeBenchmark} shape: D = 128, 32 query heads over 8 KV
 * heads, batch 1, float32 query and output) against a KV cache stored as F32, BF16 or F16, in one
 * run. A step reads {@code 2 · 8 · length · 128 · bytes} of K/V, half as many bytes for the half
 * types (the target: ≥ 1.8× faster with BF16 at length ≥ 32,768).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class HalfCacheDecodeBenchmark {
    @Param({"F32", "BF16", "F16"})
    public String cacheType;
    @Param({"32768"})
    public int cacheLength;
    @Param({"256"})
    public int pageSize;
    @Param({"simd"})
    public String backend;
    @Param({"2"})
    public int threads;

    private Arena arena;
    private KvCache cache;
    private PagedAttention decode;
    private Tensor q, out;

    @Setup(Level.Trial)
    public void setup() {
        int heads = DecodeBenchmark.HEADS, kvHeads = DecodeBenchmark.KV_HEADS, d = DecodeBenchmark.HEAD_DIM;
        arena = Arena.ofShared();
        cache = KvCache.allocate(arena, ElementType.valueOf(cacheType), 1, (cacheLength + pageSize - 1) / pageSize, pageSize, kvHeads, d, d);
        for (int done = 0, chunk = 1024; done < cacheLength; done += chunk) {
            int n = Math.min(chunk, cacheLength - done);
            cache.append(0, Tensor.randomNormal(arena, 1 + done, 1f, 1, kvHeads, n, d), Tensor.randomNormal(arena, 2 + done, 1f, 1, kvHeads, n, d));
        }
        decode = PagedAttention.of(Pattern.full()).on(Backend.named(backend).withThreads(threads));
        q = Tensor.randomNormal(arena, 3, 1f, 1, heads, 1, d);
        out = Tensor.zeros(arena, 1, heads, 1, d);
        decode.forward(cache, 0, q, out, null);   // buffers and page layouts outside the measurement
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public Tensor step() {
        decode.forward(cache, 0, q, out, null);
        return out;
    }
}
