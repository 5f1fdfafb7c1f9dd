package io.tessera.bench.decode;

import io.tessera.backend.Backend;
import io.tessera.bench.report.OracleReference;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
 * One decode step against a paged KV cache (issues #13 and #14's shape): D = 128, 32 query heads over
 * 8 KV heads, batch 1 or 8 sequences of the same cache length (4096, 32,768, 131,072), one new
 * query each (float32), dense or a sliding window of 4096 (Mistral's: causal, the query and the 4095
 * keys before it), the cache stored as F32, BF16 or F16. A step reads {@link #kvBytes} bytes of
 * K/V; {@link DecodeReport} divides by the time for GB/s and compares with the STREAM triad of
 * {@code MachinePeak} measured in the same run. (Batch 8 at 131,072 tokens holds 8.6 GB of fp32
 * cache: select the cases a machine can hold with {@code -p}.)
 *
 * <p>{@code backend} is a Tessera backend ({@code simd}, {@code scalar}) or a {@link DecodePeer} id
 * ({@code djl-sdpa}: PyTorch's SDPA through DJL; {@code onnxruntime-gqa}: ONNX Runtime's GroupQueryAttention with a past KV cache; with {@code -Ppeers}) on the same keys, values and
 * queries. Setup checks the output of the first sequence's first KV head group against the float64
 * oracle and fails the trial when it is outside the tolerance.
 *
 * <p>{@code backend=read} computes no attention: a step is a plain read of the very K/V bytes the
 * kernel's step reads (each sequence's attended pages, key/value heads split over the threads, 8
 * bytes at a time, keys and values side by side), the floor a step bound by memory would reach on
 * this machine with these pages. A core here reads about 13 GB/s whatever the loop, so this is
 * the honest yardstick for the step; the triad, which also writes, is not a read-only rate.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
public class DecodeBenchmark {
    public static final int HEAD_DIM = 128, HEADS = 32, KV_HEADS = 8, WINDOW = 4096;

    @Param({"1", "8"})
    public int batch;
    @Param({"4096", "32768", "131072"})
    public int cacheLength;
    @Param({"dense", "window4096"})
    public String pattern;
    @Param({"F32", "BF16", "F16"})
    public String cacheType;
    @Param({"16"})
    public int pageSize;
    @Param({"simd"})
    public String backend;
    @Param({"2"})
    public int threads;

    private Arena arena;
    private KvCache cache;
    private PagedAttention decode;
    private DecodePeer peer;
    /** The plain read's threads ({@code backend=read}). */
    private ExecutorService readers;
    private Tensor q, out;
    private int[] sequences;

    /** The caches built in this JVM, by batch, length, page size and type. */
    private static final Map<String, KvCache> CACHES = new ConcurrentHashMap<>();

    /**
     * The cache of N(0, 1) keys and values, built once per JVM: the states of one Interleaved JVM
     * (quick mode: the F32 row, both peers and the window row) read the same one, since a step only
     * reads it (a peer copies it at setup); building a 32K cache took 2–4 s a state. It lives as
     * long as the JVM (a JMH fork or an Interleaved child). Sequences are appended one after the
     * other: each one's pages are consecutive, so the oracle and the peers can read it as one view;
     * the kernel still goes through the page table.
     */
    static KvCache cache(int batch, int cacheLength, int pageSize, String cacheType) {
        // A half-precision cache rounds the float32 cache's tokens as it appends them: the same
        // numbers as drawing them again, without the drawing (2-4 s at 32K). The float32 cache is
        // fetched before computeIfAbsent: its mapping function must not update the map itself.
        KvCache floats = cacheType.equals("F32") ? null : cache(batch, cacheLength, pageSize, "F32");
        return CACHES.computeIfAbsent(batch + "/" + cacheLength + "/" + pageSize + "/" + cacheType, key -> {
            KvCache cache = KvCache.allocate(Arena.ofAuto(), ElementType.valueOf(cacheType), batch, batch * ((cacheLength + pageSize - 1) / pageSize), pageSize,
                    KV_HEADS, HEAD_DIM, HEAD_DIM);
            int chunk = 1024;
            for (int b = 0; b < batch; b++) {
                for (int done = 0; done < cacheLength; done += chunk) {
                    int n = Math.min(chunk, cacheLength - done);
                    if (floats != null) {
                        cache.append(b, floats.keys(b).orElseThrow().slice(2, done, done + n), floats.values(b).orElseThrow().slice(2, done, done + n));
                        continue;
                    }
                    long seed = 1000L * b + done;
                    try (Arena tokens = Arena.ofConfined()) {   // the appended tokens' memory is freed at once
                        cache.append(b, Tensor.randomNormal(tokens, 1 + seed, 1f, 1, KV_HEADS, n, HEAD_DIM), Tensor.randomNormal(tokens, 2 + seed, 1f, 1, KV_HEADS, n, HEAD_DIM));
                    }
                }
            }
            return cache;
        });
    }

    /** Bytes of K and V one step reads: every sequence's attended keys, K and V, in the cache's type. */
    public static long kvBytes(int batch, int cacheLength, String pattern, String cacheType) {
        long keys = pattern.equals("dense") ? cacheLength : Math.min(cacheLength, WINDOW);
        return 2L * batch * KV_HEADS * keys * HEAD_DIM * ElementType.valueOf(cacheType).byteSize();
    }

    static Pattern pattern(String name) {
        return switch (name) {
            case "dense" -> Pattern.full();
            case "window4096" -> Pattern.causal().and(Pattern.slidingWindow(WINDOW - 1, 0));
            default -> throw new IllegalArgumentException("unknown pattern '" + name + "' (dense, window4096)");
        };
    }

    @Setup(Level.Trial)
    public void setup() throws Exception {
        arena = Arena.ofShared();
        cache = cache(batch, cacheLength, pageSize, cacheType);
        sequences = new int[batch];
        for (int b = 0; b < batch; b++) sequences[b] = b;
        Pattern p = pattern(pattern);
        q = Tensor.randomNormal(arena, 3, 1f, batch, HEADS, 1, HEAD_DIM);
        out = Tensor.zeros(arena, batch, HEADS, 1, HEAD_DIM);
        float[] result;
        if (backend.equals("read")) {
            readers = Executors.newFixedThreadPool(threads, r -> {
                Thread t = new Thread(r, "decode-plain-read");
                t.setDaemon(true);
                return t;
            });
            if (plainRead() == 42) System.out.print("");   // first touch outside the measurement; the sum keeps the loads
            return;   // no attention computed: nothing to check against the oracle
        }
        if (backend.equals("simd") || backend.equals("scalar")) {
            decode = PagedAttention.of(p).on(Backend.named(backend).withThreads(threads));
            decode.forward(cache, sequences, q, out, null);   // buffers outside the measurement
            result = out.toArray();
        } else {
            peer = DecodePeer.find(backend);
            String why = peer.unavailableReason();
            if (why != null) throw new IllegalStateException(peer.id() + " cannot run here: " + why);
            int keys = pattern.equals("dense") ? cacheLength : Math.min(cacheLength, WINDOW);
            peer.prepare(batch, HEADS, KV_HEADS, keys, HEAD_DIM, buffer(q), lastKeys(true, keys), lastKeys(false, keys), threads);
            peer.step();
            result = peer.output();
        }
        checkAgainstTheOracle(p, result);
    }

    /** [batch, KV_HEADS, keys, D] of the last {@code keys} tokens of every sequence, as a peer takes them. */
    private FloatBuffer lastKeys(boolean keysNotValues, int keys) {
        long floats = (long) batch * KV_HEADS * keys * HEAD_DIM;
        if (floats * Float.BYTES > Integer.MAX_VALUE) throw new IllegalArgumentException("batch " + batch + " × " + keys + " keys is too large for one buffer");
        FloatBuffer dst = ByteBuffer.allocateDirect((int) (floats * Float.BYTES)).order(ByteOrder.nativeOrder()).asFloatBuffer();
        for (int b = 0; b < batch; b++) {
            // A half-precision cache's rounded values, widened: the peer computes in float32 on the same numbers.
            Tensor all = (keysNotValues ? cache.keys(b) : cache.values(b)).orElseThrow().slice(2, cacheLength - keys, cacheLength);
            try (Arena copy = Arena.ofConfined()) {
                dst.put(all.contiguous(copy).toArray());
            }
        }
        return dst.flip();
    }

    private static FloatBuffer buffer(Tensor t) { return FloatBuffer.wrap(t.toArray()); }

    /**
     * The oracles computed in this JVM, by the cache and the pattern (the query is the same seed's in
     * every state): the float64 oracle, the naive float32 pass and the tolerance over a 32K cache take
     * 3–5 s, and the Tessera F32 row and the peers of one Interleaved match check against the same one.
     */
    private static final Map<String, OracleReference<double[]>> ORACLES = new ConcurrentHashMap<>();

    /** Sequence 0, the query heads of KV head 0, against the float64 oracle over its cache. */
    private void checkAgainstTheOracle(Pattern p, float[] result) {
        int group = HEADS / KV_HEADS;
        OracleReference<double[]> expected = ORACLES.computeIfAbsent(batch + "/" + cacheLength + "/" + pageSize + "/" + pattern + "/" + cacheType, key -> {
            Tensor q0 = q.slice(0, 0, 1).slice(1, 0, group);
            Tensor k0 = cache.keys(0).orElseThrow().slice(1, 0, 1), v0 = cache.values(0).orElseThrow().slice(1, 0, 1);
            MaskFunction mask = p.aligned(io.tessera.pattern.CausalAlignment.BOTTOM_RIGHT).asMask(1, cacheLength);
            double scale = 1 / Math.sqrt(HEAD_DIM);
            DenseReference.Result oracle = DenseReference.attention(q0, k0, v0, mask, scale);
            return new OracleReference<>(oracle.output(), Tolerance.exact(q0, k0, v0, scale, DenseReference.naiveFloat32(q0, k0, v0, mask, scale), oracle).output());
        });
        float[] got = java.util.Arrays.copyOf(result, group * HEAD_DIM);   // [0, 0..group, 0, :] leads the output
        double error = Tolerance.maxError(got, expected.oracle());
        if (!(error <= expected.tolerance())) {
            throw new IllegalStateException(backend + " decode output is off the float64 oracle by " + error + " (tolerance " + expected.tolerance() + ")");
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        if (peer != null) peer.close();
        if (readers != null) readers.shutdownNow();
        arena.close();
    }

    private long plainRead() throws Exception {
        return plainRead(readers, threads, cache, sequences, pattern.equals("dense") ? cacheLength : Math.min(cacheLength, WINDOW));
    }

    /**
     * Reads every byte of K and V of each sequence's last {@code keys} tokens (through its page
     * table), key/value heads split over {@code threads} tasks of {@code readers}, keys and values
     * side by side, 8 bytes at a time; returns the loads' sum (so they cannot be dropped). The plain
     * read of the {@code read} rows and of {@link DecodeProbe}.
     */
    static long plainRead(ExecutorService readers, int threads, KvCache cache, int[] sequences, int keys) throws Exception {
        MemorySegment k = cache.keyStorage().segment(), v = cache.valueStorage().segment();
        int pageSize = cache.pageSize(), kvHeads = cache.kvHeads();
        long tokenBytes = (long) cache.headDim() * cache.keyStorage().type().byteSize(), headBytes = k.byteSize() / kvHeads;
        List<Future<Long>> parts = new ArrayList<>(threads);
        for (int t = 0; t < threads; t++) {
            int from = kvHeads * t / threads, to = kvHeads * (t + 1) / threads;
            parts.add(readers.submit(() -> {
                long acc = 0;
                for (int h = from; h < to; h++) {
                    for (int b : sequences) {
                        int length = cache.length(b);
                        for (int token = length - Math.min(keys, length); token < length; ) {
                            int page = token / pageSize, inPage = token % pageSize, run = Math.min(pageSize - inPage, length - token);
                            long at = h * headBytes + ((long) cache.page(b, page) * pageSize + inPage) * tokenBytes, end = at + run * tokenBytes;
                            for (long o = at; o < end; o += Long.BYTES) acc += k.get(ValueLayout.JAVA_LONG_UNALIGNED, o) ^ v.get(ValueLayout.JAVA_LONG_UNALIGNED, o);
                            token += run;
                        }
                    }
                }
                return acc;
            }));
        }
        long sum = 0;
        for (Future<Long> f : parts) sum += f.get();
        return sum;
    }

    @Benchmark
    public Object step() throws Exception {
        if (readers != null) return plainRead();
        if (peer != null) {
            peer.step();
            return peer;
        }
        decode.forward(cache, sequences, q, out, null);
        return out;
    }
}
