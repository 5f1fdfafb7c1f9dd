package io.tessera.variant.content;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;

/**
 * The projections that decide LSH buckets and routing clusters are the same floats with and without
 * the Vector API (so a plan does not depend on the machine): ragged row tiles, column counts that
 * are not a multiple of the 4-column block, strided rows, NaN and infinite inputs.
 */
class ProjectionTest {

    @RepeatedTest(100)
    void vectorKernelIsTheScalarLoopsTwin(RepetitionInfo info) {
        SplittableRandom random = new SplittableRandom(info.getCurrentRepetition());
        int rows = random.nextInt(1, 200), d = random.nextInt(1, 40), cols = random.nextInt(1, 19), heads = 2;
        boolean normalize = random.nextBoolean();
        try (Arena arena = Arena.ofConfined()) {
            Tensor wide = Tensor.randomNormal(arena, random.nextLong(), 1f, 1, heads, rows, d + 3);
            Tensor t = wide.slice(3, 1, d + 1);   // rows with a stride of d + 3
            if (random.nextInt(4) == 0) t.set(Float.NaN, 0, 1, random.nextInt(rows), random.nextInt(d));
            if (random.nextInt(4) == 0) t.set(Float.POSITIVE_INFINITY, 0, 1, random.nextInt(rows), random.nextInt(d));
            float[] matrix = new float[d * cols];
            for (int i = 0; i < matrix.length; i++) matrix[i] = (float) random.nextGaussian();
            float[] simd = new float[cols * rows], scalar = new float[cols * rows];
            Projection.project(t, 0, 1, rows, normalize, matrix, cols, new Projection.Scratch(d, cols), simd, true);
            Projection.project(t, 0, 1, rows, normalize, matrix, cols, new Projection.Scratch(d, cols), scalar, false);
            for (int i = 0; i < simd.length; i++) {
                assertThat(Float.floatToIntBits(simd[i])).as("output %d of %dx%d·%dx%d", i, rows, d, d, cols).isEqualTo(Float.floatToIntBits(scalar[i]));
            }
            // And the definition: the fma chain over d of the (normalized) row.
            int i = random.nextInt(rows), c = random.nextInt(cols);
            double norm = 0;
            for (int x = 0; x < d; x++) norm += (double) t.get(0, 1, i, x) * t.get(0, 1, i, x);
            float inv = !normalize ? 1f : norm > 0 ? (float) (1 / Math.sqrt(norm)) : 0f;
            float expected = 0f;
            for (int x = 0; x < d; x++) expected = Math.fma(t.get(0, 1, i, x) * inv, matrix[x * cols + c], expected);
            assertThat(Float.floatToIntBits(scalar[c * rows + i])).isEqualTo(Float.floatToIntBits(expected));
        }
    }

    /** LSH digits: the vector argmax is the scalar loop's twin, ties (values from a small set), NaN and ±0 included. */
    @RepeatedTest(100)
    void vectorBucketsAreTheScalarLoopsTwin(RepetitionInfo info) {
        SplittableRandom random = new SplittableRandom(1000 + info.getCurrentRepetition());
        int rows = random.nextInt(1, 150);
        int[] factors = new int[random.nextInt(1, 4)];
        int cols = 0;
        for (int i = 0; i < factors.length; i++) {
            factors[i] = random.nextInt(4) == 0 ? 1 : 2 * random.nextInt(1, 6);
            cols += factors[i] / 2;
        }
        int from = random.nextInt(0, 3);
        float[] projected = new float[(from + cols) * rows];
        float[] values = {0f, -0f, 1f, -1f, 2.5f, Float.NaN, 0.5f};
        for (int i = 0; i < projected.length; i++) projected[i] = random.nextBoolean() ? values[random.nextInt(values.length)] : (float) random.nextGaussian();
        int at = random.nextInt(0, 5);
        int[] simd = new int[at + rows], scalar = new int[at + rows];
        Projection.buckets(projected, rows, from, factors, simd, at, true);
        Projection.buckets(projected, rows, from, factors, scalar, at, false);
        assertThat(simd).as("factors %s, rows %d", java.util.Arrays.toString(factors), rows).isEqualTo(scalar);
        int product = 1;
        for (int f : factors) product *= f;
        for (int t = 0; t < rows; t++) assertThat(scalar[at + t]).isBetween(0, product - 1);
    }
}
