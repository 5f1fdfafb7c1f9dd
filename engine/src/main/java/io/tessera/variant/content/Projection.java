package io.tessera.variant.content;

import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The small products that decide a plan: the rows of one (batch, head) of a tensor times a
 * D × cols matrix (LSH rotations, routing centroids). Rows are first transposed so that the inner
 * loop runs over rows, which the JIT vectorizes without changing any sum: each output is a plain
 * float sum over d in increasing order, bit-identical for every JIT tier, thread count and backend,
 * so a plan depends on the data and the seed only.
 */
final class Projection {
    private Projection() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Rows per pass: one output block (cols × ROWS floats of a column) and one input row block stay in L1/L2. */
    private static final int ROWS = 512;

    /**
     * {@code out[c·rows + i] = Σ_d x_i[d] · matrix[d·cols + c]} where {@code x_i} is row i of
     * {@code t[b, head]}, scaled to unit length when {@code normalize} (zero rows stay zero).
     *
     * @param transposed scratch of at least D·rows floats
     * @param out        at least cols·rows floats
     */
    static void project(Tensor t, int b, int head, int rows, boolean normalize, float[] matrix, int cols, float[] transposed, float[] out) {
        int d = (int) t.size(3);
        MemorySegment src = t.segment();
        long base = t.offset() + b * t.stride(0) + head * t.stride(1), rowStride = t.stride(2);
        float[] row = new float[d];
        for (int i = 0; i < rows; i++) {
            MemorySegment.copy(src, FLOAT, (base + i * rowStride) * Float.BYTES, row, 0, d);
            float inv = 1f;
            if (normalize) {
                double norm = 0;
                for (float x : row) norm += (double) x * x;
                inv = norm > 0 ? (float) (1 / Math.sqrt(norm)) : 0f;
            }
            for (int x = 0; x < d; x++) transposed[x * rows + i] = row[x] * inv;
        }
        java.util.Arrays.fill(out, 0, cols * rows, 0f);
        for (int i0 = 0; i0 < rows; i0 += ROWS) {
            int i1 = Math.min(rows, i0 + ROWS);
            for (int c = 0; c < cols; c++) {
                int o = c * rows;
                for (int x = 0; x < d; x++) {
                    float m = matrix[x * cols + c];
                    int in = x * rows;
                    for (int i = i0; i < i1; i++) out[o + i] += m * transposed[in + i];
                }
            }
        }
    }
}
