package io.tessera.cpu;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API twins of {@link SparseKernels}' scalar loops; tails finish in scalar code.
 *
 * <p>Every result is a fixed function of the inputs, whichever JIT tier runs the code: lanes are
 * combined by {@link #sumLanes}, a pairwise tree of lane-wise adds in a fixed order, never by
 * {@code reduceLanes(ADD)}, whose summation order is left to the implementation and does differ
 * between the interpreter, C1 and C2. FMA is exactly rounded, so it is tier-independent too.
 */
final class SimdSparseKernels {
    private SimdSparseKernels() {}

    private static final VectorSpecies<Float> F = VectorConfig.FLOATS;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** HALVES[s] moves lane i + (L >> (s+1)) to lane i (wrapping): the rotations of the reduction tree. */
    @SuppressWarnings("unchecked")
    private static final VectorShuffle<Float>[] HALVES = new VectorShuffle[Integer.numberOfTrailingZeros(F.length())];

    static {
        for (int s = 0, half = F.length() >> 1; half >= 1; s++, half >>= 1) {
            int step = half;
            HALVES[s] = VectorShuffle.fromOp(F, i -> (i + step) % F.length());
        }
    }

    /**
     * The sum of the lanes in a fixed order: with L lanes, lane i first gets lane i + L/2 added,
     * then lane i + L/4 of the result, …, down to lane 1; lane 0 holds the sum. For 8 lanes:
     * {@code ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))}. Each step is a lane-wise IEEE add, so every
     * tier computes the same bits ({@code SparseKernelsTest} emulates it in scalar code).
     */
    static float sumLanes(FloatVector v) {
        for (VectorShuffle<Float> rotation : HALVES) v = v.add(v.rearrange(rotation));
        return v.lane(0);
    }

    static float dot(MemorySegment a, long aOff, MemorySegment b, long bOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        int c = 0;
        for (int bound = F.loopBound(n); c < bound; c += F.length()) {
            FloatVector x = FloatVector.fromMemorySegment(F, a, (aOff + c) * Float.BYTES, ORDER);
            FloatVector y = FloatVector.fromMemorySegment(F, b, (bOff + c) * Float.BYTES, ORDER);
            acc = x.fma(y, acc);
        }
        float s = sumLanes(acc);
        return s + SparseKernels.scalarDot(a, aOff + c, b, bOff + c, n - c);
    }

    static void axpy(float p, MemorySegment v, long vOff, float[] acc, int n) {
        int c = 0;
        for (int bound = F.loopBound(n); c < bound; c += F.length()) {
            FloatVector x = FloatVector.fromMemorySegment(F, v, (vOff + c) * Float.BYTES, ORDER);
            x.fma(FloatVector.broadcast(F, p), FloatVector.fromArray(F, acc, c)).intoArray(acc, c);
        }
        for (; c < n; c++) acc[c] += p * v.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, vOff + c);
    }
}
