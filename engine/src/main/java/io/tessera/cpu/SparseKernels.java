package io.tessera.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Row kernels of the explicit sparse path: a dot product (SDDMM) and a scaled row accumulation
 * (SpMM), over segments and element offsets. Dispatches once to {@link SimdSparseKernels} when the
 * Vector API module is present, else runs the scalar loops below (the reference).
 */
public final class SparseKernels {
    private SparseKernels() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final boolean SIMD = SimdBackend.vectorApiPresent();

    /** {@code Σ_c a[aOff + c] · b[bOff + c]} for {@code c < n}. */
    public static float dot(MemorySegment a, long aOff, MemorySegment b, long bOff, int n) {
        return SIMD ? SimdSparseKernels.dot(a, aOff, b, bOff, n) : scalarDot(a, aOff, b, bOff, n);
    }

    /** {@code acc[c] += p · v[vOff + c]} for {@code c < n}. */
    public static void axpy(float p, MemorySegment v, long vOff, float[] acc, int n) {
        if (SIMD) SimdSparseKernels.axpy(p, v, vOff, acc, n);
        else scalarAxpy(p, v, vOff, acc, n);
    }

    static float scalarDot(MemorySegment a, long aOff, MemorySegment b, long bOff, int n) {
        float s = 0;
        for (int c = 0; c < n; c++) s += a.getAtIndex(FLOAT, aOff + c) * b.getAtIndex(FLOAT, bOff + c);
        return s;
    }

    static void scalarAxpy(float p, MemorySegment v, long vOff, float[] acc, int n) {
        for (int c = 0; c < n; c++) acc[c] += p * v.getAtIndex(FLOAT, vOff + c);
    }
}
