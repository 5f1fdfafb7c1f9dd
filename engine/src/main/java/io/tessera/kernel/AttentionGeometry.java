package io.tessera.kernel;

import io.tessera.attention.AttentionShape;
import io.tessera.tensor.Tensor;

/**
 * Element offsets and strides of q, k, v, out and lse for one attention call, flattened to
 * primitives so kernels never touch a {@link Tensor} (or any virtual call) in their loops.
 * Rows are unit-stride (checked by {@link AttentionShape#of}).
 */
record AttentionGeometry(
        AttentionShape shape, float scale,
        long qOff, long qB, long qH, long qRow,
        long kOff, long kB, long kH, long kRow,
        long vOff, long vB, long vH, long vRow,
        long oOff, long oB, long oH, long oRow,
        long lOff, long lB, long lH, long lRow) {

    static AttentionGeometry of(AttentionShape s, float scale, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        return new AttentionGeometry(s, scale,
                q.offset(), q.stride(0), q.stride(1), q.stride(2),
                k.offset(), k.stride(0), k.stride(1), k.stride(2),
                v.offset(), v.stride(0), v.stride(1), v.stride(2),
                out.offset(), out.stride(0), out.stride(1), out.stride(2),
                lse == null ? 0 : lse.offset(), lse == null ? 0 : lse.stride(0), lse == null ? 0 : lse.stride(1), lse == null ? 0 : lse.stride(2));
    }

    long qBase(int b, int h) { return qOff + b * qB + h * qH; }
    long kBase(int b, int hk) { return kOff + b * kB + hk * kH; }
    long vBase(int b, int hk) { return vOff + b * vB + hk * vH; }
    long oBase(int b, int h) { return oOff + b * oB + h * oH; }
    long lBase(int b, int h) { return lOff + b * lB + h * lH; }
}
