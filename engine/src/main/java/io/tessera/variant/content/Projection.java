package io.tessera.variant.content;

import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The small products that decide a plan: the rows of one (batch, head) of a tensor times a
 * D × cols matrix (LSH rotations, routing centroids). Each output is the fused multiply-add chain
 * {@code fma(x[D−1], m[D−1], … fma(x[0], m[0], 0))} over d in increasing order, so it is the same
 * float with the Vector API (rows in lanes, {@link ProjectionSimd}) as without it (the scalar loop
 * below, used when the incubator module is absent), for every vector width, JIT tier, thread count
 * and backend: a plan depends on the data and the seed only.
 *
 * <p>Rows are taken {@link #TILE} at a time and transposed into a D × TILE tile (in L1), so the
 * vector kernel reads a tile row as lanes and keeps a 2-vector × 4-column block of accumulators in
 * registers: O(rows·D·cols) multiply-adds with no pass over memory per column.
 */
final class Projection {
    private Projection() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Rows per tile: a multiple of two vectors of every species (128 to 512 bits). */
    static final int TILE = 64;
    /** The Vector API is there (and its lanes divide a tile: always, up to 1024-bit vectors). */
    private static final boolean SIMD = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent() && ProjectionSimd.fitsTile();

    /** Scratch of one projection: the transposed tile and one row. */
    static final class Scratch {
        final float[] tile, row, ragged;

        Scratch(int d, int cols) {
            tile = new float[Math.multiplyExact(d, TILE)];
            row = new float[d];
            ragged = new float[Math.multiplyExact(cols, TILE)];
        }
    }

    /**
     * {@code out[c·rows + i] = Σ_d x_i[d] · matrix[d·cols + c]} (the fma chain above) where
     * {@code x_i} is row i of {@code t[b, head]}, first scaled to unit length when
     * {@code normalize} (each element times the float 1/‖x_i‖; zero rows stay zero).
     *
     * @param out at least cols·rows floats
     */
    static void project(Tensor t, int b, int head, int rows, boolean normalize, float[] matrix, int cols, Scratch scratch, float[] out) {
        project(t, b, head, rows, normalize, matrix, cols, scratch, out, SIMD);
    }

    /** {@link #project} with the vector kernel or the scalar loop (they are twins: the test compares them bit for bit). */
    static void project(Tensor t, int b, int head, int rows, boolean normalize, float[] matrix, int cols, Scratch scratch, float[] out, boolean simd) {
        int d = (int) t.size(3);
        MemorySegment src = t.segment();
        long base = t.offset() + b * t.stride(0) + head * t.stride(1), rowStride = t.stride(2);
        float[] tile = scratch.tile, row = scratch.row;
        for (int i0 = 0; i0 < rows; i0 += TILE) {
            int count = Math.min(TILE, rows - i0);
            for (int r = 0; r < count; r++) {
                MemorySegment.copy(src, FLOAT, (base + (long) (i0 + r) * rowStride) * Float.BYTES, row, 0, d);
                float inv = 1f;
                if (normalize) {
                    double norm = 0;
                    for (float x : row) norm += (double) x * x;
                    inv = norm > 0 ? (float) (1 / Math.sqrt(norm)) : 0f;
                }
                for (int x = 0; x < d; x++) tile[x * TILE + r] = row[x] * inv;
            }
            for (int r = count; r < TILE; r++) for (int x = 0; x < d; x++) tile[x * TILE + r] = 0f;
            if (simd) {
                if (count == TILE) {
                    ProjectionSimd.tile(tile, d, matrix, cols, out, rows, i0);
                } else {
                    ProjectionSimd.tile(tile, d, matrix, cols, scratch.ragged, TILE, 0);
                    for (int c = 0; c < cols; c++) System.arraycopy(scratch.ragged, c * TILE, out, c * rows + i0, count);
                }
            } else {
                for (int c = 0; c < cols; c++) {
                    for (int r = 0; r < count; r++) {
                        float acc = 0f;
                        for (int x = 0; x < d; x++) acc = Math.fma(tile[x * TILE + r], matrix[x * cols + c], acc);
                        out[c * rows + i0 + r] = acc;
                    }
                }
            }
        }
    }

    /**
     * LSH buckets of one round: {@code out[at + t]} = the mixed-radix number of token t's digits,
     * one per factor f (0 when f = 1), each the argmax over [y, −y] of y = t's projections on the
     * factor's f/2 columns (from {@code from} on, in factor order) of {@code projected} ([cols][rows]);
     * ties go to the lower index, and a comparison with NaN is false (NaN never replaces the
     * running best). With the Vector API tokens are lanes; the scalar loop is its twin.
     */
    static void buckets(float[] projected, int rows, int from, int[] factors, int[] out, int at) {
        buckets(projected, rows, from, factors, out, at, SIMD);
    }

    static void buckets(float[] projected, int rows, int from, int[] factors, int[] out, int at, boolean simd) {
        int t = simd ? ProjectionSimd.buckets(projected, rows, from, factors, out, at) : 0;
        for (; t < rows; t++) {
            int bucket = 0, col = from;
            for (int f : factors) {
                int half = f / 2, digit = 0;
                if (f > 1) {
                    float best = projected[col * rows + t];
                    for (int c = 1; c < half; c++) {
                        float y = projected[(col + c) * rows + t];
                        if (y > best) { best = y; digit = c; }
                    }
                    for (int c = 0; c < half; c++) {
                        float y = -projected[(col + c) * rows + t];
                        if (y > best) { best = y; digit = half + c; }
                    }
                }
                bucket = bucket * f + digit;
                col += half;
            }
            out[at + t] = bucket;
        }
    }
}
