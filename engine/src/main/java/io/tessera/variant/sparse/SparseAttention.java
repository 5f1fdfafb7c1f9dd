package io.tessera.variant.sparse;

import io.tessera.backend.SparseAttentionDevice;
import io.tessera.layout.CsrMatrix;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.Backend;
import io.tessera.cpu.SparseKernels;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Attention on an explicit sparse pattern: SDDMM (scores only at the CSR's entries), row softmax
 * in place, SpMM with V. For irregular and content-based sparsity, where tiles would be mostly
 * empty; structured patterns are faster through the fused block kernel. O(nnz·D) per head.
 */
public final class SparseAttention {
    private SparseAttention() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** One pattern for every (batch, head): out and lse ([B,H,Nq] or null) as in the fused kernel. */
    public static void forward(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        AttentionShape s = checked(q, k, v, pattern, scale, out, lse).shape();
        CsrMatrix work = pattern.withFreshValues();
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0; h < s.heads(); h++) {
                int hk = s.kvHeadOf(h);
                sddmm(q.select(0, b).select(0, h), k.select(0, b).select(0, hk), scale, work);
                Tensor lseRow = lse == null ? null : lse.select(0, b).select(0, h);
                softmaxRows(work, lseRow);
                spmm(work, v.select(0, b).select(0, hk), out.select(0, b).select(0, h));
            }
        }
    }

    /**
     * The same on {@code backend}: a backend that implements {@link SparseAttentionDevice} (the
     * tornado backend) runs the SDDMM and SpMM kernels on its device, any other gets the CPU path.
     */
    public static void forward(Backend backend, Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        if (backend == null) throw new NullPointerException("backend");
        if (backend instanceof SparseAttentionDevice device) {
            device.sparseAttention(q, k, v, pattern, scale, out, lse);
        } else {
            forward(q, k, v, pattern, scale, out, lse);
        }
    }

    /**
     * Validates an explicit sparse call, naming the offending argument: the attention arguments as
     * every backend checks them, and a pattern with one row per query and one column per key.
     * {@link SparseAttentionDevice} implementations call it on the arguments they receive.
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
        AttentionGeometry g = AttentionGeometry.checked(q, k, v, scale, out, lse);
        AttentionShape s = g.shape();
        if (pattern.rows() != s.qLen() || pattern.cols() != s.kvLen()) {
            throw new IllegalArgumentException("pattern is " + pattern.rows() + "x" + pattern.cols() + " but the call has qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        }
        return g;
    }

    /** values[e] = scale · q[row(e)] · k[col(e)]. */
    public static void sddmm(Tensor q, Tensor k, float scale, CsrMatrix m) {
        int d = (int) q.size(1);
        MemorySegment qs = q.segment(), ks = k.segment();
        int[] offsets = m.rowOffsets(), cols = m.colIndices();
        float[] values = m.values();
        for (int r = 0; r < m.rows(); r++) {
            long qr = q.offset() + r * q.stride(0);
            for (int e = offsets[r]; e < offsets[r + 1]; e++) {
                values[e] = scale * SparseKernels.dot(qs, qr, ks, k.offset() + cols[e] * k.stride(0), d);
            }
        }
    }

    /** Softmax of each row's values in place; empty rows stay empty with LSE −∞. */
    public static void softmaxRows(CsrMatrix m, Tensor lse) {
        int[] offsets = m.rowOffsets();
        float[] values = m.values();
        for (int r = 0; r < m.rows(); r++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int e = offsets[r]; e < offsets[r + 1]; e++) max = Math.max(max, values[e]);
            float sum = 0;
            for (int e = offsets[r]; e < offsets[r + 1]; e++) sum += values[e] = (float) Math.exp(values[e] - max);
            for (int e = offsets[r]; e < offsets[r + 1]; e++) values[e] /= sum;
            if (lse != null) lse.set(sum > 0 ? max + (float) Math.log(sum) : Float.NEGATIVE_INFINITY, r);
        }
    }

    /** out[r] = Σ_e values[e] · v[col(e)]; empty rows give 0. */
    public static void spmm(CsrMatrix m, Tensor v, Tensor out) {
        int dv = (int) v.size(1);
        MemorySegment vs = v.segment(), os = out.segment();
        int[] offsets = m.rowOffsets(), cols = m.colIndices();
        float[] values = m.values();
        float[] acc = new float[dv];
        for (int r = 0; r < m.rows(); r++) {
            java.util.Arrays.fill(acc, 0f);
            for (int e = offsets[r]; e < offsets[r + 1]; e++) {
                SparseKernels.axpy(values[e], vs, v.offset() + cols[e] * v.stride(0), acc, dv);
            }
            long or = out.offset() + r * out.stride(0);
            for (int c = 0; c < dv; c++) os.setAtIndex(FLOAT, or + c, acc[c]);
        }
    }
}
