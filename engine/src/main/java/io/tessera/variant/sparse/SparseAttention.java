package io.tessera.variant.sparse;

import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.backend.SparseAttentionDevice;
import io.tessera.layout.CsrMatrix;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.internal.HalfInputs;

/**
 * Attention on an explicit sparse pattern: SDDMM (scores only at the CSR's entries), row softmax
 * in place, SpMM with V. For irregular and content-based sparsity, where tiles would be mostly
 * empty; structured patterns are faster through the fused block kernel. O(nnz·D) per head.
 * The backend runs it ({@link SparseAttentionDevice}: the CPU backends over their worker threads,
 * the tornado backend on its device).
 *
 * <pre>{@code
 * SparseAttention attn = SparseAttention.of(CsrMatrix.fromLayout(pattern.compile(n, n, 64, 64)));
 * attn.on(Backend.named("scalar")).withScale(0.125f).forwardWithLse(q, k, v, out, lse);
 * }</pre>
 */
public final class SparseAttention implements AttentionOperator.Scaled, AttentionOperator.WithLse {
    private final CsrMatrix pattern;
    private final Backend backend;   // null: Backend.best()
    private final float scale;       // NaN: 1/√D

    private SparseAttention(CsrMatrix pattern, Backend backend, float scale) {
        this.pattern = pattern;
        this.backend = backend;
        this.scale = scale;
    }

    /** Attention over the entries of {@code pattern} ({@code [Nq, Nkv]}), the same for every (batch, head). */
    public static SparseAttention of(CsrMatrix pattern) {
        if (pattern == null) throw new NullPointerException("pattern");
        return new SparseAttention(pattern, null, Float.NaN);
    }

    @Override
    public SparseAttention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new SparseAttention(pattern, backend, scale);
    }

    @Override
    public SparseAttention withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new SparseAttention(pattern, backend, scale);
    }

    public CsrMatrix pattern() { return pattern; }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        run(q, k, v, out, null);
    }

    @Override
    public void forwardWithLse(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        if (lse == null) throw new NullPointerException("lse");
        run(q, k, v, out, lse);
    }

    private void run(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        float sc = Float.isNaN(scale) ? AttentionShape.of(q, k, v).defaultScale() : scale;
        forward(backend != null ? backend : Backend.best(), q, k, v, pattern, sc, out, lse);
    }

    /** One pattern for every (batch, head) on the best backend: out and lse ([B,H,Nq] or null) as in the fused kernel. */
    public static void forward(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        forward(Backend.best(), q, k, v, pattern, scale, out, lse);
    }

    /**
     * The same on {@code backend} when it implements {@link SparseAttentionDevice} (the engine's CPU
     * backends and the tornado backend do); on another backend, on the best available backend that does.
     * q, k, v and out may each be F32, BF16 or F16: half-precision ones are widened exactly into
     * float32 copies on the CPU, the device runs the float32 path on them, and a half-precision out
     * receives the float32 output rounded once (to nearest, ties to even); lse is F32.
     */
    public static void forward(Backend backend, Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        if (backend == null) throw new NullPointerException("backend");
        if (HalfInputs.any(q, k, v, out)) {
            // Half-precision storage: the float32 path on float32 copies, the output rounded once to its type.
            checkedAnyType(q, k, v, pattern, scale, out, lse);
            HalfInputs.widened(q, k, v, out, (q32, k32, v32, out32) -> forward(backend, q32, k32, v32, pattern, scale, out32, lse));
            return;
        }
        checked(q, k, v, pattern, scale, out, lse);
        device(backend).sparseAttention(q, k, v, pattern, scale, out, lse);
    }

    static SparseAttentionDevice device(Backend backend) {
        if (backend instanceof SparseAttentionDevice device) return device;
        for (Backend b : Backend.available()) if (b instanceof SparseAttentionDevice device) return device;
        throw new IllegalStateException("no available backend runs the explicit sparse path (SparseAttentionDevice); backend " + backend.name() + " does not");
    }

    /**
     * {@link #checked} for a call with half-precision storage: q, k, v and out each F32, BF16 or
     * F16; lse (optional) F32.
     */
    private static void checkedAnyType(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        if (pattern == null) throw new NullPointerException("pattern");
        AttentionShape s = Checks.attentionAnyType(q, "k", k, "v", v, out);
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        if (pattern.rows() != s.qLen() || pattern.cols() != s.kvLen()) {
            throw new IllegalArgumentException("pattern is " + pattern.rows() + "x" + pattern.cols() + " but the call has qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        }
        Checks.logSumExp(s, lse, q, "k", k, "v", v, out);
    }

    /**
     * Validates an explicit sparse call, naming the offending argument: the attention arguments as
     * every backend checks them, and a pattern with one row per query and one column per key
     * ({@link AttentionGeometry#checked(Tensor, Tensor, Tensor, CsrMatrix, float, Tensor, Tensor)}).
     */
    public static AttentionGeometry checked(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        if (pattern == null) throw new NullPointerException("pattern");
        Checks.attention(q, "k", k, "v", v, out);
        if (lse != null) {
            Checks.disjoint("lse", lse, "q", q);
            Checks.disjoint("lse", lse, "k", k);
            Checks.disjoint("lse", lse, "v", v);
            Checks.disjoint("lse", lse, "out", out);
        }
        return AttentionGeometry.checked(q, k, v, pattern, scale, out, lse);
    }
}
