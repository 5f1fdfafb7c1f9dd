package io.tessera.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The explicit sparse path on the device, as two kernels of one task graph over one CSR pattern
 * shared by every (batch, head): {@link #sddmm} scores every stored entry (one work-item per entry
 * and head), then {@link #softmaxSpmm} normalizes each row and multiplies by V (one work-item per
 * row and head). Scores stay on the device between the two.
 */
final class SparseKernel {
    private SparseKernel() {}

    /** Indices into params after the common geometry. */
    static final int NON_ZEROS = DeviceGeometry.COMMON;
    static final int EXTRA_PARAMS = 1;

    /** values[bh·nnz + e] = scale · q[b, h, row(e)] · k[b, h/queryHeadsPerKvHead, col(e)]. */
    static void sddmm(KernelContext ctx, FloatArray q, FloatArray k, IntArray params, FloatArray scale,
                      IntArray entryRows, IntArray cols, FloatArray values) {
        int nnz = params.get(NON_ZEROS), heads = params.get(DeviceGeometry.HEADS);
        int total = params.get(DeviceGeometry.BATCH) * heads * nnz;
        int id = ctx.globalIdx;
        if (id < total) {
            int e = id % nnz;
            int bh = id / nnz;
            int b = bh / heads;
            int h = bh % heads;
            int hk = h / params.get(DeviceGeometry.QUERY_HEADS_PER_KV_HEAD);
            int d = params.get(DeviceGeometry.HEAD_DIM);
            int qAt = params.get(DeviceGeometry.Q_OFF) + b * params.get(DeviceGeometry.Q_B) + h * params.get(DeviceGeometry.Q_H)
                    + entryRows.get(e) * params.get(DeviceGeometry.Q_ROW);
            int kAt = params.get(DeviceGeometry.K_OFF) + b * params.get(DeviceGeometry.K_B) + hk * params.get(DeviceGeometry.K_H)
                    + cols.get(e) * params.get(DeviceGeometry.K_ROW);
            float dot = 0f;
            for (int x = 0; x < d; x++) {
                dot += q.get(qAt + x) * k.get(kAt + x);
            }
            values.set(id, scale.get(0) * dot);
        }
    }

    /** out[b, h, r] = Σ_e softmax(values of row r)_e · v[b, h/queryHeadsPerKvHead, col(e)]; empty rows give 0 and LSE −∞. */
    static void softmaxSpmm(KernelContext ctx, FloatArray v, FloatArray out, FloatArray lse, IntArray params,
                            IntArray rowOffsets, IntArray cols, FloatArray values) {
        int heads = params.get(DeviceGeometry.HEADS), qLen = params.get(DeviceGeometry.Q_LEN);
        int total = params.get(DeviceGeometry.BATCH) * heads * qLen;
        int id = ctx.globalIdx;
        if (id < total) {
            int r = id % qLen;
            int bh = id / qLen;
            int b = bh / heads;
            int h = bh % heads;
            int hk = h / params.get(DeviceGeometry.QUERY_HEADS_PER_KV_HEAD);
            int dv = params.get(DeviceGeometry.VALUE_DIM);
            int base = bh * params.get(NON_ZEROS);
            int first = rowOffsets.get(r);
            int end = rowOffsets.get(r + 1);
            float max = Float.NEGATIVE_INFINITY;
            for (int e = first; e < end; e++) {
                max = Math.max(max, values.get(base + e));
            }
            float sum = 0f;
            for (int e = first; e < end; e++) {
                sum += TornadoMath.exp(values.get(base + e) - max);
            }
            float inv = 0f;
            if (sum > 0f) {
                inv = 1f / sum;
            }
            // This item owns its row's entries, so the probabilities replace the scores in place.
            for (int e = first; e < end; e++) {
                values.set(base + e, TornadoMath.exp(values.get(base + e) - max) * inv);
            }
            int vBase = params.get(DeviceGeometry.V_OFF) + b * params.get(DeviceGeometry.V_B) + hk * params.get(DeviceGeometry.V_H);
            int vRow = params.get(DeviceGeometry.V_ROW);
            int oAt = params.get(DeviceGeometry.O_OFF) + b * params.get(DeviceGeometry.O_B) + h * params.get(DeviceGeometry.O_H)
                    + r * params.get(DeviceGeometry.O_ROW);
            for (int x = 0; x < dv; x++) {
                float acc = 0f;
                for (int e = first; e < end; e++) {
                    acc += values.get(base + e) * v.get(vBase + cols.get(e) * vRow + x);
                }
                out.set(oAt + x, acc);
            }
            if (params.get(DeviceGeometry.HAS_LSE) != 0) {
                float logSumExp = Float.NEGATIVE_INFINITY;
                if (sum > 0f) {
                    logSumExp = max + TornadoMath.log(sum);
                }
                lse.set(params.get(DeviceGeometry.L_OFF) + b * params.get(DeviceGeometry.L_B) + h * params.get(DeviceGeometry.L_H)
                        + r * params.get(DeviceGeometry.L_ROW), logSumExp);
            }
        }
    }
}
