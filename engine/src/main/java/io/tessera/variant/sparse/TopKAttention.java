package io.tessera.variant.sparse;

import io.tessera.layout.CsrMatrix;
import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.backend.SparseAttentionDevice;
import io.tessera.variant.AttentionOperator;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.internal.HalfInputs;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Exact per-query top-k attention (Gupta et al. 2021, "Memory-efficient Transformers via Top-k
 * Attention"): each query keeps its k highest-scoring keys (ties: lower key index first), then
 * softmax over those only. The pattern is chosen from the scores, so it runs on the explicit
 * sparse path: a CSR per head, SDDMM, softmax, SpMM. q, keys, v and out may each be F32, BF16 or
 * F16: half-precision ones are widened exactly into float32 copies (the selection is made from the
 * widened scores), and a half-precision out receives the float32 output rounded once; lse is F32.
 */
public final class TopKAttention implements AttentionOperator.Scaled, AttentionOperator.WithLse {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int k;
    private final Backend backend;   // null: Backend.best()
    private final float scale;       // NaN: 1/√D

    private TopKAttention(int k) {
        this(k, null, Float.NaN);
    }

    private TopKAttention(int k, Backend backend, float scale) {
        if (k < 1) throw new IllegalArgumentException("top-k k must be >= 1, got " + k);
        this.k = k;
        this.backend = backend;
        this.scale = scale;
    }

    public static TopKAttention withK(int k) { return new TopKAttention(k); }

    /** The same top-k attention with its sparse SDDMM/softmax/SpMM on {@code backend}; the selection runs on the CPU. */
    @Override
    public TopKAttention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new TopKAttention(k, backend, scale);
    }

    /** Selection and softmax both on {@code scale·q·k} instead of the default 1/√D. */
    @Override
    public TopKAttention withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new TopKAttention(k, backend, scale);
    }

    @Override
    public void forward(Tensor q, Tensor keys, Tensor v, Tensor out) {
        run(q, keys, v, out, null);
    }

    @Override
    public void forwardWithLse(Tensor q, Tensor keys, Tensor v, Tensor out, Tensor lse) {
        if (lse == null) throw new NullPointerException("lse");
        run(q, keys, v, out, lse);
    }

    private void run(Tensor q, Tensor keys, Tensor v, Tensor out, Tensor lse) {
        if (HalfInputs.any(q, keys, v, out)) {
            // Half-precision storage: selection and attention from float32 copies, the output rounded once to its type.
            AttentionShape s = Checks.attentionAnyType(q, "keys", keys, "v", v, out);
            if (k > s.kvLen()) throw new IllegalArgumentException("top-k k=" + k + " exceeds kvLen=" + s.kvLen());
            Checks.intProduct("the top-k pattern's qLen·k", s.qLen(), k);
            Checks.logSumExp(s, lse, q, "keys", keys, "v", v, out);
            HalfInputs.widened(q, keys, v, out, (q32, k32, v32, out32) -> run(q32, k32, v32, out32, lse));
            return;
        }
        AttentionShape s = Checks.attention(q, "keys", keys, "v", v, out);
        if (k > s.kvLen()) throw new IllegalArgumentException("top-k k=" + k + " exceeds kvLen=" + s.kvLen());
        Checks.intProduct("the top-k pattern's qLen·k", s.qLen(), k);
        if (lse != null) {
            Checks.disjoint("lse", lse, "q", q);
            Checks.disjoint("lse", lse, "keys", keys);
            Checks.disjoint("lse", lse, "v", v);
            Checks.disjoint("lse", lse, "out", out);
        }
        float scale = Float.isNaN(this.scale) ? s.defaultScale() : this.scale;
        AttentionGeometry.checked(q, keys, v, scale, out, lse);
        SparseAttentionDevice device = SparseAttention.device(backend != null ? backend : Backend.best());
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0; h < s.heads(); h++) {
                int hk = s.kvHeadOf(h);
                CsrMatrix chosen = select(q.select(0, b).select(0, h), keys.select(0, b).select(0, hk), scale);
                // One (batch, head) as a [1, 1, n, d] call: each head has its own pattern.
                device.sparseAttention(head(q, b, h), head(keys, b, hk), head(v, b, hk), chosen, scale, head(out, b, h), lse == null ? null : lse.slice(0, b, b + 1).slice(1, h, h + 1));
            }
        }
    }

    private static Tensor head(Tensor t, int b, int h) {
        return t.slice(0, b, b + 1).slice(1, h, h + 1);
    }

    /** The top-k keys of every query row, as a CSR pattern (columns sorted). */
    CsrMatrix select(Tensor q, Tensor keys, float scale) {
        int rows = (int) q.size(0), n = (int) keys.size(0), d = (int) q.size(1);
        int[] offsets = new int[rows + 1], cols = new int[Checks.intProduct("the top-k pattern's qLen·k", rows, k)];
        float[] scores = new float[n];
        long[] ranked = new long[n];
        MemorySegment qs = q.segment(), ks = keys.segment();
        for (int r = 0; r < rows; r++) {
            long qr = q.offset() + r * q.stride(0);
            for (int j = 0; j < n; j++) {
                long kr = keys.offset() + j * keys.stride(0);
                float dot = 0;
                for (int c = 0; c < d; c++) dot += qs.getAtIndex(FLOAT, qr + c) * ks.getAtIndex(FLOAT, kr + c);
                scores[j] = scale * dot;
            }
            // Sort keys by (score descending, index ascending) through an order-preserving long key.
            for (int j = 0; j < n; j++) ranked[j] = ((long) descendingBits(scores[j]) << 32) | j;
            Arrays.sort(ranked);
            for (int t = 0; t < k; t++) cols[r * k + t] = (int) ranked[t];
            Arrays.sort(cols, r * k, (r + 1) * k);
            offsets[r + 1] = (r + 1) * k;
        }
        return new CsrMatrix(rows, n, offsets, cols);
    }

    /** An int whose signed order is the descending order of the float. */
    private static int descendingBits(float x) {
        int bits = Float.floatToIntBits(x == 0f ? 0f : x);
        int ascending = bits >= 0 ? bits : bits ^ 0x7fffffff;   // signed order == float order
        return ~ascending;
    }
}
