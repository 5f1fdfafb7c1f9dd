package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The QKᵀ micro-kernel on STEP-key panels (SimdAttentionKernel.packPanels, .scores) against the
 * scalar twin's fma chain, bit for bit: every key range [from, from + count) of blocks of 1 to 70
 * keys, so ranges start at every position inside a panel and end in full steps and in 4-key
 * tails; head dimensions 1, 3 and 64. Keys before {@code from} in the range's first panel are NaN:
 * they are scored but must reach no stored row. Rows before the range are never written (the
 * kernel would throw on a negative index) and the rows of the range hold exactly the twin's floats.
 */
class PanelScoresTest {

    private static final int GROUP = SimdAttentionKernel.GROUP;

    @Test
    void everyRangeMatchesTheScalarChain() {
        Random random = new Random(7);
        for (int d : new int[] {1, 3, 64}) {
            float[] qT = new float[d * GROUP];
            for (int i = 0; i < qT.length; i++) qT[i] = (float) random.nextGaussian();
            for (int n = 1; n <= 70; n += n < 14 ? 1 : 7) {
                float[] rows = new float[n * d];
                for (int i = 0; i < rows.length; i++) rows[i] = (float) random.nextGaussian();
                for (int from = 0; from < n; from++) {
                    for (int count = 1; from + count <= n; count += count < 8 ? 1 : 5) {
                        float[] poisoned = rows.clone();
                        Arrays.fill(poisoned, (from - from % 6) * d, from * d, Float.NaN);   // the first panel's keys before the range
                        int tileOff = 5;   // panels need not start at 0
                        float[] panels = new float[tileOff + SimdAttentionKernel.panelFloats(n, d)];
                        SimdAttentionKernel.packPanels(poisoned, 0, n, d, panels, tileOff);
                        float[] sT = new float[(count + 6) * GROUP];
                        SimdAttentionKernel.scores(panels, tileOff, from, count, d, qT, 0, sT, 0f);
                        for (int j = 0; j < count; j++) {
                            for (int lane = 0; lane < GROUP; lane++) {
                                float expected = 0f;
                                for (int i = 0; i < d; i++) expected = Math.fma(qT[i * GROUP + lane], rows[(from + j) * d + i], expected);
                                float actual = sT[j * GROUP + lane];
                                assertThat(Float.floatToRawIntBits(actual))
                                        .as("d=%d n=%d from=%d count=%d key %d lane %d: %s vs %s", d, n, from, count, j, lane, actual, expected)
                                        .isEqualTo(Float.floatToRawIntBits(expected));
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void panelsHoldTheRowsAndZerosPastTheLastKey() {
        int n = 8, d = 3;
        float[] rows = new float[n * d];
        for (int i = 0; i < rows.length; i++) rows[i] = i + 1;
        float[] panels = new float[SimdAttentionKernel.panelFloats(n, d)];
        Arrays.fill(panels, -1f);
        SimdAttentionKernel.packPanels(rows, 0, n, d, panels, 0);
        assertThat(panels).hasSize(2 * 6 * d);
        for (int j = 0; j < 12; j++) {
            for (int i = 0; i < d; i++) {
                float expected = j < n ? rows[j * d + i] : 0f;
                assertThat(panels[(j / 6) * 6 * d + i * 6 + j % 6]).isEqualTo(expected);
            }
        }
    }
}
