package io.tessera.cpu;

import io.tessera.backend.Backend;

import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A validated {@code c = alpha·op(a)·op(b) + beta·c}: element (i, k) of op(a) is
 * {@code a[aOff + i·aRow + k·aCol]}, whatever the transposes and strides were. Public so that
 * backends in other modules validate exactly as the CPU backends do.
 */
public record GemmCall(MemorySegment a, long aOff, long aRow, long aCol,
                MemorySegment b, long bOff, long bRow, long bCol,
                MemorySegment c, long cOff, long cRow,
                int m, int n, int k, float alpha, float beta) {

    /** Validates every argument of {@link Backend#gemm}, naming the offending one. */
    public static GemmCall of(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta) {
        requireMatrix("a", a);
        requireMatrix("b", b);
        requireMatrix("c", c);
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
                c.segment(), c.offset(), c.stride(0), (int) m, (int) n, (int) ka, alpha, beta);
    }

    private static void requireMatrix(String name, Tensor t) {
        if (t == null) throw new NullPointerException(name);
        if (t.rank() != 2) throw new IllegalArgumentException(name + " must be rank 2, got shape " + Arrays.toString(t.shape()));
    }
}
