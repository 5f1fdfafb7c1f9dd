package io.tessera.variant.content;

import io.tessera.variant.internal.VariantSpecies;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link Projection}'s tile product with the Vector API (loaded only when the incubator module is
 * present): tile rows in lanes, two vectors of rows by four columns of accumulators in registers,
 * each lane the fma chain over d in increasing order (so the result is the scalar loop's, bit for
 * bit, at any vector width).
 */
final class ProjectionSimd {
    private ProjectionSimd() {}

    private static final VectorSpecies<Float> F = VariantSpecies.FLOATS;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());

    static boolean fitsTile() { return Projection.TILE % (2 * L) == 0; }

    /** {@code out[c·outRow + at + r] = Σ_x tile[x·TILE + r]·matrix[x·cols + c]} for r in [0, TILE), c in [0, cols). */
    static void tile(float[] tile, int d, float[] matrix, int cols, float[] out, int outRow, int at) {
        final int T = Projection.TILE;
        for (int g = 0; g < T; g += 2 * L) {
            int c = 0;
            for (; c + 4 <= cols; c += 4) {
                FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
                for (int x = 0; x < d; x++) {
                    FloatVector t0 = FloatVector.fromArray(F, tile, x * T + g), t1 = FloatVector.fromArray(F, tile, x * T + g + L);
                    int m = x * cols + c;
                    FloatVector m0 = FloatVector.broadcast(F, matrix[m]), m1 = FloatVector.broadcast(F, matrix[m + 1]);
                    FloatVector m2 = FloatVector.broadcast(F, matrix[m + 2]), m3 = FloatVector.broadcast(F, matrix[m + 3]);
                    a00 = t0.fma(m0, a00); a01 = t1.fma(m0, a01);
                    a10 = t0.fma(m1, a10); a11 = t1.fma(m1, a11);
                    a20 = t0.fma(m2, a20); a21 = t1.fma(m2, a21);
                    a30 = t0.fma(m3, a30); a31 = t1.fma(m3, a31);
                }
                int o = c * outRow + at + g;
                a00.intoArray(out, o); a01.intoArray(out, o + L);
                a10.intoArray(out, o + outRow); a11.intoArray(out, o + outRow + L);
                a20.intoArray(out, o + 2 * outRow); a21.intoArray(out, o + 2 * outRow + L);
                a30.intoArray(out, o + 3 * outRow); a31.intoArray(out, o + 3 * outRow + L);
            }
            for (; c < cols; c++) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0;
                for (int x = 0; x < d; x++) {
                    FloatVector m = FloatVector.broadcast(F, matrix[x * cols + c]);
                    a0 = FloatVector.fromArray(F, tile, x * T + g).fma(m, a0);
                    a1 = FloatVector.fromArray(F, tile, x * T + g + L).fma(m, a1);
                }
                int o = c * outRow + at + g;
                a0.intoArray(out, o);
                a1.intoArray(out, o + L);
            }
        }
    }

    /** {@link Projection#buckets} for whole vectors of tokens; returns how many tokens it did (a multiple of the lane count). */
    static int buckets(float[] projected, int rows, int from, int[] factors, int[] out, int at) {
        int t = 0;
        for (; t + L <= rows; t += L) {
            IntVector bucket = IntVector.zero(I);
            int col = from;
            for (int f : factors) {
                int half = f / 2;
                if (f > 1) {
                    FloatVector best = FloatVector.fromArray(F, projected, col * rows + t);
                    IntVector digit = IntVector.zero(I);
                    for (int c = 1; c < half; c++) {
                        FloatVector y = FloatVector.fromArray(F, projected, (col + c) * rows + t);
                        VectorMask<Float> greater = y.compare(VectorOperators.GT, best);
                        best = best.blend(y, greater);
                        digit = digit.blend(c, greater.cast(I));
                    }
                    for (int c = 0; c < half; c++) {
                        FloatVector y = FloatVector.fromArray(F, projected, (col + c) * rows + t).neg();
                        VectorMask<Float> greater = y.compare(VectorOperators.GT, best);
                        best = best.blend(y, greater);
                        digit = digit.blend(half + c, greater.cast(I));
                    }
                    bucket = bucket.mul(f).add(digit);
                }
                col += half;
            }
            bucket.intoArray(out, at + t);
        }
        return t;
    }
}
