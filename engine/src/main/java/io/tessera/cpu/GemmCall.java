package io.tessera.cpu;

import io.tessera.backend.Backend;

import io.tessera.tensor.ElementType;
import io.tessera.tensor.Shapes;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A validated {@code c = alpha·op(a)·op(b) + beta·c}: element (i, k) of op(a) is
 * {@code a[aOff + i·aRow + k·aCol]}, whatever the transposes and strides were, stored as
 * {@code aType} (b likewise; c is always float32). Public so that backends in other modules
 * validate exactly as the CPU backends do.
 */
public record GemmCall(MemorySegment a, long aOff, long aRow, long aCol,
                MemorySegment b, long bOff, long bRow, long bCol,
                MemorySegment c, long cOff, long cRow,
                int m, int n, int k, float alpha, float beta, ElementType aType, ElementType bType) {

    /** Validates every argument of {@link Backend#gemm} for a float32-only kernel, naming the offending one. */
    public static GemmCall of(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta) {
        GemmCall call = ofHalfStorage(a, transposeA, b, transposeB, c, alpha, beta);
        String kernel = "this backend's gemm (half-precision a and b run on the 'simd' and 'scalar' backends)";
        Shapes.requireF32("a", a, kernel);
        Shapes.requireF32("b", b, kernel);
        return call;
    }

    /**
     * Validates every argument of {@link Backend#gemm} for a kernel with half-precision storage (the
     * CPU backends), naming the offending one: a and b may be F32, BF16 or F16 (widened while
     * read, products summed in float32); c must be F32, because it is read back and added to once
     * per depth slice, which must not happen in half precision.
     */
    public static GemmCall ofHalfStorage(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta) {
        requireMatrix("a", a);
        requireMatrix("b", b);
        requireMatrix("c", c);
        if (c.type() != ElementType.F32) {
            throw new IllegalArgumentException("c has element type " + c.type() + " but gemm writes F32 (c is accumulated into once per depth slice;"
                    + " half precision there would drift): pass an F32 c and convert it with c.to(arena, type)");
        }
        if (!c.hasUnitInnerStride()) throw new IllegalArgumentException("c must have a unit-stride last dimension, got " + c);
        long m = transposeA ? a.size(1) : a.size(0), ka = transposeA ? a.size(0) : a.size(1);
        long kb = transposeB ? b.size(1) : b.size(0), n = transposeB ? b.size(0) : b.size(1);
        if (ka != kb) {
            throw new IllegalArgumentException("inner dimensions differ: op(a) is " + m + "x" + ka + ", op(b) is " + kb + "x" + n
                    + " (a " + Arrays.toString(a.shape()) + (transposeA ? "ᵀ" : "") + ", b " + Arrays.toString(b.shape()) + (transposeB ? "ᵀ" : "") + ")");
        }
        if (c.size(0) != m || c.size(1) != n) {
            throw new IllegalArgumentException("c shape " + Arrays.toString(c.shape()) + " must be [" + m + ", " + n + "]");
        }
        if (!Float.isFinite(alpha)) throw new IllegalArgumentException("alpha must be finite, got " + alpha);
        if (!Float.isFinite(beta)) throw new IllegalArgumentException("beta must be finite, got " + beta);
        if (m > Integer.MAX_VALUE || n > Integer.MAX_VALUE || ka > Integer.MAX_VALUE) throw new IllegalArgumentException("gemm dimensions exceed int indexing");
        return new GemmCall(a.segment(), a.offset(), a.stride(transposeA ? 1 : 0), a.stride(transposeA ? 0 : 1),
                b.segment(), b.offset(), b.stride(transposeB ? 1 : 0), b.stride(transposeB ? 0 : 1),
                c.segment(), c.offset(), c.stride(0), (int) m, (int) n, (int) ka, alpha, beta, a.type(), b.type());
    }

    private static void requireMatrix(String name, Tensor t) {
        if (t == null) throw new NullPointerException(name);
        if (t.rank() != 2) throw new IllegalArgumentException(name + " must be rank 2, got shape " + Arrays.toString(t.shape()));
    }
}
