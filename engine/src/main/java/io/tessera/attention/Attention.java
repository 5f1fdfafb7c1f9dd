package io.tessera.attention;

import io.tessera.backend.AttentionShape;

import io.tessera.backend.Backend;
import io.tessera.layout.HeadLayouts;
import io.tessera.layout.LayoutSpec;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.LinkedHashMap;
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
 * Immutable: {@link #on}, {@link #withScale} and {@link #withBlockSizes} return new instances that
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

    private record LayoutKey(int heads, int qLen, int kvLen, int blockQ, int blockKV) {}

    private Attention(LayoutSpec spec, Backend backend, float scale, int blockQ, int blockKV, Map<LayoutKey, HeadLayouts> cache) {
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
        return new Attention(spec, backend, scale, blockQ, blockKV, cache);
    }

    /** The same attention with softmax scale {@code scale} instead of 1/√D. */
    public Attention withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new Attention(spec, backend, scale, blockQ, blockKV, cache);
    }

    /** The same attention compiled at explicit block sizes (any sizes ≥ 1 work on every backend). */
    public Attention withBlockSizes(int blockQ, int blockKV) {
        if (blockQ < 1) throw new IllegalArgumentException("blockQ must be >= 1, got " + blockQ);
        if (blockKV < 1) throw new IllegalArgumentException("blockKV must be >= 1, got " + blockKV);
        return new Attention(spec, backend, scale, blockQ, blockKV, cache);
    }

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
        backward(q, k, v, out, lse, dOut, dq, dk, dv);
        return new AttentionGradients(dq, dk, dv);
    }

    /**
     * The backward pass into caller tensors (overwritten): no allocation. {@code dq}, {@code dk},
     * {@code dv} must not share memory with each other or with any input.
     */
    public void backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        AttentionShape s = AttentionShape.of(q, k, v);
        float sc = Float.isNaN(scale) ? s.defaultScale() : scale;
        backend().attentionBackward(q, k, v, layouts(s.heads(), s.qLen(), s.kvLen()), sc, out, lse, dOut, dq, dk, dv);
    }

    private void run(AttentionShape s, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        float sc = Float.isNaN(scale) ? s.defaultScale() : scale;
        backend().attention(q, k, v, layouts(s.heads(), s.qLen(), s.kvLen()), sc, out, lse);
    }

    @Override
    public String toString() {
        return "Attention[" + spec + (backend != null ? ", " + backend.name() : "") + (Float.isNaN(scale) ? "" : ", scale=" + scale) + "]";
    }
}
