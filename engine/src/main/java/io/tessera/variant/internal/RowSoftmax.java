package io.tessera.variant.internal;

import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Row-wise softmax in place over a float32 matrix, for the low-rank variants' landmark and score
 * matrices (Nyström's F, A and B took a third of its forward time with {@code Math.exp} per element
 * on scalar segment accesses). Each row is copied to a heap array, worked on there and copied back:
 * the max, e^(x − max) by the variants' shared float {@link FloatExp#exp} (within 2 ulps of
 * {@code Math.exp}), the sum of those in column order in float, and each divided by the sum.
 * {@link RowSoftmaxSimd} (when the incubator module is present) does the same operations lane by
 * lane, so the bits are this class's. Each element depends only on its row, and every operation
 * has one order: the same bits for any thread count, JIT tier and vector width. NaN in a row
 * makes the row NaN.
 */
public final class RowSoftmax {
    private RowSoftmax() {}

    /** Whether the Vector API twin runs (the incubator module is in the boot layer). */
    static final boolean SIMD = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** The largest of {@code row[at, at + cols)} (exact: the order does not matter; NaN propagates). */
    static float max(float[] row, int at, int cols) {
        float max = Float.NEGATIVE_INFINITY;
        for (int c = at; c < at + cols; c++) max = Math.max(max, row[c]);
        return max;
    }

    /** Rows whose sums run interleaved: each sum is a chain of dependent adds, eight chains fill the adders. */
    private static final int BLOCK = 8;

    /**
     * Softmax of every row of the rank-2 float32 {@code x} (unit-stride rows), in place. Rows go
     * in blocks of {@link #BLOCK}, their sums interleaved (each still in column order): one row's
     * sum alone waits out every add's latency, which was a fifth of Nyström's forward time. A block
     * of contiguous rows is copied to the heap and back in one copy each: a copy per row of 64
     * floats spent 8 % of Nyström's forward in the copies' checks.
     */
    public static void softmaxRows(Tensor x) {
        if (x.rank() != 2 || x.stride(1) != 1) throw new IllegalArgumentException("softmaxRows needs a rank-2 tensor with unit-stride rows, got " + x);
        int rows = Math.toIntExact(x.size(0)), cols = Math.toIntExact(x.size(1));
        MemorySegment seg = x.segment();
        boolean contiguous = x.stride(0) == cols;
        float[] block = new float[Math.min(BLOCK, rows) * cols];
        float[] sums = new float[BLOCK];
        for (int r0 = 0; r0 < rows; r0 += BLOCK) {
            int count = Math.min(BLOCK, rows - r0);
            if (contiguous) MemorySegment.copy(seg, FLOAT, (x.offset() + (long) r0 * cols) * Float.BYTES, block, 0, count * cols);
            for (int i = 0; i < count; i++) {
                int at = i * cols;
                if (!contiguous) MemorySegment.copy(seg, FLOAT, (x.offset() + (r0 + i) * x.stride(0)) * Float.BYTES, block, at, cols);
                float max = SIMD ? RowSoftmaxSimd.max(block, at, cols) : max(block, at, cols);
                int done = SIMD ? RowSoftmaxSimd.exponentials(block, at, cols, max) : 0;
                for (int c = at + done; c < at + cols; c++) block[c] = FloatExp.exp(block[c] - max);
            }
            if (count == BLOCK) {
                sums8(block, cols, sums);
            } else {
                for (int i = 0; i < count; i++) {
                    float sum = 0f;
                    for (int c = i * cols; c < (i + 1) * cols; c++) sum += block[c];
                    sums[i] = sum;
                }
            }
            for (int i = 0; i < count; i++) {
                int at = i * cols;
                float sum = sums[i];
                if (SIMD) RowSoftmaxSimd.divide(block, at, cols, sum);
                else for (int c = at; c < at + cols; c++) block[c] = block[c] / sum;
                if (!contiguous) MemorySegment.copy(block, at, seg, FLOAT, (x.offset() + (r0 + i) * x.stride(0)) * Float.BYTES, cols);
            }
            if (contiguous) MemorySegment.copy(block, 0, seg, FLOAT, (x.offset() + (long) r0 * cols) * Float.BYTES, count * cols);
        }
    }

    /** sums[i] = Σ_c block[i·cols + c] in column order, for eight rows at once. */
    private static void sums8(float[] b, int cols, float[] sums) {
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f, s4 = 0f, s5 = 0f, s6 = 0f, s7 = 0f;
        for (int c = 0; c < cols; c++) {
            s0 += b[c]; s1 += b[cols + c]; s2 += b[2 * cols + c]; s3 += b[3 * cols + c];
            s4 += b[4 * cols + c]; s5 += b[5 * cols + c]; s6 += b[6 * cols + c]; s7 += b[7 * cols + c];
        }
        sums[0] = s0; sums[1] = s1; sums[2] = s2; sums[3] = s3;
        sums[4] = s4; sums[5] = s5; sums[6] = s6; sums[7] = s7;
    }
}
