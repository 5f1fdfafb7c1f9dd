package io.tessera.attention;

import io.tessera.backend.AttentionShape;

import io.tessera.backend.Backend;
import io.tessera.layout.HeadLayouts;
import io.tessera.layout.LayoutSpec;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Shapes;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Softmax attention restricted to a pattern, run by one fused block-sparse kernel:
 *
 * <pre>{@code
 * Attention attn = Attention.sparse(Pattern.slidingWindow(256).or(Pattern.globalTokens(0, 1)));
 * Tensor out = attn.forward(arena, q, k, v);          // q [B,H,Nq,D], k/v [B,Hkv,Nkv,D]
 * attn.on(Backend.named("scalar")).forward(q, k, v, out);
 * }</pre>
 *
 * With {@link #withScoreMod} every score is changed before the softmax (ALiBi, relative-position
 * bias, soft-capping, any function: FlexAttention's score_mod), forward and backward.
 *
 * <p>Immutable: {@link #on}, {@link #withScale}, {@link #withScoreMod} and {@link #withBlockSizes} return new instances that
 * share the compiled-layout cache. Layouts are compiled for each call's lengths at the backend's
 * preferred block sizes and cached, so repeated calls never recompile.
 */
public final class Attention {
    private static final int CACHE_ENTRIES = 32;

    private final LayoutSpec spec;
    private final Backend backend;       // null: Backend.best(), resolved on first use
    private final float scale;           // NaN: 1/√D
    private final int blockQ, blockKV;   // 0: the backend's preference
    private final Map<LayoutKey, HeadLayouts> cache;
    private final ScoreMod mod;          // null: none; aligned like the pattern

    private record LayoutKey(int heads, int qLen, int kvLen, int blockQ, int blockKV) {}

    private Attention(LayoutSpec spec, Backend backend, float scale, int blockQ, int blockKV, Map<LayoutKey, HeadLayouts> cache) {
        this(spec, backend, scale, blockQ, blockKV, cache, null);
    }

    private Attention(LayoutSpec spec, Backend backend, float scale, int blockQ, int blockKV, Map<LayoutKey, HeadLayouts> cache, ScoreMod mod) {
        this.mod = mod;
        this.spec = spec;
        this.backend = backend;
        this.scale = scale;
        this.blockQ = blockQ;
        this.blockKV = blockKV;
        this.cache = cache;
    }

    /** Full softmax attention (the layout where every tile is FULL). */
    public static Attention dense() {
        return sparse(LayoutSpec.dense());
    }

    /** Attention restricted to the pairs {@code spec} allows (a pattern, per-head patterns or a fixed layout). */
    public static Attention sparse(LayoutSpec spec) {
        if (spec == null) throw new NullPointerException("spec");
        return new Attention(spec, null, Float.NaN, 0, 0, lruCache());
    }

    private static Map<LayoutKey, HeadLayouts> lruCache() {
        return java.util.Collections.synchronizedMap(new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<LayoutKey, HeadLayouts> eldest) {
                return size() > CACHE_ENTRIES;
            }
        });
    }

    /** The same attention on another backend. */
    public Attention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new Attention(spec, backend, scale, blockQ, blockKV, cache, mod);
    }

    /** The same attention with softmax scale {@code scale} instead of 1/√D. */
    public Attention withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new Attention(spec, backend, scale, blockQ, blockKV, cache, mod);
    }

    /** The same attention compiled at explicit block sizes (any sizes ≥ 1 work on every backend). */
    public Attention withBlockSizes(int blockQ, int blockKV) {
        if (blockQ < 1) throw new IllegalArgumentException("blockQ must be >= 1, got " + blockQ);
        if (blockKV < 1) throw new IllegalArgumentException("blockKV must be >= 1, got " + blockKV);
        return new Attention(spec, backend, scale, blockQ, blockKV, cache, mod);
    }

    /**
     * The same attention with every score changed by {@code mod} before the softmax (null: none),
     * in the fused kernel of the scalar and SIMD backends. Its relative positions follow the
     * pattern's alignment (a modifier that names another is rejected); with a layout spec that is
     * not a {@link Pattern} (per-head patterns, a fixed layout) they are top-left unless the
     * modifier names one ({@link ScoreMod#aligned}).
     */
    public Attention withScoreMod(ScoreMod mod) {
        ScoreMod aligned = mod;
        if (mod != null && spec instanceof Pattern p && p.alignment() != null) {
            if (mod.alignment() != null && mod.alignment() != p.alignment()) {
                throw new IllegalArgumentException("score modifier " + mod + " is aligned " + mod.alignment() + " but the pattern " + p + " is " + p.alignment());
            }
            aligned = mod.aligned(p.alignment());
        }
        return new Attention(spec, backend, scale, blockQ, blockKV, cache, aligned);
    }

    /** The score modifier, or null. */
    public ScoreMod scoreMod() { return mod; }

    public Backend backend() { return backend != null ? backend : Backend.best(); }

    public LayoutSpec spec() { return spec; }

    /** The compiled layouts a call with these lengths uses (cached). */
    public HeadLayouts layouts(int heads, int qLen, int kvLen) {
        Backend be = backend();
        int bq = blockQ > 0 ? blockQ : be.preferredBlockQ(), bkv = blockKV > 0 ? blockKV : be.preferredBlockKV();
        return cache.computeIfAbsent(new LayoutKey(heads, qLen, kvLen, bq, bkv), key -> spec.layouts(heads, qLen, kvLen, bq, bkv));
    }

    /** Output in a new tensor of {@code arena}. */
    public Tensor forward(Arena arena, Tensor q, Tensor k, Tensor v) {
        AttentionShape s = AttentionShape.of(q, k, v);
        Tensor out = Tensor.zeros(arena, s.outputShape());
        run(s, q, k, v, out, null);
        return out;
    }

    /** Output written into {@code out} ({@code [B,H,Nq,Dv]}): no allocation. */
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        run(AttentionShape.of(q, k, v), q, k, v, out, null);
    }

    /** Output and log-sum-exp in new tensors of {@code arena}. */
    public AttentionResult forwardWithLse(Arena arena, Tensor q, Tensor k, Tensor v) {
        AttentionShape s = AttentionShape.of(q, k, v);
        Tensor out = Tensor.zeros(arena, s.outputShape());
        Tensor lse = Tensor.zeros(arena, s.lseShape());
        run(s, q, k, v, out, lse);
        return new AttentionResult(out, lse);
    }

    /** Output and log-sum-exp written into caller tensors. */
    public void forwardWithLse(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        if (lse == null) throw new NullPointerException("lse");
        run(AttentionShape.of(q, k, v), q, k, v, out, lse);
    }

    /**
     * The backward pass into new tensors of {@code arena}: given the inputs, the output and
     * log-sum-exp of {@link #forwardWithLse} and the loss gradient {@code dOut} (shaped like the
     * output), the gradients with respect to q, k and v. Nothing n×n is stored: each tile's
     * probabilities are recomputed from the log-sum-exp (FlashAttention-2), on the same layouts as
     * the forward. Rows with no allowed key get zero gradients.
     */
    public AttentionGradients backward(Arena arena, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut) {
        if (arena == null) throw new NullPointerException("arena");
        AttentionShape s = AttentionShape.of(q, k, v);
        Tensor dq = Tensor.zeros(arena, q.shape()), dk = Tensor.zeros(arena, k.shape()), dv = Tensor.zeros(arena, v.shape());
        List<Tensor> dParameters = new ArrayList<>();
        if (mod != null) for (Tensor p : mod.parameters()) dParameters.add(Tensor.zeros(arena, p.shape()));
        AttentionGradients g = new AttentionGradients(dq, dk, dv, dParameters);
        backward(q, k, v, out, lse, dOut, g);
        return g;
    }

    /**
     * The backward pass into caller tensors (overwritten), including the gradients of the score
     * modifier's learnable tensors ({@link AttentionGradients#scoreModGradients}, shaped like
     * {@link ScoreMod#parameters}).
     */
    public void backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut, AttentionGradients into) {
        if (into == null) throw new NullPointerException("into");
        AttentionShape s = AttentionShape.of(q, k, v);
        float sc = Float.isNaN(scale) ? s.defaultScale() : scale;
        HeadLayouts lay = layouts(s.heads(), s.qLen(), s.kvLen());
        if (mod == null) {
            if (!into.scoreModGradients().isEmpty()) {
                throw new IllegalArgumentException("into.scoreModGradients must be empty without a score modifier, got " + into.scoreModGradients().size());
            }
            backend().attentionBackward(q, k, v, lay, sc, out, lse, dOut, into.dq(), into.dk(), into.dv());
        } else {
            backend().attentionBackward(q, k, v, lay, sc, mod, out, lse, dOut, into.dq(), into.dk(), into.dv(), into.scoreModGradients());
        }
    }

    /**
     * The backward pass into caller tensors (overwritten): no allocation. {@code dq}, {@code dk},
     * {@code dv} must not share memory with each other or with any input.
     */
    public void backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (mod != null && !mod.parameters().isEmpty()) {
            throw new IllegalStateException("score modifier " + mod + " has learnable tensors: use backward(q, k, v, out, lse, dOut, AttentionGradients) for their gradients too");
        }
        if (mod != null) {
            backward(q, k, v, out, lse, dOut, new AttentionGradients(dq, dk, dv));
            return;
        }
        AttentionShape s = AttentionShape.of(q, k, v);
        float sc = Float.isNaN(scale) ? s.defaultScale() : scale;
        backend().attentionBackward(q, k, v, layouts(s.heads(), s.qLen(), s.kvLen()), sc, out, lse, dOut, dq, dk, dv);
    }

    private void run(AttentionShape s, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        float sc = Float.isNaN(scale) ? s.defaultScale() : scale;
        if (mod != null) {
            backend().attention(q, k, v, layouts(s.heads(), s.qLen(), s.kvLen()), sc, mod, out, lse);
            return;
        }
        backend().attention(q, k, v, layouts(s.heads(), s.qLen(), s.kvLen()), sc, out, lse);
    }

    /**
     * Combines attention results computed over disjoint key sets into the result over their union,
     * in new tensors of {@code arena}; see {@link #merge(List, Tensor, Tensor)}.
     */
    public static AttentionResult merge(Arena arena, List<AttentionResult> partials) {
        if (arena == null) throw new NullPointerException("arena");
        long[] outShape = checkPartials(partials);
        long[] lseShape = Arrays.copyOf(outShape, 3);
        Tensor out = Tensor.zeros(arena, outShape), lse = Tensor.zeros(arena, lseShape);
        merge(partials, out, lse);
        return new AttentionResult(out, lse);
    }

    /**
     * Combines attention results computed over disjoint key sets (split-KV, pages of a KV cache,
     * shards of a sequence on other machines) into the result over their union, written into
     * {@code out} {@code [B,H,Nq,Dv]} and {@code lse} {@code [B,H,Nq]}: per row,
     * {@code lse = log Σ_p exp(lse_p)} and {@code out = Σ_p exp(lse_p − lse) · out_p}, evaluated in
     * float64 after subtracting the largest {@code lse_p} so nothing overflows. A partial whose row
     * LSE is −∞ (no key of its set was allowed) contributes nothing, whatever its output holds; a
     * row that is −∞ in every partial gives output 0 and LSE −∞. Partials are combined in list
     * order, so the result is deterministic. {@code out} and {@code lse} must not share memory with
     * each other or with any partial. Each partial's output and {@code out} may be F32, BF16 or F16
     * (a half-precision partial output is widened exactly; a half-precision out receives the float32
     * result rounded once, to nearest with ties to even); the log-sum-exps, partial and merged, are
     * F32 (rejected by name otherwise).
     */
    public static void merge(List<AttentionResult> partials, Tensor out, Tensor lse) {
        long[] outShape = checkPartials(partials);
        if (out == null) throw new NullPointerException("out");
        if (lse == null) throw new NullPointerException("lse");
        if (!Arrays.equals(out.shape(), outShape)) {
            throw new IllegalArgumentException("out shape " + Arrays.toString(out.shape()) + " must be the partials' output shape " + Arrays.toString(outShape));
        }
        long[] lseShape = Arrays.copyOf(outShape, 3);
        if (!Arrays.equals(lse.shape(), lseShape)) {
            throw new IllegalArgumentException("lse shape " + Arrays.toString(lse.shape()) + " must be " + Arrays.toString(lseShape));
        }
        if (out.overlaps(lse)) throw new IllegalArgumentException("out and lse share memory");
        String merging = "Attention.merge's log-sum-exps (outputs may be F32, BF16 or F16)";
        Shapes.requireF32("lse", lse, merging);
        boolean half = out.type() != ElementType.F32;
        for (int p = 0; p < partials.size(); p++) {
            Shapes.requireF32("partials[" + p + "].logSumExp", partials.get(p).logSumExp(), merging);
            half |= partials.get(p).output().type() != ElementType.F32;
        }
        for (int p = 0; p < partials.size(); p++) {
            AttentionResult r = partials.get(p);
            if (out.overlaps(r.output()) || out.overlaps(r.logSumExp())) throw new IllegalArgumentException("out shares memory with partials[" + p + "]");
            if (lse.overlaps(r.output()) || lse.overlaps(r.logSumExp())) throw new IllegalArgumentException("lse shares memory with partials[" + p + "]");
        }
        if (half) {
            mergeHalf(partials, out, lse);
            return;
        }
        int count = partials.size();
        MemorySegment[] outs = new MemorySegment[count], lses = new MemorySegment[count];
        long[][] outStrides = new long[count][], lseStrides = new long[count][];
        long[] outOffsets = new long[count], lseOffsets = new long[count];
        for (int p = 0; p < count; p++) {
            Tensor o = partials.get(p).output(), l = partials.get(p).logSumExp();
            outs[p] = o.segment(); outStrides[p] = o.strides(); outOffsets[p] = o.offset();
            lses[p] = l.segment(); lseStrides[p] = l.strides(); lseOffsets[p] = l.offset();
        }
        MemorySegment dst = out.segment(), dstLse = lse.segment();
        long[] ds = out.strides(), ls = lse.strides();
        long batch = outShape[0], heads = outShape[1], rows = outShape[2], dv = outShape[3];
        double[] weight = new double[count], acc = new double[(int) Math.min(dv, Integer.MAX_VALUE - 8)];
        for (long b = 0; b < batch; b++) for (long h = 0; h < heads; h++) for (long i = 0; i < rows; i++) {
            double max = Double.NEGATIVE_INFINITY;
            boolean nan = false;
            for (int p = 0; p < count; p++) {
                long[] st = lseStrides[p];
                double x = lses[p].getAtIndex(FLOAT, lseOffsets[p] + b * st[0] + h * st[1] + i * st[2]);
                weight[p] = x;
                if (Double.isNaN(x)) nan = true; else if (x > max) max = x;
            }
            long dstBase = out.offset() + b * ds[0] + h * ds[1] + i * ds[2];
            long lseIndex = lse.offset() + b * ls[0] + h * ls[1] + i * ls[2];
            if (nan || max == Double.NEGATIVE_INFINITY) {   // garbage in stays visible; no key anywhere gives 0 and −∞
                float fill = nan ? Float.NaN : 0f;
                for (long d = 0; d < dv; d++) dst.setAtIndex(FLOAT, dstBase + d * ds[3], fill);
                dstLse.setAtIndex(FLOAT, lseIndex, nan ? Float.NaN : Float.NEGATIVE_INFINITY);
                continue;
            }
            double sum = 0;
            for (int p = 0; p < count; p++) {
                weight[p] = weight[p] == Double.NEGATIVE_INFINITY ? 0 : Math.exp(weight[p] - max);
                sum += weight[p];
            }
            Arrays.fill(acc, 0);
            for (int p = 0; p < count; p++) {
                if (weight[p] == 0) continue;   // an empty (or negligible) key set: its output is never read
                double w = weight[p] / sum;
                long[] st = outStrides[p];
                long base = outOffsets[p] + b * st[0] + h * st[1] + i * st[2];
                for (int d = 0; d < dv; d++) acc[d] += w * outs[p].getAtIndex(FLOAT, base + d * st[3]);
            }
            for (int d = 0; d < dv; d++) dst.setAtIndex(FLOAT, dstBase + d * ds[3], (float) acc[d]);
            dstLse.setAtIndex(FLOAT, lseIndex, (float) (max + Math.log(sum)));
        }
    }

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /**
     * {@link #merge(List, Tensor, Tensor)} with a half-precision partial output or out (checked by
     * the caller): each half-precision partial output widened (exactly) into a float32 copy, the
     * float32 merge into a float32 temporary when out is half-precision, rounded once (to nearest,
     * ties to even) into out. The same bits as merging float32 copies and rounding the float32 out.
     */
    private static void mergeHalf(List<AttentionResult> partials, Tensor out, Tensor lse) {
        try (Arena arena = Arena.ofConfined()) {
            List<AttentionResult> wide = new ArrayList<>(partials.size());
            for (AttentionResult r : partials) {
                Tensor o = r.output();
                wide.add(new AttentionResult(o.type() == ElementType.F32 ? o : o.to(arena, ElementType.F32), r.logSumExp()));
            }
            Tensor out32 = out.type() == ElementType.F32 ? out : Tensor.zeros(arena, out.shape());
            merge(wide, out32, lse);
            if (out32 != out) out.copyFrom(out32);
        }
    }

    /** Validates the partials by name and returns their common output shape. */
    private static long[] checkPartials(List<AttentionResult> partials) {
        if (partials == null) throw new NullPointerException("partials");
        if (partials.isEmpty()) throw new IllegalArgumentException("partials must hold at least one result");
        long[] shape = null;
        for (int p = 0; p < partials.size(); p++) {
            AttentionResult r = partials.get(p);
            if (r == null) throw new NullPointerException("partials[" + p + "]");
            if (r.output() == null) throw new NullPointerException("partials[" + p + "].output");
            if (r.logSumExp() == null) throw new NullPointerException("partials[" + p + "].logSumExp");
            long[] o = r.output().shape(), l = r.logSumExp().shape();
            if (o.length != 4) throw new IllegalArgumentException("partials[" + p + "].output must be rank 4 [batch, heads, qLen, valueDim], got " + Arrays.toString(o));
            if (shape == null) shape = o;
            else if (!Arrays.equals(o, shape)) {
                throw new IllegalArgumentException("partials[" + p + "].output shape " + Arrays.toString(o) + " differs from partials[0]'s " + Arrays.toString(shape));
            }
            if (!Arrays.equals(l, Arrays.copyOf(o, 3))) {
                throw new IllegalArgumentException("partials[" + p + "].logSumExp shape " + Arrays.toString(l) + " must be " + Arrays.toString(Arrays.copyOf(o, 3)));
            }
        }
        if (shape[3] > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("valueDim=" + shape[3] + " is too large to merge");
        return shape;
    }

    @Override
    public String toString() {
        return "Attention[" + spec + (backend != null ? ", " + backend.name() : "") + (Float.isNaN(scale) ? "" : ", scale=" + scale)
                + (mod == null ? "" : ", " + mod) + "]";
    }
}
