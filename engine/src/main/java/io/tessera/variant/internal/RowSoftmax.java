package io.tessera.variant.internal;

import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Row-wise softmax in place over a float32 matrix, for the low-rank variants' landmark and score
 * matrices (Nyström's F, A and B took a third of its forward time with {@code Math.exp} per element
 * on scalar segment accesses). Each row is copied to a heap array, worked on there and copied back:
 * the max, e^(x − max) by the variants' shared float {@link FloatExp#exp} (within 2 ulps of
 * {@code Math.exp}), the sum of those in float in 16 interleaved partials ({@link #sum}), and each
 * multiplied by the sum's reciprocal ({@link #normalize}: a vector division costs about as much as
 * sixteen multiplications; it was 6.4 % of Nyström's forward in JFR samples, n = 4096, m = 64).
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

    /**
     * row[at + c] · (1 / sum) for c &lt; cols: one rounding for the reciprocal, one for each product
     * (at most an ulp and a half from the quotient). {@link RowSoftmaxSimd#normalize} gives these bits.
     */
    static void normalize(float[] row, int at, int cols, float sum) {
        float inverse = 1f / sum;
        for (int c = at; c < at + cols; c++) row[c] = row[c] * inverse;
    }

    /** Rows copied to the heap at a time: {@link PartialSums#COUNT}, a whole number of the vector twin's groups of L rows at every width. */
    private static final int BLOCK = PartialSums.COUNT;

    /** Partial sums of a row: {@link #sum}. */
    static final int PARTIALS = PartialSums.COUNT;

    /**
     * Σ row[at, at + cols) in float, in an order that does not depend on the vector width: partial
     * j (j &lt; 16) adds the columns c ≡ j (mod 16) below cols − cols mod 16 in column order, the
     * partials are folded as a halving tree ({@link PartialSums#fold}), then the last cols mod 16 columns are added in
     * order. {@link RowSoftmaxSimd#sum} keeps the partials in lanes and gives these bits. (The sum in
     * column order, one chain of dependent scalar adds per row, eight rows interleaved, was 3 % of
     * Nyström's forward in JFR samples, and the exponentials, maximum and division around it
     * another 20 %.)
     */
    static float sum(float[] row, int at, int cols, float[] partials) {
        if (SIMD) return RowSoftmaxSimd.sum(row, at, cols, partials);
        return sumScalar(row, at, cols, partials);
    }

    static float sumScalar(float[] row, int at, int cols, float[] partials) {
        int body = cols - cols % PARTIALS;
        java.util.Arrays.fill(partials, 0, PARTIALS, 0f);
        for (int c = 0; c < body; c++) partials[c & (PARTIALS - 1)] += row[at + c];
        return finishSum(partials, row, at, cols, body);
    }

    /** The 16 partials folded, then columns [body, cols) added in order. */
    static float finishSum(float[] p, float[] row, int at, int cols, int body) {
        float s = PartialSums.fold(p);
        for (int c = body; c < cols; c++) s += row[at + c];
        return s;
    }

    /**
     * Softmax of every row of the rank-2 float32 {@code x} (unit-stride rows), in place. Each row's
     * sum is kept in 16 partials ({@link #sum}): one chain of dependent adds per row waited out
     * every add's latency (a fifth of Nyström's forward time, before eight rows' chains ran
     * interleaved, and then still 3 %). A block
     * of contiguous rows is copied to the heap and back in one copy each: a copy per row of 64
     * floats spent 8 % of Nyström's forward in the copies' checks.
     */
    public static void softmaxRows(Tensor x) {
        if (x.rank() != 2 || x.stride(1) != 1) throw new IllegalArgumentException("softmaxRows needs a rank-2 tensor with unit-stride rows, got " + x);
        int rows = Math.toIntExact(x.size(0)), cols = Math.toIntExact(x.size(1));
        MemorySegment seg = x.segment();
        boolean contiguous = x.stride(0) == cols;
        float[] block = new float[Math.min(BLOCK, rows) * cols];
        float[] partials = new float[PARTIALS], lanes = new float[PARTIALS * PARTIALS], folded = new float[PARTIALS];
        for (int r0 = 0; r0 < rows; r0 += BLOCK) {
            int count = Math.min(BLOCK, rows - r0);
            if (contiguous) MemorySegment.copy(seg, FLOAT, (x.offset() + (long) r0 * cols) * Float.BYTES, block, 0, count * cols);
            else for (int i = 0; i < count; i++) MemorySegment.copy(seg, FLOAT, (x.offset() + (r0 + i) * x.stride(0)) * Float.BYTES, block, i * cols, cols);
            int grouped = SIMD ? RowSoftmaxSimd.softmaxGroups(block, count, cols, lanes, folded) : 0;
            for (int i = grouped; i < count; i++) {
                int at = i * cols;
                float max = SIMD ? RowSoftmaxSimd.max(block, at, cols) : max(block, at, cols);
                int done = SIMD ? RowSoftmaxSimd.exponentials(block, at, cols, max) : 0;
                for (int c = at + done; c < at + cols; c++) block[c] = FloatExp.exp(block[c] - max);
            }
            for (int i = grouped; i < count; i++) {
                int at = i * cols;
                float sum = sum(block, at, cols, partials);
                if (SIMD) RowSoftmaxSimd.normalize(block, at, cols, sum);
                else normalize(block, at, cols, sum);
            }
            if (!contiguous) for (int i = 0; i < count; i++) MemorySegment.copy(block, i * cols, seg, FLOAT, (x.offset() + (r0 + i) * x.stride(0)) * Float.BYTES, cols);
            if (contiguous) MemorySegment.copy(block, 0, seg, FLOAT, (x.offset() + (long) r0 * cols) * Float.BYTES, count * cols);
        }
    }

}
