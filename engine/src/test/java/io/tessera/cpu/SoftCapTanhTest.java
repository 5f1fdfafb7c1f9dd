package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/**
 * Soft-capping's tanh (ScalarAttentionKernel.softCap, which both kernels and both decode kernels
 * compute operation for operation) against float64 cap·tanh(x/cap): within 3.5·10^−7·cap (about
 * 6 ulp of cap; the largest seen is 3.36·10^−7, in the rational's band, at cap 10^4)
 * on a grid of step 5·10^−6 in y up to 12, on every 7th float y of the band [0.625, 7.9053) at cap 1,
 * and on the 4001 floats around each branch point (0.625, 7.9053) and around 9; never beyond ±cap;
 * odd; exactly ±cap from |y| = 7.9053 on (where 1 − tanh is 2.7·10^−7); NaN for NaN; ±cap for ±∞.
 */
class SoftCapTanhTest {

    private static final float[] CAPS = {1f, 0.5f, 3f, 50f * ScalarAttentionKernel.LOG2E, 72.13475f, 1e-3f, 1e4f};

    @Test
    void withinSixUlpOfCapAndOdd() {
        for (float cap : CAPS) {
            float inverse = 1f / cap;
            double worst = 0;
            float worstX = 0;
            for (int i = 0; i <= 2_400_000; i++) {
                float x = (float) (i * 5e-6 * cap);
                double e = error(cap, inverse, x);
                if (e > worst) { worst = e; worstX = x; }
            }
            for (float edge : new float[] {0.625f, 7.905311f, 9f}) {
                int bits = Float.floatToRawIntBits(edge * cap);
                for (int u = -2000; u <= 2000; u++) {
                    float x = Float.intBitsToFloat(bits + u);
                    double e = error(cap, inverse, x);
                    if (e > worst) { worst = e; worstX = x; }
                }
            }
            if (cap == 1f) {
                int from = Float.floatToRawIntBits(0.625f), to = Float.floatToRawIntBits(7.905311f);
                for (int bits = from; bits < to; bits += 7) {
                    float x = Float.intBitsToFloat(bits);
                    double e = error(cap, inverse, x);
                    if (e > worst) { worst = e; worstX = x; }
                }
            }
            assertThat(worst).as("largest error / cap at cap %s (x = %s)", cap, worstX).isLessThanOrEqualTo(3.5e-7);
        }
    }

    /** |softCap(x) − cap·tanh(x/cap)| / cap; checks the bound by cap, oddness and saturation on the way. */
    private static double error(float cap, float inverse, float x) {
        float capped = ScalarAttentionKernel.softCap(x, cap, inverse);
        float y = x * inverse;
        if (Math.abs(capped) > cap) throw new AssertionError("beyond the cap at cap " + cap + ", x " + x + ": " + capped);
        if (ScalarAttentionKernel.softCap(-x, cap, inverse) != -capped) throw new AssertionError("not odd at cap " + cap + ", x " + x);
        if (y * y >= ScalarAttentionKernel.TANH_SATURATED_SQUARED && capped != cap) throw new AssertionError("not saturated at cap " + cap + ", x " + x + ": " + capped);
        return Math.abs(capped - cap * Math.tanh((double) x / cap)) / cap;
    }

    @Test
    void nanStaysNanAndInfinitiesGiveTheCap() {
        for (float cap : CAPS) {
            assertThat(ScalarAttentionKernel.softCap(Float.NaN, cap, 1f / cap)).isNaN();
            assertThat(ScalarAttentionKernel.softCap(Float.POSITIVE_INFINITY, cap, 1f / cap)).isEqualTo(cap);
            assertThat(ScalarAttentionKernel.softCap(Float.NEGATIVE_INFINITY, cap, 1f / cap)).isEqualTo(-cap);
        }
    }
}
