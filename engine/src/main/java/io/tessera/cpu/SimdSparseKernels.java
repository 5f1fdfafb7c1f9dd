package io.tessera.cpu;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Vector API twins of {@link SparseKernels}' scalar loops; tails finish in scalar code. */
final class SimdSparseKernels {
    private SimdSparseKernels() {}

    private static final VectorSpecies<Float> F = VectorConfig.FLOATS;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    static float dot(MemorySegment a, long aOff, MemorySegment b, long bOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        int c = 0;
        for (int bound = F.loopBound(n); c < bound; c += F.length()) {
            FloatVector x = FloatVector.fromMemorySegment(F, a, (aOff + c) * Float.BYTES, ORDER);
            FloatVector y = FloatVector.fromMemorySegment(F, b, (bOff + c) * Float.BYTES, ORDER);
            acc = x.fma(y, acc);
        }
        float s = acc.reduceLanes(VectorOperators.ADD);
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
