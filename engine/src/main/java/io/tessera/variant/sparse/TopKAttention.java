package io.tessera.variant.sparse;

import io.tessera.layout.CsrMatrix;

import io.tessera.backend.AttentionShape;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Exact per-query top-k attention (Gupta et al. 2021, "Memory-efficient Transformers via Top-k
 * Attention"): each query keeps its k highest-scoring keys (ties: lower key index first), then
 * softmax over those only. The pattern is chosen from the scores, so it runs on the explicit
 * sparse path: a CSR per head, SDDMM, softmax, SpMM.
 */
public final class TopKAttention {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int k;

    private TopKAttention(int k) {
        if (k < 1) throw new IllegalArgumentException("top-k k must be >= 1, got " + k);
        this.k = k;
    }

    public static TopKAttention withK(int k) { return new TopKAttention(k); }

    public void forward(Tensor q, Tensor keys, Tensor v, Tensor out) {
        AttentionShape s = Checks.attention(q, "keys", keys, "v", v, out);
        if (k > s.kvLen()) throw new IllegalArgumentException("top-k k=" + k + " exceeds kvLen=" + s.kvLen());
        Checks.intProduct("the top-k pattern's qLen·k", s.qLen(), k);
        float scale = s.defaultScale();
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0; h < s.heads(); h++) {
                Tensor qh = q.select(0, b).select(0, h), kh = keys.select(0, b).select(0, s.kvHeadOf(h));
                CsrMatrix chosen = select(qh, kh, scale);
                SparseAttention.sddmm(qh, kh, scale, chosen);
                SparseAttention.softmaxRows(chosen, null);
                SparseAttention.spmm(chosen, v.select(0, b).select(0, s.kvHeadOf(h)), out.select(0, b).select(0, h));
            }
        }
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
