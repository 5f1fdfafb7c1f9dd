package io.tessera.bench.decode;

import io.tessera.backend.Backend;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
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
 * One decode step against a paged KV cache (issue #13's shape): fp32, D = 128, 32 query heads over
 * 8 KV heads, batch 1, one new query, cache length 4096 or 32,768, dense or a sliding window of 4096.
 * The cache is filled in setup; a step reads {@code 2 · 8 · min(length, window) · 128 · 4} bytes of
 * K/V (divide by the time for GB/s).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class DecodeBenchmark {
    public static final int HEAD_DIM = 128, HEADS = 32, KV_HEADS = 8;

    @Param({"4096", "32768"})
    public int cacheLength;
    @Param({"dense", "window4096"})
    public String pattern;
    @Param({"16", "256"})
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
        arena = Arena.ofShared();
        cache = KvCache.allocate(arena, 1, (cacheLength + pageSize - 1) / pageSize, pageSize, KV_HEADS, HEAD_DIM, HEAD_DIM);
        int chunk = 1024;
        for (int done = 0; done < cacheLength; done += chunk) {
            int n = Math.min(chunk, cacheLength - done);
            cache.append(0, Tensor.randomNormal(arena, 1 + done, 1f, 1, KV_HEADS, n, HEAD_DIM), Tensor.randomNormal(arena, 2 + done, 1f, 1, KV_HEADS, n, HEAD_DIM));
        }
        Pattern p = switch (pattern) {
            case "dense" -> Pattern.full();
            case "window4096" -> Pattern.causal().and(Pattern.slidingWindow(4095, 0));
            default -> throw new IllegalArgumentException("unknown pattern '" + pattern + "'");
        };
        decode = PagedAttention.of(p).on(Backend.named(backend).withThreads(threads));
        q = Tensor.randomNormal(arena, 3, 1f, 1, HEADS, 1, HEAD_DIM);
        out = Tensor.zeros(arena, 1, HEADS, 1, HEAD_DIM);
        decode.forward(cache, 0, q, out, null);   // buffers and dense page layouts outside the measurement
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
