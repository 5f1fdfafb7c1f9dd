package io.tessera.variant.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The folds of L rows at once against one row at a time: the halving tree of {@link PartialSums#fold}
 * (on 16 partials pre-added to L lanes as the vector kernels do) bit for bit, the maxima as Math.max
 * (NaN wins, +0 over −0), at the width this JVM runs (the property suite runs every width).
 */
class LaneFoldsTest {
    private static final float[] SPECIAL = {0f, -0f, Float.NaN, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, 1e30f, -1e30f, Float.MIN_VALUE};

    private static float value(SplittableRandom random) {
        return random.nextInt(10) == 0 ? SPECIAL[random.nextInt(SPECIAL.length)] : (float) (random.nextGaussian() * Math.pow(10, random.nextInt(7) - 3));
    }

    @Test
    void sumsAreTheHalvingTreeOfEachRowAndMaximaAreMathMax() {
        int lanes = LaneFolds.L;
        SplittableRandom random = new SplittableRandom(11);
        for (int trial = 0; trial < 2000; trial++) {
            float[][] partials = new float[lanes][PartialSums.COUNT];
            float[] rows = new float[lanes * lanes], maxRows = new float[lanes * lanes];
            for (int i = 0; i < lanes; i++) {
                for (int j = 0; j < PartialSums.COUNT; j++) partials[i][j] = value(random);
                // pre-added as the kernels do: partial j + 8 onto j, then j + 4 onto j, down to L lanes
                float[] p = partials[i].clone();
                for (int half = PartialSums.COUNT / 2; half >= lanes; half >>= 1) {
                    for (int j = 0; j < half; j++) p[j] = p[j] + p[j + half];
                }
                System.arraycopy(p, 0, rows, i * lanes, lanes);
                for (int lane = 0; lane < lanes; lane++) maxRows[i * lanes + lane] = value(random);
            }
            float[] expectedMax = new float[lanes];
            for (int i = 0; i < lanes; i++) {
                float max = Float.NEGATIVE_INFINITY;
                for (int lane = 0; lane < lanes; lane++) max = Math.max(max, maxRows[i * lanes + lane]);
                expectedMax[i] = max;
            }
            float[] sums = new float[lanes + 3], maxima = new float[lanes + 3];
            LaneFolds.sums(rows, sums, 3);
            LaneFolds.maxima(maxRows, maxima, 3);
            for (int i = 0; i < lanes; i++) {
                float want = PartialSums.fold(partials[i]);
                assertThat(Float.floatToIntBits(sums[3 + i])).as("trial %d row %d: %s vs %s", trial, i, sums[3 + i], want).isEqualTo(Float.floatToIntBits(want));
                assertThat(Float.floatToIntBits(maxima[3 + i])).as("trial %d row %d max", trial, i).isEqualTo(Float.floatToIntBits(expectedMax[i]));
            }
        }
    }

    @Test
    void foldIsTheHalvingTree() {
        float[] p = new float[PartialSums.COUNT];
        // values whose sum depends on the order: the halving tree pairs p[i] with p[i + 8] first
        p[0] = 1e8f; p[8] = -1e8f; p[1] = 1f; p[9] = 0.5f;
        assertThat(PartialSums.fold(p)).isEqualTo(1.5f);
        p[4] = 3f;   // b0 = (p0 + p8) + (p4 + p12)
        assertThat(PartialSums.fold(p)).isEqualTo(4.5f);
    }
}
