package io.tessera.variant.internal;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
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
     * row[at + c] = e^(row[at + c] − max) for c below the returned count (a multiple of the lanes);
     * the rest are the caller's. Float lanes at full width: the double-precision polynomial this
     * replaced (degree 10 on half as many lanes, to round like {@code Math.exp}) was a seventh of
     * Nyström's forward.
     */
    static int exponentials(float[] row, int at, int cols, float max) {
        int vec = cols - cols % F.length();
        FloatExpSimd.expInPlace(row, at, at + vec, max);
        return vec;
    }

    /**
     * {@link RowSoftmax#max} of row[at, at + cols) in lanes (Math.max per lane: NaN propagates), then
     * over the lanes with reduceLanes(MAX): exact, so any order gives the scalar loop's value (a
     * scalar loop over the extracted lanes was 6 % of Nyström's forward).
     */
    static float max(float[] row, int at, int cols) {
        int lanes = F.length(), vec = cols - cols % lanes;
        float max = Float.NEGATIVE_INFINITY;
        if (vec > 0) {
            FloatVector best = FloatVector.fromArray(F, row, at);
            for (int c = lanes; c < vec; c += lanes) best = best.max(FloatVector.fromArray(F, row, at + c));
            max = best.reduceLanes(VectorOperators.MAX);
        }
        for (int c = vec; c < cols; c++) max = Math.max(max, row[at + c]);
        return max;
    }

    /**
     * {@link RowSoftmax#sum}: the 16 partials in lanes (one vector at 512 bits, kept in a register;
     * two or four at narrower widths, kept in {@code partials}), each lane adding its columns in
     * column order, then the scalar fold and tail: the same floats meet in the same adds.
     */
    static float sum(float[] row, int at, int cols, float[] partials) {
        int lanes = F.length(), body = cols - cols % RowSoftmax.PARTIALS;
        if (lanes == RowSoftmax.PARTIALS) {
            FloatVector acc = FloatVector.zero(F);
            for (int c = 0; c < body; c += lanes) acc = acc.add(FloatVector.fromArray(F, row, at + c));
            acc.intoArray(partials, 0);
        } else {
            java.util.Arrays.fill(partials, 0, RowSoftmax.PARTIALS, 0f);
            for (int c = 0; c < body; c += RowSoftmax.PARTIALS) {
                for (int part = 0; part < RowSoftmax.PARTIALS; part += lanes) {
                    FloatVector.fromArray(F, partials, part).add(FloatVector.fromArray(F, row, at + c + part)).intoArray(partials, part);
                }
            }
        }
        return RowSoftmax.finishSum(partials, row, at, cols, body);
    }

    /** row[at + c] = row[at + c] / sum, lane by lane (the scalar division's bits). */
    static void divide(float[] row, int at, int cols, float sum) {
        int lanes = F.length(), vec = cols - cols % lanes;
        FloatVector s = FloatVector.broadcast(F, sum);
        for (int c = 0; c < vec; c += lanes) FloatVector.fromArray(F, row, at + c).div(s).intoArray(row, at + c);
        for (int c = vec; c < cols; c++) row[at + c] = row[at + c] / sum;
    }
}
