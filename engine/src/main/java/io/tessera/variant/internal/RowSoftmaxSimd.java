package io.tessera.variant.internal;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link RowSoftmax}'s element-wise steps with the Vector API (loaded only when the incubator
 * module is present): e^(x − max) with x − max in float (as the scalar loop forms it), widened to
 * double lanes, 2^(t − k)·2^k with t = (x − max)·log₂e, k = round(t) and a degree-10 Taylor
 * polynomial (|t − k| ≤ ½: truncation below 3e-13 relative), rounded to float; and the division by
 * the row's sum. The width is the CPU kernels' ({@link VariantSpecies}).
 */
final class RowSoftmaxSimd {
    private RowSoftmaxSimd() {}

    private static final VectorSpecies<Float> F = VariantSpecies.FLOATS;
    /** Doubles of the same width: a float vector widens into two of them (parts 0 and 1). */
    private static final VectorSpecies<Double> D = VectorSpecies.of(double.class, F.vectorShape());
    private static final double LOG2E = 1.4426950408889634;
    /** Below this 2^t is far under the smallest float (2^−149): the result rounds to 0. */
    private static final double T_MIN = -200;
    private static final double ROUND_MAGIC = 0x1.8p52;   // adding it rounds to an integer kept in the low bits
    private static final long EXPONENT_BIAS_BITS = 1023L << 52;
    private static final double LN2 = 0.6931471805599453;
    /** (ln 2)^i / i!, i = 0 … 10: 2^f = Σ c_i f^i. */
    private static final double C0 = 1, C1 = LN2, C2 = C1 * LN2 / 2, C3 = C2 * LN2 / 3, C4 = C3 * LN2 / 4, C5 = C4 * LN2 / 5;
    private static final double C6 = C5 * LN2 / 6, C7 = C6 * LN2 / 7, C8 = C7 * LN2 / 8, C9 = C8 * LN2 / 9, C10 = C9 * LN2 / 10;

    /** row[c] = e^(row[c] − max) for c below the returned count (a multiple of the lanes); the rest are the caller's. */
    static int exponentials(float[] row, int cols, float max) {
        int lanes = F.length(), vec = cols - cols % lanes;
        FloatVector mv = FloatVector.broadcast(F, max);
        for (int c = 0; c < vec; c += lanes) {
            // Both halves of the lanes widened to doubles (a float vector of half the width would be a
            // second float shape: see VariantSpecies), each exponentiated, narrowed back into its half
            // (the other half of each narrowing is zeros) and joined bitwise.
            FloatVector x = FloatVector.fromArray(F, row, c).sub(mv);
            DoubleVector t = ((DoubleVector) x.convertShape(VectorOperators.F2D, D, 0)).mul(LOG2E);
            t = t.blend(T_MIN, t.compare(VectorOperators.LT, T_MIN));   // NaN stays NaN
            DoubleVector rounded = t.add(ROUND_MAGIC);
            DoubleVector f = t.sub(rounded.sub(ROUND_MAGIC));
            // Horner written out: a loop would carry a vector through a phi, which C2 boxes.
            DoubleVector p = f.fma(C10, C9).fma(f, DoubleVector.broadcast(D, C8)).fma(f, DoubleVector.broadcast(D, C7)).fma(f, DoubleVector.broadcast(D, C6))
                    .fma(f, DoubleVector.broadcast(D, C5)).fma(f, DoubleVector.broadcast(D, C4)).fma(f, DoubleVector.broadcast(D, C3))
                    .fma(f, DoubleVector.broadcast(D, C2)).fma(f, DoubleVector.broadcast(D, C1)).fma(f, DoubleVector.broadcast(D, C0));
            DoubleVector scale = rounded.reinterpretAsLongs().lanewise(VectorOperators.LSHL, 52).add(EXPONENT_BIAS_BITS).reinterpretAsDoubles();
            FloatVector low = (FloatVector) p.mul(scale).convertShape(VectorOperators.D2F, F, 0);
            // The upper half: the same steps.
            t = ((DoubleVector) x.convertShape(VectorOperators.F2D, D, 1)).mul(LOG2E);
            t = t.blend(T_MIN, t.compare(VectorOperators.LT, T_MIN));
            rounded = t.add(ROUND_MAGIC);
            f = t.sub(rounded.sub(ROUND_MAGIC));
            p = f.fma(C10, C9).fma(f, DoubleVector.broadcast(D, C8)).fma(f, DoubleVector.broadcast(D, C7)).fma(f, DoubleVector.broadcast(D, C6))
                    .fma(f, DoubleVector.broadcast(D, C5)).fma(f, DoubleVector.broadcast(D, C4)).fma(f, DoubleVector.broadcast(D, C3))
                    .fma(f, DoubleVector.broadcast(D, C2)).fma(f, DoubleVector.broadcast(D, C1)).fma(f, DoubleVector.broadcast(D, C0));
            scale = rounded.reinterpretAsLongs().lanewise(VectorOperators.LSHL, 52).add(EXPONENT_BIAS_BITS).reinterpretAsDoubles();
            FloatVector high = (FloatVector) p.mul(scale).convertShape(VectorOperators.D2F, F, -1);
            low.reinterpretAsInts().or(high.reinterpretAsInts()).reinterpretAsFloats().intoArray(row, c);
        }
        return vec;
    }

    /** {@link RowSoftmax#max} in lanes (Math.max per lane: NaN propagates). */
    static float max(float[] row, int cols) {
        int lanes = F.length(), vec = cols - cols % lanes;
        float max = Float.NEGATIVE_INFINITY;
        if (vec > 0) {
            FloatVector best = FloatVector.fromArray(F, row, 0);
            for (int c = lanes; c < vec; c += lanes) best = best.max(FloatVector.fromArray(F, row, c));
            for (int i = 0; i < lanes; i++) max = Math.max(max, best.lane(i));
        }
        for (int c = vec; c < cols; c++) max = Math.max(max, row[c]);
        return max;
    }

    /** row[c] = row[c] / sum, lane by lane (the scalar division's bits). */
    static void divide(float[] row, int cols, float sum) {
        int lanes = F.length(), vec = cols - cols % lanes;
        FloatVector s = FloatVector.broadcast(F, sum);
        for (int c = 0; c < vec; c += lanes) FloatVector.fromArray(F, row, c).div(s).intoArray(row, c);
        for (int c = vec; c < cols; c++) row[c] = row[c] / sum;
    }
}
