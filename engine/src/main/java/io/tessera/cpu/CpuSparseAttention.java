package io.tessera.cpu;

import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.AttentionShape;
import io.tessera.layout.CsrMatrix;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The explicit sparse path on the CPU (what {@code SparseAttention} and {@code TopKAttention} run
 * through {@link io.tessera.backend.SparseAttentionDevice}): SDDMM (scores only at the CSR's
 * entries), row softmax in place, SpMM with V. One work item per (batch, head), spread over the
 * backend's worker pool; an item owns its score array, so results do not depend on the thread count.
 */
final class CpuSparseAttention {
    private CpuSparseAttention() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    static void forward(int threads, Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        AttentionShape s = AttentionGeometry.checked(q, k, v, pattern, scale, out, lse).shape();
        int items = Math.multiplyExact(s.batch(), s.heads());
        WorkerPool.ItemTask task = item -> {
            int b = item / s.heads(), h = item % s.heads(), hk = s.kvHeadOf(h);
            CsrMatrix work = pattern.withFreshValues();
            sddmm(q.select(0, b).select(0, h), k.select(0, b).select(0, hk), scale, work);
            softmaxRows(work, lse == null ? null : lse.select(0, b).select(0, h));
            spmm(work, v.select(0, b).select(0, hk), out.select(0, b).select(0, h));
        };
        if (threads == 1) {
            for (int i = 0; i < items; i++) task.run(i);
        } else {
            WorkerPool.of(threads).forEach(items, task, q.segment(), k.segment(), v.segment(), out.segment(), lse == null ? null : lse.segment());
        }
    }

    /** values[e] = scale · q[row(e)] · k[col(e)]. */
    static void sddmm(Tensor q, Tensor k, float scale, CsrMatrix m) {
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
    static void softmaxRows(CsrMatrix m, Tensor lse) {
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
    static void spmm(CsrMatrix m, Tensor v, Tensor out) {
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
