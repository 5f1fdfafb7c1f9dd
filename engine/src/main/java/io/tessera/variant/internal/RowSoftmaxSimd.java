package io.tessera.variant.internal;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link RowSoftmax}'s element-wise steps with the Vector API (loaded only when the incubator
 * module is present): e^(x − max) by the shared {@link FloatExpSimd#expInPlace} (the scalar loop's
 * {@link FloatExp#exp}, lane by lane), the row maximum, and the division by the row's sum. The
 * width is the CPU kernels' ({@link VariantSpecies}).
 */
final class RowSoftmaxSimd {
    private RowSoftmaxSimd() {}

    private static final VectorSpecies<Float> F = VariantSpecies.FLOATS;

    /**
     * row[c] = e^(row[c] − max) for c below the returned count (a multiple of the lanes); the rest
     * are the caller's. Float lanes at full width: the double-precision polynomial this replaced
     * (degree 10 on half as many lanes, to round like {@code Math.exp}) was a seventh of Nyström's
     * forward.
     */
    static int exponentials(float[] row, int cols, float max) {
        int vec = cols - cols % F.length();
        FloatExpSimd.expInPlace(row, 0, vec, max);
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
