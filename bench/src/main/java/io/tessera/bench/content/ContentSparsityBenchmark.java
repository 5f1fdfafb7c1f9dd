package io.tessera.bench.content;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.PatternCompiler;
import io.tessera.tensor.Tensor;
import io.tessera.variant.content.LshAttention;
import io.tessera.variant.content.RoutingAttention;
import io.tessera.variant.content.RoutingCentroids;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
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
 * Content-based sparsity against dense and sliding-window attention in the same run (issue #19):
 * B = 1, H = 8, D = 64, n = 4096 and 16,384. {@code forward} is the whole call (hashing or
 * clustering, sort, layout build, gather, fused kernel, LSE combine); {@code layoutBuild} is the
 * part before the kernel alone (LSH/routing: {@code induce(q, k)}; dense/window: compiling the
 * pattern without the cache), so the build's share of the call is {@code layoutBuild / forward}.
 *
 * <p>Methods: {@code dense}; {@code window} (sliding window of radius 64: 129 keys per query);
 * {@code lsh1}, {@code lsh2}, {@code lsh4} (n/64 buckets factorized as 8·8 or 16·16, chunks of 64,
 * so about 128 keys per query and round; 1, 2 or 4 rounds); {@code routing} (n/128 clusters of 128 queries and keys, centroids
 * initialized from sampled tokens and given one k-means step, as a trained model's would be).
 *
 * <p>Inputs: {@code clustered} (shared-QK tokens drawn from a mixture of n/32 Gaussian centres,
 * q = k: the structure content-based sparsity is for) or {@code unstructured} (q and k independent
 * normal). Each trial prints the error against dense attention, computed in float64 for 64 sampled
 * queries of every head: mean over those rows of ‖out − dense‖ / ‖dense‖ ("relErr") and the
 * largest absolute difference ("maxAbs"). Targets (issue #19): at n = 16,384, lsh2 ≥ 10× faster than
 * dense, its layout build ≤ 10 % of the call. {@link ContentSparsityReport} prints the same methods as
 * one table from one process (build beside call, share, speed-up over dense, errors).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2)
@Measurement(iterations = 5)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED", "-Xmx8g"})
public class ContentSparsityBenchmark {
    public static final int HEADS = 8, HEAD_DIM = 64, CHUNK = 64, SAMPLED_QUERIES = 64;

    @Param({"4096", "16384"})
    public int n;
    @Param({"dense", "window", "lsh1", "lsh2", "lsh4", "routing"})
    public String method;
    @Param({"clustered", "unstructured"})
    public String input;
    @Param({"simd"})
    public String backend;

    private Arena arena;
    private Tensor q, k, v, out;
    private Runnable call, build;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        Backend be = Backend.named(backend);
        Tensor[] qkv = inputs(arena, input, n);
        q = qkv[0];
        k = qkv[1];
        v = qkv[2];
        out = Tensor.zeros(arena, 1, HEADS, n, HEAD_DIM);
        Runs runs = configure(method, n, be, q, k, v, out);
        call = runs.call();
        build = runs.build();
        call.run();
        double[] err = errorVsDense(q, k, v, out, 7);
        System.out.printf("%n[content] n=%d method=%s input=%s: relErr vs dense %.3e (mean over %d sampled queries x %d heads), maxAbs %.3e%n",
                n, method, input, err[0], SAMPLED_QUERIES, HEADS, err[1]);
    }

    /** A method's whole call and its layout build alone, over fixed inputs; {@code induce} decides the sparsity (null for dense and window). */
    record Runs(Runnable call, Runnable build, java.util.function.Supplier<io.tessera.variant.content.InducedSparsity> induce) {
        Runs(Runnable call, Runnable build) { this(call, build, null); }
    }

    /** The methods of this benchmark (see the class comment), over q, k, v into out. */
    static Runs configure(String method, int n, Backend be, Tensor q, Tensor k, Tensor v, Tensor out) {
        int blockQ = be.preferredBlockQ(), blockKV = be.preferredBlockKV();
        switch (method) {
            case "dense" -> {
                Attention dense = Attention.dense().on(be);
                return new Runs(() -> dense.forward(q, k, v, out), () -> Pattern.full().layouts(HEADS, n, n, blockQ, blockKV));
            }
            case "window" -> {
                Pattern window = Pattern.slidingWindow(CHUNK);
                Attention sparse = Attention.sparse(window).on(be);
                return new Runs(() -> sparse.forward(q, k, v, out), () -> PatternCompiler.compile(window, n, n, blockQ, blockKV));
            }
            case "lsh1", "lsh2", "lsh4" -> {
                // n/64 buckets (Reformer's choice: about one chunk per bucket), factorized into two equal-ish factors.
                int buckets = Math.max(4, n / CHUNK), first = Math.max(2, Integer.highestOneBit((int) Math.sqrt(buckets)));
                LshAttention lsh = LshAttention.factorized(method.charAt(3) - '0', CHUNK, 42, first, buckets / first).on(be);
                return new Runs(() -> lsh.forward(q, k, v, out), () -> lsh.induce(q, k), () -> lsh.induce(q, k));
            }
            case "routing" -> {
                RoutingCentroids centroids = sampledCentroids(q, Math.max(1, n / 128), 5);
                centroids.update(q, k, 0.5);
                RoutingAttention routing = RoutingAttention.of(centroids).on(be);
                return new Runs(() -> routing.forward(q, k, v, out), () -> routing.induce(q, k), () -> routing.induce(q, k));
            }
            default -> throw new IllegalArgumentException("unknown method '" + method + "'");
        }
    }

    /** Inputs of the benchmark: {q, k, v} for "clustered" (shared-QK mixture) or "unstructured" (independent normal). */
    static Tensor[] inputs(Arena arena, String input, int n) {
        Tensor q, k;
        switch (input) {
            case "clustered" -> {
                q = mixture(arena, n, Math.max(1, n / 32), 11);
                k = q;   // shared-QK, as in the Reformer
            }
            case "unstructured" -> {
                q = Tensor.randomNormal(arena, 11, 1f, 1, HEADS, n, HEAD_DIM);
                k = Tensor.randomNormal(arena, 12, 1f, 1, HEADS, n, HEAD_DIM);
            }
            default -> throw new IllegalArgumentException("unknown input '" + input + "'");
        }
        return new Tensor[] {q, k, Tensor.randomNormal(arena, 13, 1f, 1, HEADS, n, HEAD_DIM)};
    }

    @TearDown(Level.Trial)
    public void tearDown() { arena.close(); }

    /** The whole call, layout build included. */
    @Benchmark
    public Tensor forward() {
        call.run();
        return out;
    }

    /** The layout build alone (hashing/clustering + sort + layout; or compiling the pattern). */
    @Benchmark
    public void layoutBuild() {
        build.run();
    }

    /** Tokens x = 2·centre[c] + 0.3·noise for a random centre of {@code centres} (per head). */
    static Tensor mixture(Arena arena, int n, int centres, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[HEADS * n * HEAD_DIM];
        float[] centre = new float[centres * HEAD_DIM];
        for (int h = 0; h < HEADS; h++) {
            for (int i = 0; i < centre.length; i++) centre[i] = (float) random.nextGaussian();
            for (int t = 0; t < n; t++) {
                int c = random.nextInt(centres);
                for (int x = 0; x < HEAD_DIM; x++) values[(h * n + t) * HEAD_DIM + x] = (float) (centre[c * HEAD_DIM + x] + 0.3 * random.nextGaussian());
            }
        }
        return Tensor.of(arena, values, 1, HEADS, n, HEAD_DIM);
    }

    /** Centroids initialized from randomly sampled queries of each head (k-means' usual start). */
    static RoutingCentroids sampledCentroids(Tensor q, int clusters, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int n = (int) q.size(2);
        float[] values = new float[HEADS * clusters * HEAD_DIM];
        for (int h = 0; h < HEADS; h++) {
            for (int c = 0; c < clusters; c++) {
                int t = random.nextInt(n);
                for (int x = 0; x < HEAD_DIM; x++) values[(h * clusters + c) * HEAD_DIM + x] = q.get(0, h, t, x) + 1e-3f * (float) random.nextGaussian();
            }
        }
        return RoutingCentroids.of(values, HEADS, clusters, HEAD_DIM);
    }

    /**
     * Dense attention in float64 for {@link #SAMPLED_QUERIES} random queries of every head against
     * {@code out}: {mean relative L2 error, max absolute error}. O(samples·n·D) per head.
     */
    static double[] errorVsDense(Tensor q, Tensor k, Tensor v, Tensor out, long seed) {
        return ContentSection.errors(ContentSection.denseReference(q, k, v, seed), out, (int) q.size(2), seed);
    }
}
