package io.tessera.backend;

import io.tessera.tensor.Shapes;
import io.tessera.tensor.Tensor;
import java.util.Arrays;

/**
 * The validated geometry of one attention call: q {@code [B, H, Nq, D]}, k {@code [B, Hkv, Nkv, D]},
 * v {@code [B, Hkv, Nkv, Dv]}, with {@code Hkv} dividing {@code H} (grouped-query attention;
 * query head {@code h} reads key/value head {@code h / (H/Hkv)}).
 */
public record AttentionShape(int batch, int heads, int kvHeads, int qLen, int kvLen, int headDim, int valueDim) {

    public static AttentionShape of(Tensor q, Tensor k, Tensor v) {
        requireRank4("q", q);
        requireRank4("k", k);
        requireRank4("v", v);
        long[] qs = q.shape(), ks = k.shape(), vs = v.shape();
        if (ks[0] != qs[0]) throw mismatch("k batch (dim 0)", ks[0], "q batch", qs[0], q, k, v);
        if (vs[0] != qs[0]) throw mismatch("v batch (dim 0)", vs[0], "q batch", qs[0], q, k, v);
        if (vs[1] != ks[1]) throw mismatch("v heads (dim 1)", vs[1], "k heads", ks[1], q, k, v);
        if (vs[2] != ks[2]) throw mismatch("v length (dim 2)", vs[2], "k length", ks[2], q, k, v);
        if (ks[3] != qs[3]) throw mismatch("k head dim (dim 3)", ks[3], "q head dim", qs[3], q, k, v);
        if (qs[1] % ks[1] != 0) {
            throw new IllegalArgumentException("k heads=" + ks[1] + " must divide q heads=" + qs[1] + " (grouped-query attention); shapes q=" + Arrays.toString(qs) + " k=" + Arrays.toString(ks));
        }
        for (Tensor t : new Tensor[] {q, k, v}) {
            if (!t.hasUnitInnerStride()) throw new IllegalArgumentException("the last dimension must be unit-stride, got " + t + "; call contiguous(arena) first");
        }
        return new AttentionShape(
                Shapes.checkedInt("batch", qs[0]), Shapes.checkedInt("heads", qs[1]), Shapes.checkedInt("kvHeads", ks[1]),
                Shapes.checkedInt("qLen", qs[2]), Shapes.checkedInt("kvLen", ks[2]),
                Shapes.checkedInt("headDim", qs[3]), Shapes.checkedInt("valueDim", vs[3]));
    }

    /** Query heads per key/value head. */
    public int queryHeadsPerKvHead() { return heads / kvHeads; }

    /** The key/value head a query head reads. */
    public int kvHeadOf(int head) { return head / queryHeadsPerKvHead(); }

    /** The output shape {@code [B, H, Nq, Dv]}. */
    public long[] outputShape() { return new long[] {batch, heads, qLen, valueDim}; }

    /** The log-sum-exp shape {@code [B, H, Nq]}. */
    public long[] lseShape() { return new long[] {batch, heads, qLen}; }

    /** 1/√D, the default softmax scale. */
    public float defaultScale() { return (float) (1.0 / Math.sqrt(headDim)); }

    /** Checks that {@code out} can receive this call's output. */
    public void checkOutput(String name, Tensor out, long[] expected) {
        if (!Arrays.equals(out.shape(), expected)) {
            throw new IllegalArgumentException(name + " shape " + Arrays.toString(out.shape()) + " must be " + Arrays.toString(expected));
        }
        if (!out.hasUnitInnerStride()) throw new IllegalArgumentException(name + " must have a unit-stride last dimension, got " + out);
    }

    private static void requireRank4(String name, Tensor t) {
        if (t == null) throw new NullPointerException(name);
        if (t.rank() != 4) throw new IllegalArgumentException(name + " must be rank 4 [batch, heads, seq, dim], got shape " + Arrays.toString(t.shape()));
    }

    private static IllegalArgumentException mismatch(String what, long got, String other, long expected, Tensor q, Tensor k, Tensor v) {
        return new IllegalArgumentException(what + "=" + got + " does not match " + other + "=" + expected
                + "; shapes q=" + Arrays.toString(q.shape()) + " k=" + Arrays.toString(k.shape()) + " v=" + Arrays.toString(v.shape()));
    }
}
