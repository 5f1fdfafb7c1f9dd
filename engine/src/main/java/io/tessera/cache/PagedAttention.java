package io.tessera.cache;

import io.tessera.backend.Backend;
import io.tessera.backend.PagedAttentionDevice;
import io.tessera.layout.BlockLayout;
import io.tessera.layout.HeadLayouts;
import io.tessera.layout.TileKind;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.DecodePlan;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Attention of a few new queries of a sequence (decoding: 1; speculative decoding: up to ~16)
 * against that sequence's keys and values in a {@link KvCache}, restricted to a pattern and
 * optionally through a score modifier:
 *
 * <pre>{@code
 * PagedAttention decode = PagedAttention.of(Pattern.causal().and(Pattern.slidingWindow(4096, 0)));
 * cache.append(seq, kNew, vNew);                  // the new tokens' keys and values first
 * decode.forward(cache, seq, q, out, lse);        // q [1, H, qLen, D], H a multiple of kvHeads
 * }</pre>
 *
 * <p>Positions: the queries are the last {@code qLen} tokens of the sequence, so the pattern and
 * the modifier are aligned {@link CausalAlignment#BOTTOM_RIGHT bottom-right} over the live length
 * (query {@code i} is at position {@code length − qLen + i}); a pattern or modifier that names
 * top-left is rejected.
 *
 * <p>How: each step refills a {@link DecodePlan} in place — the pattern classified over the live
 * length with one tile per page, O(pages the queries reach) for structured patterns — and nothing
 * is compiled, cached per length or (once warmed up, single-threaded, without a modifier that keeps
 * per-length tables) allocated per generated token: the plan and the step's buffers belong to the
 * cache (one per pattern, modifier, head count and qLen in use) and are reused. Pages no query can
 * attend are skipped (a sliding window reads only the pages of its window). On a backend with a
 * decode kernel ({@link PagedAttentionDevice}: scalar, simd, tornado) the reached pages are read through the
 * page table (half-precision pages widened to float32 as they are read), split-KV across threads
 * with a deterministic log-sum-exp combine; on other backends each reached page is attended by the
 * fused kernel on its view in the pool and the per-page results are merged by log-sum-exp in
 * float64, in page order.
 *
 * <p>Score modifiers ({@link #withScoreMod}, {@link ScoreMod}): applied to every allowed score in
 * the decode kernels with the fused kernels' arithmetic (base 2, scale folded in), positions as
 * above; on other backends the per-page fused calls evaluate the modifier's float64 definition
 * (slower, and only on backends that run modifiers).
 */
public final class PagedAttention {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int DENSE_LAYOUTS = 256;

    private final Pattern pattern;   // aligned bottom-right
    private final ScoreMod mod;      // aligned bottom-right, or null
    private final Backend backend;   // null: Backend.best()
    private final float scale;       // NaN: 1/√D
    private final Map<DenseKey, HeadLayouts> denseLayouts;   // FULL pages, per (qLen, tokens in page, pageSize)

    private record DenseKey(int qLen, int tokens, int pageSize) {}

    private PagedAttention(Pattern pattern, ScoreMod mod, Backend backend, float scale, Map<DenseKey, HeadLayouts> denseLayouts) {
        this.pattern = pattern;
        this.mod = mod;
        this.backend = backend;
        this.scale = scale;
        this.denseLayouts = denseLayouts;
    }

    /** Decoding restricted to {@code pattern}, placed bottom-right (see Positions above). */
    public static PagedAttention of(Pattern pattern) {
        if (pattern == null) throw new NullPointerException("pattern");
        return new PagedAttention(pattern.aligned(CausalAlignment.BOTTOM_RIGHT), null, null, Float.NaN,
                java.util.Collections.synchronizedMap(new LinkedHashMap<>(16, 0.75f, true) {
                    @Override
                    protected boolean removeEldestEntry(Map.Entry<DenseKey, HeadLayouts> eldest) { return size() > DENSE_LAYOUTS; }
                }));
    }

    /** Full attention over the cached tokens (every query sees every cached key). */
    public static PagedAttention dense() { return of(Pattern.full()); }

    /**
     * The same decoding with {@code mod} applied to every score before the softmax (null: none),
     * placed bottom-right like the pattern: ALiBi's distance, a relative bias's bucket and a per-key
     * bias's key all use key {@code j} and query position {@code length − qLen + i}; a per-key bias
     * must be {@code [heads, length]} of each sequence. A modifier that names top-left is rejected.
     */
    public PagedAttention withScoreMod(ScoreMod mod) {
        ScoreMod aligned = mod == null ? null : mod.aligned(CausalAlignment.BOTTOM_RIGHT);
        return new PagedAttention(pattern, aligned, backend, scale, denseLayouts);
    }

    /** The score modifier (aligned bottom-right), or null. */
    public ScoreMod scoreMod() { return mod; }

    /** The same decoding on another backend. */
    public PagedAttention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new PagedAttention(pattern, mod, backend, scale, denseLayouts);
    }

    /** The same decoding with softmax scale {@code scale} instead of 1/√D. */
    public PagedAttention withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new PagedAttention(pattern, mod, backend, scale, denseLayouts);
    }

    public Pattern pattern() { return pattern; }

    public Backend backend() { return backend != null ? backend : Backend.best(); }

    /** Output {@code [1, H, qLen, valueDim]} in a new tensor of {@code arena}. */
    public Tensor forward(Arena arena, KvCache cache, int sequence, Tensor q) {
        if (arena == null) throw new NullPointerException("arena");
        if (cache == null) throw new NullPointerException("cache");
        if (q == null) throw new NullPointerException("q");
        Tensor out = Tensor.zeros(arena, 1, q.size(1), q.size(2), cache.valueDim());
        forward(cache, sequence, q, out, null);
        return out;
    }

    /**
     * Attends the queries {@code q} {@code [1, H, qLen, headDim]} — the last {@code qLen} tokens of
     * {@code sequence}, already appended to the cache — to the sequence's cached keys and values,
     * writing {@code out} {@code [1, H, qLen, valueDim]} and, unless null, {@code lse}
     * {@code [1, H, qLen]}. Rows that attend no key get output 0 and LSE −∞. Returns the number of
     * pages read.
     */
    public int forward(KvCache cache, int sequence, Tensor q, Tensor out, Tensor lse) {
        if (cache == null) throw new NullPointerException("cache");
        cache.checkSequence(sequence);
        if (cache.length(sequence) == 0) throw new IllegalArgumentException("sequence " + sequence + " has no cached tokens; append its keys and values first");
        int[] one = cache.stepBuffers(1).sequence;
        one[0] = sequence;
        return step(cache, one, 1, q, out, lse, false);
    }

    /**
     * One decode step for a batch of sequences of different lengths: {@code q}
     * {@code [B, H, qLen, headDim]} holds the last {@code qLen} tokens of each sequence
     * {@code sequences[b]} (appended already), {@code out} {@code [B, H, qLen, valueDim]} and, unless
     * null, {@code lse} {@code [B, H, qLen]} receive the results; each sequence attends its own live
     * length. On a backend with a decode kernel (scalar, simd) the whole batch is one call whose
     * work items (split of a sequence's pages × key/value head) run in parallel. Returns the number
     * of pages read.
     */
    public int forward(KvCache cache, int[] sequences, Tensor q, Tensor out, Tensor lse) {
        if (cache == null) throw new NullPointerException("cache");
        if (sequences == null) throw new NullPointerException("sequences");
        int batch = sequences.length;
        if (batch == 0) throw new IllegalArgumentException("sequences is empty");
        for (int b = 0; b < batch; b++) {
            cache.checkSequence(sequences[b]);
            if (cache.length(sequences[b]) == 0) throw new IllegalArgumentException("sequence " + sequences[b] + " (sequences[" + b + "]) has no cached tokens; append its keys and values first");
        }
        return step(cache, sequences, batch, q, out, lse, true);
    }

    /**
     * Both forward methods: checks q, out and lse against the cache (the batch dimension named
     * "B=batch" in messages when {@code batched}, else "1"), then runs the step on the backend's decode kernel when it has
     * one, else page by page. Sequences are checked by the caller. Allocates nothing per step on
     * the decode-kernel path once the cache's plan for this shape exists (see the class doc).
     */
    private int step(KvCache cache, int[] sequences, int batch, Tensor q, Tensor out, Tensor lse, boolean batched) {
        if (q == null) throw new NullPointerException("q");
        if (out == null) throw new NullPointerException("out");
        io.tessera.tensor.Shapes.requireF32("out", out, "PagedAttention (it merges the pages' results in float32)");
        io.tessera.tensor.Shapes.requireF32("lse", lse, "PagedAttention (the log-sum-exp is always F32)");
        if (q.rank() != 4 || q.size(0) != batch || q.size(3) != cache.headDim() || q.size(1) % cache.kvHeads() != 0 || q.size(1) > Integer.MAX_VALUE || q.size(2) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("q must be [" + (batched ? "B=" + batch : "1") + ", heads (a multiple of kvHeads=" + cache.kvHeads() + "), qLen, headDim=" + cache.headDim() + "], got " + Arrays.toString(q.shape()));
        }
        int heads = (int) q.size(1), qLen = (int) q.size(2), valueDim = cache.valueDim();
        if (out.rank() != 4 || out.size(0) != batch || out.size(1) != heads || out.size(2) != qLen || out.size(3) != valueDim) {
            throw new IllegalArgumentException("out shape " + Arrays.toString(out.shape()) + " must be " + Arrays.toString(new long[] {batch, heads, qLen, valueDim}));
        }
        if (lse != null && (lse.rank() != 3 || lse.size(0) != batch || lse.size(1) != heads || lse.size(2) != qLen)) {
            throw new IllegalArgumentException("lse shape " + Arrays.toString(lse.shape()) + " must be [" + batch + ", " + heads + ", " + qLen + "]");
        }
        if (!q.hasUnitInnerStride()) throw new IllegalArgumentException("q must have a unit-stride last dimension, got " + q + "; call contiguous(arena) first");
        checkWritten("out", out, q, cache);
        if (lse != null) {
            checkWritten("lse", lse, q, cache);
            if (out.overlaps(lse)) throw new IllegalArgumentException("out and lse share memory");
        }
        Backend be = backend();
        float sc = Float.isNaN(scale) ? (float) (1.0 / Math.sqrt(cache.headDim())) : scale;
        KvCache.StepBuffers buffers = cache.stepBuffers(batch);
        for (int b = 0; b < batch; b++) {
            buffers.lengths[b] = cache.length(sequences[b]);
            buffers.tables[b] = cache.pageTable(sequences[b]);
        }
        DecodePlan plan = cache.decodePlan(pattern, mod, heads, qLen).fill(buffers.lengths, batch);
        int read = plan.tileCount();
        if (be instanceof PagedAttentionDevice device && decodeKernelReads(q, cache)) {
            device.pagedAttention(q, cache.keyStorage(), cache.valueStorage(), buffers.tables, plan, cache.pageGenerations(), sc, out, lse);
            return read;
        }
        for (int b = 0; b < batch; b++) {
            perPage(be, cache, sequences[b], plan, b, q.slice(0, b, b + 1), sc, out.slice(0, b, b + 1), lse == null ? null : lse.slice(0, b, b + 1));
        }
        return read;
    }

    private static void checkWritten(String name, Tensor written, Tensor q, KvCache cache) {
        if (written.overlaps(q)) throw new IllegalArgumentException(name + " shares memory with q");
        if (written.overlaps(cache.keyStorage()) || written.overlaps(cache.valueStorage())) throw new IllegalArgumentException(name + " shares memory with the cache");
    }

    /**
     * Whether the decode kernel reads this call's storage: always, since it widens BF16/F16 queries,
     * keys and values as it reads them (float32 arithmetic, so a half-precision cache moves half
     * the bytes); kept as the one place to say otherwise for a future storage type.
     */
    private static boolean decodeKernelReads(Tensor q, KvCache cache) {
        return q != null && cache != null;
    }

    /**
     * Backends without a decode kernel: the fused kernel on each page's view in the pool, the
     * per-page results merged by log-sum-exp in float64, in page order (deterministic). With a
     * modifier, each page's call gets it as a function of the page's indices that evaluates the
     * modifier's float64 definition at the sequence's positions.
     */
    private int perPage(Backend be, KvCache cache, int sequence, DecodePlan plan, int b, Tensor q, float sc, Tensor out, Tensor lse) {
        int heads = (int) q.size(1), qLen = (int) q.size(2), valueDim = cache.valueDim(), pageSize = cache.pageSize(), length = cache.length(sequence);
        DecodeScratch s = cache.scratch(heads, qLen);
        Arrays.fill(s.max, Double.NEGATIVE_INFINITY);
        Arrays.fill(s.sum, 0);
        Arrays.fill(s.acc, 0);
        int[] table = cache.pageTable(sequence);
        int[] cols = plan.pages();
        byte[] kinds = plan.kinds();
        int first = plan.tileStart(b), end = plan.tileEnd(b), words = plan.maskWordsPerRow();
        ScoreMod.Plan modPlan = mod == null ? null : mod.plan(heads, qLen, length, 0);   // at this length: its offset and tables
        long[] mask = null;
        for (int t = first; t < end; t++) {
            int page = cols[t];
            int tokens = Math.min(pageSize, length - page * pageSize);
            long start = (long) table[page] * pageSize;
            HeadLayouts layout;
            if (kinds[t] == TileKind.FULL.code()) {
                layout = denseLayouts.computeIfAbsent(new DenseKey(qLen, tokens, pageSize),
                        key -> HeadLayouts.shared(BlockLayout.dense(qLen, tokens, qLen, pageSize)));
            } else {
                if (mask == null) mask = new long[qLen * words];
                plan.fillTileMask(t, mask);
                layout = HeadLayouts.shared(pageLayout(mask.clone(), words, qLen, tokens, pageSize, page));
            }
            Tensor k = cache.keyStorage().slice(2, start, start + tokens), v = cache.valueStorage().slice(2, start, start + tokens);
            if (modPlan == null) {
                be.attention(q, k, v, layout, sc, s.pageOut, s.pageLse);
            } else {
                be.attention(q, k, v, layout, sc, pageMod(modPlan, b, page * pageSize), s.pageOut, s.pageLse);
            }
            accumulate(s, heads * qLen, valueDim);
        }
        finish(s, heads, qLen, valueDim, out, lse);
        return end - first;
    }

    /** The modifier of one page's fused call: key {@code kv} of the page is key {@code key0 + kv} of sequence {@code b}. */
    private static ScoreMod pageMod(ScoreMod.Plan plan, int b, int key0) {
        return ScoreMod.of(plan.mod() + " on keys " + key0 + "..", (batch, head, i, kv, score) -> {
            double x = score;
            for (int st = 0; st < plan.steps(); st++) x = plan.apply(st, b, head, i, key0 + kv, x);
            return x;
        });
    }

    /** One PARTIAL tile covering a page: its mask, taken from the tile of the whole-length layout. */
    private static BlockLayout pageLayout(long[] mask, int words, int qLen, int tokens, int pageSize, int page) {
        return BlockLayout.fromCsr("page " + page, qLen, tokens, qLen, pageSize, new int[] {0, 1}, new int[] {0}, new byte[] {TileKind.PARTIAL.code()},
                (tile, q0, rows, kv0, cols, dst, off, wordsPerRow) -> {
                    for (int r = 0; r < rows; r++) {
                        Arrays.fill(dst, off + r * wordsPerRow, off + (r + 1) * wordsPerRow, 0L);
                        for (int c = 0; c < cols; c++) {
                            int key = kv0 + c;
                            if ((mask[(q0 + r) * words + (key >>> 6)] & (1L << key)) != 0) dst[off + r * wordsPerRow + (c >>> 6)] |= 1L << c;
                        }
                    }
                });
    }

    /** Folds the page's partial result into the running float64 merge (online log-sum-exp). */
    private static void accumulate(DecodeScratch s, int rows, int valueDim) {
        MemorySegment out = s.pageOut.segment(), lse = s.pageLse.segment();
        for (int r = 0; r < rows; r++) {
            double l = lse.getAtIndex(FLOAT, r);
            if (l == Double.NEGATIVE_INFINITY) continue;   // no key of this page for this row: its output is not read
            int base = r * valueDim;
            if (l > s.max[r]) {
                double rescale = Math.exp(s.max[r] - l);   // 0 when this is the row's first page
                for (int d = 0; d < valueDim; d++) s.acc[base + d] *= rescale;
                s.sum[r] *= rescale;
                s.max[r] = l;
            }
            double w = Math.exp(l - s.max[r]);
            s.sum[r] += w;
            long src = (long) r * valueDim;
            for (int d = 0; d < valueDim; d++) s.acc[base + d] += w * out.getAtIndex(FLOAT, src + d);
        }
    }

    private static void finish(DecodeScratch s, int heads, int qLen, int valueDim, Tensor out, Tensor lse) {
        MemorySegment o = out.segment();
        long[] os = out.strides();
        MemorySegment l = lse == null ? null : lse.segment();
        long[] ls = lse == null ? null : lse.strides();
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < qLen; i++) {
                int r = h * qLen + i;
                boolean empty = s.sum[r] == 0 && s.max[r] == Double.NEGATIVE_INFINITY;
                double inv = empty ? 0 : 1 / s.sum[r];
                long base = out.offset() + h * os[1] + i * os[2];
                for (int d = 0; d < valueDim; d++) o.setAtIndex(FLOAT, base + d * os[3], empty ? 0f : (float) (s.acc[r * valueDim + d] * inv));
                if (l != null) l.setAtIndex(FLOAT, lse.offset() + h * ls[1] + i * ls[2], empty ? Float.NEGATIVE_INFINITY : (float) (s.max[r] + Math.log(s.sum[r])));
            }
        }
    }

    @Override
    public String toString() {
        return "PagedAttention[" + pattern + (mod != null ? ", " + mod : "") + (backend != null ? ", " + backend.name() : "") + (Float.isNaN(scale) ? "" : ", scale=" + scale) + "]";
    }
}
