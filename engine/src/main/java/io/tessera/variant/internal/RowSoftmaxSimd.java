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
     * {@link RowSoftmax#max} of row[at, at + cols) in lanes (Math.max per lane: NaN propagates), four
     * running maxima while four vectors remain (one chain waited out every max's latency: a row of
     * 4096 columns took a fifth of its softmax in it), then over the lanes with reduceLanes(MAX):
     * exact, so any order gives the scalar loop's value (a scalar loop over the extracted lanes was
     * 6 % of Nyström's forward).
     */
    static float max(float[] row, int at, int cols) {
        int lanes = F.length(), vec = cols - cols % lanes;
        float max = Float.NEGATIVE_INFINITY;
        if (vec > 0) {
            FloatVector best = FloatVector.fromArray(F, row, at), b1 = best, b2 = best, b3 = best;
            int c = lanes;
            for (; c + 4 * lanes <= vec; c += 4 * lanes) {
                best = best.max(FloatVector.fromArray(F, row, at + c));
                b1 = b1.max(FloatVector.fromArray(F, row, at + c + lanes));
                b2 = b2.max(FloatVector.fromArray(F, row, at + c + 2 * lanes));
                b3 = b3.max(FloatVector.fromArray(F, row, at + c + 3 * lanes));
            }
            for (; c < vec; c += lanes) best = best.max(FloatVector.fromArray(F, row, at + c));
            max = best.max(b1).max(b2.max(b3)).reduceLanes(VectorOperators.MAX);
        }
        for (int c = vec; c < cols; c++) max = Math.max(max, row[at + c]);
        return max;
    }

    /** The longest rows {@link #softmaxGroups} takes: L of them in 16 KB at 512 bits. */
    static final int GROUPED_COLUMNS = 256;

    /**
     * {@link RowSoftmax#softmaxRows} on the first rows of {@code block} (count rows of cols floats),
     * L rows at a time while L remain and a row has a whole vector: each row's maximum in lanes and
     * its 16 partial sums pre-added to L lanes, folded for the L rows together ({@link LaneFolds}:
     * row by row, the maximum's and the sum's folds across lanes end dependent chains that nothing
     * hides when rows are short, as Nyström's n × m scores are at m = 64). The same floats meet in
     * the same operations as row by row. Rows longer than {@link #GROUPED_COLUMNS} go row by row:
     * their folds are a small part of their work, and L of them would not stay in L1 between the
     * passes. Returns the rows done (a multiple of L); the caller does the rest. {@code lanes} holds
     * L·L floats, {@code folded} L.
     */
    static int softmaxGroups(float[] block, int count, int cols, float[] lanes, float[] folded) {
        int L = F.length(), vec = cols - cols % L, body = cols - cols % RowSoftmax.PARTIALS;
        if (vec == 0 || cols > GROUPED_COLUMNS) return 0;
        int i0 = 0;
        for (; i0 + L <= count; i0 += L) {
            for (int i = 0; i < L; i++) {
                int at = (i0 + i) * cols;
                FloatVector best = FloatVector.fromArray(F, block, at);
                for (int c = L; c < vec; c += L) best = best.max(FloatVector.fromArray(F, block, at + c));
                best.intoArray(lanes, i * L);
            }
            LaneFolds.maxima(lanes, folded, 0);
            for (int i = 0; i < L; i++) {
                int at = (i0 + i) * cols;
                float max = folded[i];
                for (int c = vec; c < cols; c++) max = Math.max(max, block[at + c]);
                FloatExpSimd.expInPlace(block, at, at + vec, max);
                for (int c = at + vec; c < at + cols; c++) block[c] = FloatExp.exp(block[c] - max);
                // sum's partials (column c into partial c mod 16, in column order), pre-added to L lanes
                FloatVector zero = FloatVector.zero(F), a0 = zero, a1 = zero, a2 = zero, a3 = zero;
                if (L == 16) {
                    for (int c = 0; c < body; c += 16) a0 = a0.add(FloatVector.fromArray(F, block, at + c));
                    a0.intoArray(lanes, i * L);
                } else if (L == 8) {
                    for (int c = 0; c < body; c += 16) {
                        a0 = a0.add(FloatVector.fromArray(F, block, at + c));
                        a1 = a1.add(FloatVector.fromArray(F, block, at + c + 8));
                    }
                    a0.add(a1).intoArray(lanes, i * L);   // p[j] + p[j + 8]
                } else {
                    for (int c = 0; c < body; c += 16) {
                        a0 = a0.add(FloatVector.fromArray(F, block, at + c));
                        a1 = a1.add(FloatVector.fromArray(F, block, at + c + 4));
                        a2 = a2.add(FloatVector.fromArray(F, block, at + c + 8));
                        a3 = a3.add(FloatVector.fromArray(F, block, at + c + 12));
                    }
                    a0.add(a2).add(a1.add(a3)).intoArray(lanes, i * L);   // p[j] + p[j + 8], then + p[j + 4]
                }
            }
            LaneFolds.sums(lanes, folded, 0);
            for (int i = 0; i < L; i++) {
                int at = (i0 + i) * cols;
                float sum = folded[i];
                for (int c = body; c < cols; c++) sum += block[at + c];   // finishSum's tail
                normalize(block, at, cols, sum);
            }
        }
        return i0;
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

    /** {@link RowSoftmax#normalize} lane by lane: row[at + c] · (1 / sum), the scalar twin's bits. */
    static void normalize(float[] row, int at, int cols, float sum) {
        int lanes = F.length(), vec = cols - cols % lanes;
        float inverse = 1f / sum;
        FloatVector s = FloatVector.broadcast(F, inverse);
        for (int c = 0; c < vec; c += lanes) FloatVector.fromArray(F, row, at + c).mul(s).intoArray(row, at + c);
        for (int c = vec; c < cols; c++) row[at + c] = row[at + c] * inverse;
    }
}
