package io.tessera.variant.internal;

import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Row-wise softmax in place over a float32 matrix, for the low-rank variants' landmark and score
 * matrices (Nyström's F, A and B took a third of its forward time with {@code Math.exp} per element
 * on scalar segment accesses). Each row is copied to a heap array, worked on there and copied back:
 * the max, e^(x − max) rounded to float, the sum of those in column order in float, and each
 * divided by the sum. {@link RowSoftmaxSimd} (when the incubator module is present) computes the
 * exponentials in double-precision lanes, accurate to about 1e-13 relative before the rounding to
 * float, so they are {@code (float) Math.exp(x − max)} except in the rare cases where the
 * exact value lies within that of a float rounding boundary (then 1 ulp apart); everything else is
 * this class's operations in this order. Each element depends only on its row, and every operation
 * has one order: the same bits for any thread count and JIT tier. NaN in a row makes the row NaN.
 */
public final class RowSoftmax {
    private RowSoftmax() {}

    /** Whether the Vector API twin runs (the incubator module is in the boot layer). */
    static final boolean SIMD = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** The largest of {@code row[0, cols)} (exact: the order does not matter; NaN propagates). */
    static float max(float[] row, int cols) {
        float max = Float.NEGATIVE_INFINITY;
        for (int c = 0; c < cols; c++) max = Math.max(max, row[c]);
        return max;
    }

    /** Softmax of every row of the rank-2 float32 {@code x} (unit-stride rows), in place. */
    public static void softmaxRows(Tensor x) {
        if (x.rank() != 2 || x.stride(1) != 1) throw new IllegalArgumentException("softmaxRows needs a rank-2 tensor with unit-stride rows, got " + x);
        int rows = Math.toIntExact(x.size(0)), cols = Math.toIntExact(x.size(1));
        MemorySegment seg = x.segment();
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            long byteOff = (x.offset() + r * x.stride(0)) * Float.BYTES;
            MemorySegment.copy(seg, FLOAT, byteOff, row, 0, cols);
            float max = SIMD ? RowSoftmaxSimd.max(row, cols) : max(row, cols);
            int done = SIMD ? RowSoftmaxSimd.exponentials(row, cols, max) : 0;
            for (int c = done; c < cols; c++) row[c] = (float) Math.exp(row[c] - max);
            float sum = 0f;
            for (int c = 0; c < cols; c++) sum += row[c];
            if (SIMD) RowSoftmaxSimd.divide(row, cols, sum);
            else for (int c = 0; c < cols; c++) row[c] = row[c] / sum;
            MemorySegment.copy(row, 0, seg, FLOAT, byteOff, cols);
        }
    }
}
