package io.tessera.backend;

import io.tessera.layout.CsrMatrix;
import io.tessera.layout.HeadLayouts;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Shapes;
import io.tessera.tensor.Tensor;

/**
 * Element offsets and strides of q, k, v, out and lse for one attention call, flattened to
 * primitives so kernels never touch a {@link Tensor} (or any virtual call) in their loops.
 * Rows are unit-stride (checked by {@link AttentionShape#of}). Public so that backends in other
 * modules (tornado-kernels) validate exactly as the CPU backends do.
 */
public record AttentionGeometry(
        AttentionShape shape, float scale,
        long qOff, long qB, long qH, long qRow,
        long kOff, long kB, long kH, long kRow,
        long vOff, long vB, long vH, long vRow,
        long oOff, long oB, long oH, long oRow,
        long lOff, long lB, long lH, long lRow) {

    /**
     * Validates every argument of {@link Backend#attention} for a kernel that reads and writes
     * float32 only, naming the offending one (a half-precision tensor included).
     */
    public static AttentionGeometry checked(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
        if (layouts == null) throw new NullPointerException("layouts");
        AttentionGeometry g = checked(q, k, v, scale, out, lse);
        layouts.check(g.shape().heads(), g.shape().qLen(), g.shape().kvLen());
        return g;
    }

    /**
     * Validates every argument of {@link Backend#attention} for a kernel with half-precision storage
     * (the CPU backends): q, k, v and out may each be {@link ElementType#F32}, {@code BF16} or
     * {@code F16} (the kernel widens on reading, accumulates in float32 and rounds once on writing);
     * lse must be F32, and is rejected by name otherwise.
     */
    public static AttentionGeometry checkedHalfStorage(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
        if (layouts == null) throw new NullPointerException("layouts");
        AttentionGeometry g = checkedAnyType(q, k, v, scale, out, lse);
        if (lse != null && lse.type() != ElementType.F32) {
            throw new IllegalArgumentException("lse has element type " + lse.type() + " but the log-sum-exp is always F32 (a half type would lose"
                    + " the precision the backward pass and merges need); pass an F32 tensor");
        }
        layouts.check(g.shape().heads(), g.shape().qLen(), g.shape().kvLen());
        return g;
    }

    /**
     * Validates an explicit sparse call ({@link SparseAttentionDevice#sparseAttention}), naming the
     * offending argument: the attention arguments as every backend checks them, and a pattern with
     * one row per query and one column per key.
     */
    public static AttentionGeometry checked(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        if (pattern == null) throw new NullPointerException("pattern");
        AttentionGeometry g = checked(q, k, v, scale, out, lse);
        AttentionShape s = g.shape();
        if (pattern.rows() != s.qLen() || pattern.cols() != s.kvLen()) {
            throw new IllegalArgumentException("pattern is " + pattern.rows() + "x" + pattern.cols() + " but the call has qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        }
        return g;
    }

    /** Validates q, k, v, scale, out and lse (null allowed, all float32) of an attention call without a layout. */
    public static AttentionGeometry checked(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        AttentionGeometry g = checkedAnyType(q, k, v, scale, out, lse);
        String kernel = "this attention kernel (half-precision storage runs on the 'simd' and 'scalar' backends' Attention and Backend.attention)";
        Shapes.requireF32("q", q, kernel);
        Shapes.requireF32("k", k, kernel);
        Shapes.requireF32("v", v, kernel);
        Shapes.requireF32("out", out, kernel);
        Shapes.requireF32("lse", lse, kernel);
        return g;
    }

    private static AttentionGeometry checkedAnyType(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        AttentionShape s = AttentionShape.of(q, k, v);
        if (out == null) throw new NullPointerException("out");
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        s.checkOutput("out", out, s.outputShape());
        if (lse != null) s.checkOutput("lse", lse, s.lseShape());
        Tensor[] read = {q, k, v};
        String[] readNames = {"q", "k", "v"};
        for (int i = 0; i < read.length; i++) {
            requireDisjoint("out", out, readNames[i], read[i]);
            if (lse != null) requireDisjoint("lse", lse, readNames[i], read[i]);
        }
        if (lse != null) requireDisjoint("lse", lse, "out", out);
        return of(s, scale, q, k, v, out, lse);
    }

    /**
     * Outputs are written while inputs are still read (and by several threads): an output that
     * shares an element with an input or another output is rejected by name, never computed wrong.
     */
    static void requireDisjoint(String writtenName, Tensor written, String otherName, Tensor other) {
        if (written.overlaps(other)) {
            throw new IllegalArgumentException(writtenName + " shares memory with " + otherName + " (" + written + " and " + other
                    + "): an output must not overlap an input or another output; write into a separate tensor");
        }
    }

    static AttentionGeometry of(AttentionShape s, float scale, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        return new AttentionGeometry(s, scale,
                q.offset(), q.stride(0), q.stride(1), q.stride(2),
                k.offset(), k.stride(0), k.stride(1), k.stride(2),
                v.offset(), v.stride(0), v.stride(1), v.stride(2),
                out.offset(), out.stride(0), out.stride(1), out.stride(2),
                lse == null ? 0 : lse.offset(), lse == null ? 0 : lse.stride(0), lse == null ? 0 : lse.stride(1), lse == null ? 0 : lse.stride(2));
    }

    public long qBase(int b, int h) { return qOff + b * qB + h * qH; }
    public long kBase(int b, int hk) { return kOff + b * kB + hk * kH; }
    public long vBase(int b, int hk) { return vOff + b * vB + hk * vH; }
    public long oBase(int b, int h) { return oOff + b * oB + h * oH; }
    public long lBase(int b, int h) { return lOff + b * lB + h * lH; }
}
