package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The two-group micro-kernels of the forward pass (SimdAttentionKernel.scoresPair and
 * .accumulatePair) against the one-group kernels they stand in for, bit for bit: each group's scores
 * and outputs are the same fma chains in the same order. Tiles of 1 to 70 keys (full 6-key steps and
 * 4-key tails), head dimensions 1 to 13 (column blocks of 6, of 4, and 1 to 3 single columns) and 64,
 * panels and value rows at an offset, the pair's two score rows at different offsets (the forward
 * pass uses them from their first cache lines), accumulators that start nonzero. The kernels are called
 * directly, so they are checked at every vector width, whichever path the forward pass takes there;
 * so is the pass that soft-caps a pair's scores (capOnPolynomial) against scores()' in-register cap.
 */
class PairKernelsTest {

    private static final int GROUP = SimdAttentionKernel.GROUP;
    /** Where the pair's two score rows start in their arrays: different, as two arrays' first lines are. */
    private static final int FIRST_BASE = 5, SECOND_BASE = 11;

    @Test
    void scoresPairEqualsScoresOfEachGroup() {
        Random random = new Random(11);
        for (int d : new int[] {1, 2, 5, 13, 64}) {
            float[] qT = gaussian(random, 2 * d * GROUP);
            for (int n = 1; n <= 70; n += n < 14 ? 1 : 7) {
                float[] rows = gaussian(random, n * d);
                int tileOff = 3;
                float[] panels = new float[tileOff + SimdAttentionKernel.panelFloats(n, d)];
                SimdAttentionKernel.packPanels(rows, 0, n, d, panels, tileOff);
                float[] first = new float[(n + 6) * GROUP], second = new float[first.length];
                float[] pairFirst = new float[FIRST_BASE + first.length], pairSecond = new float[SECOND_BASE + first.length];
                SimdAttentionKernel.scores(panels, tileOff, 0, n, d, qT, 0, first, 0f);
                SimdAttentionKernel.scores(panels, tileOff, 0, n, d, qT, d * GROUP, second, 0f);
                SimdAttentionKernel.scoresPair(panels, tileOff, n, d, qT, 0, pairFirst, FIRST_BASE, pairSecond, SECOND_BASE);
                assertSameBits(pairFirst, FIRST_BASE, first, n * GROUP, "scores, first group, d=" + d + " n=" + n);
                assertSameBits(pairSecond, SECOND_BASE, second, n * GROUP, "scores, second group, d=" + d + " n=" + n);
            }
        }
    }

    /** Soft-capped tiles on the polynomial: the pair's scores capped by capOnPolynomial are the capped scores() of each group. */
    @Test
    void cappedPairEqualsCappedScoresOfEachGroup() {
        Random random = new Random(13);
        float inverseCap = 1f / 7.5f;   // the same operations are compared, whether or not a score lies in the polynomial's range
        for (int d : new int[] {1, 5, 64}) {
            float[] qT = gaussian(random, 2 * d * GROUP);
            for (int n = 1; n <= 70; n += n < 14 ? 1 : 7) {
                float[] panels = new float[SimdAttentionKernel.panelFloats(n, d)];
                SimdAttentionKernel.packPanels(gaussian(random, n * d), 0, n, d, panels, 0);
                float[] first = new float[(n + 6) * GROUP], second = new float[first.length];
                float[] pairFirst = new float[FIRST_BASE + first.length], pairSecond = new float[SECOND_BASE + first.length];
                SimdAttentionKernel.scores(panels, 0, 0, n, d, qT, 0, first, inverseCap);
                SimdAttentionKernel.scores(panels, 0, 0, n, d, qT, d * GROUP, second, inverseCap);
                SimdAttentionKernel.scoresPair(panels, 0, n, d, qT, 0, pairFirst, FIRST_BASE, pairSecond, SECOND_BASE);
                SimdAttentionKernel.capOnPolynomial(pairFirst, FIRST_BASE, n, inverseCap);
                SimdAttentionKernel.capOnPolynomial(pairSecond, SECOND_BASE, n, inverseCap);
                assertSameBits(pairFirst, FIRST_BASE, first, n * GROUP, "capped scores, first group, d=" + d + " n=" + n);
                assertSameBits(pairSecond, SECOND_BASE, second, n * GROUP, "capped scores, second group, d=" + d + " n=" + n);
            }
        }
    }

    @Test
    void accumulatePairEqualsAccumulateOfEachGroup() {
        Random random = new Random(12);
        for (int dv = 1; dv <= 64; dv += dv < 13 ? 1 : 51) {
            for (int n = 1; n <= 70; n += n < 14 ? 1 : 7) {
                int vOff = 2;
                float[] values = gaussian(random, vOff + n * dv);
                float[] pFirst = gaussian(random, (n + 6) * GROUP), pSecond = gaussian(random, pFirst.length);
                float[] start = gaussian(random, 2 * dv * GROUP);
                float[] single = start.clone(), pair = start.clone();
                SimdAttentionKernel.accumulate(values, vOff, n, dv, pFirst, single, 0);
                SimdAttentionKernel.accumulate(values, vOff, n, dv, pSecond, single, dv * GROUP);
                SimdAttentionKernel.accumulatePair(values, vOff, n, dv, shifted(pFirst, FIRST_BASE), FIRST_BASE, shifted(pSecond, SECOND_BASE), SECOND_BASE, pair, 0);
                assertSameBits(pair, 0, single, single.length, "outputs, dv=" + dv + " n=" + n);
            }
        }
    }

    private static float[] gaussian(Random random, int length) {
        float[] a = new float[length];
        for (int i = 0; i < length; i++) a[i] = (float) random.nextGaussian();
        return a;
    }

    /** {@code a} copied to start at {@code base}, the floats before it NaN (a kernel that read them would show it). */
    private static float[] shifted(float[] a, int base) {
        float[] b = new float[base + a.length];
        java.util.Arrays.fill(b, 0, base, Float.NaN);
        System.arraycopy(a, 0, b, base, a.length);
        return b;
    }

    /** actual[base + i] and expected[i] have the same bits for i &lt; length. */
    private static void assertSameBits(float[] actual, int base, float[] expected, int length, String what) {
        for (int i = 0; i < length; i++) {
            assertThat(Float.floatToRawIntBits(actual[base + i])).as("%s, element %d: %s vs %s", what, i, actual[base + i], expected[i])
                    .isEqualTo(Float.floatToRawIntBits(expected[i]));
        }
    }
}
