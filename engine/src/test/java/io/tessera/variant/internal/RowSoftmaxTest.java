package io.tessera.variant.internal;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The vectorized row softmax against the scalar definition ((float) Math.exp per element, float sum in column order), within the shared exp's 2 ulps and the sum's rounding; the vector sum against the scalar partials bit for bit. */
class RowSoftmaxTest {

    @Test
    void matchesTheScalarSoftmaxWithinTwoUlpsPerExponential() {
        SplittableRandom random = new SplittableRandom(5);
        try (Arena arena = Arena.ofConfined()) {
            for (int cols : new int[] {1, 3, 4, 7, 8, 9, 17, 64, 257}) {
                int rows = 5;
                float[] values = new float[rows * cols];
                for (int i = 0; i < values.length; i++) values[i] = (float) (random.nextGaussian() * (i % 3 == 0 ? 30 : 3));
                Tensor x = Tensor.of(arena, values, rows, cols);
                RowSoftmax.softmaxRows(x);
                float[] got = x.toArray();
                for (int r = 0; r < rows; r++) {
                    float max = Float.NEGATIVE_INFINITY;
                    for (int c = 0; c < cols; c++) max = Math.max(max, values[r * cols + c]);
                    float[] e = new float[cols];
                    float sum = 0;
                    for (int c = 0; c < cols; c++) sum += e[c] = (float) Math.exp(values[r * cols + c] - max);
                    for (int c = 0; c < cols; c++) {
                        float want = e[c] / sum;
                        // two ulps of an exponential move the sum by at most cols ulps of it, the quotient by a few ulps;
                        // exponentials below the normal range (e^x < 2^−126) may flush to 0
                        assertThat((double) Math.abs(got[r * cols + c] - want)).as("cols %d row %d col %d", cols, r, c)
                                .isLessThanOrEqualTo(6 * Math.ulp(want) + 4 * cols * Math.ulp(sum) * want / sum + 0x1p-126 / sum);
                    }
                }
            }
        }
    }

    @Test
    void vectorExponentialsAreTheScalarOnesAndWithinTwoUlpsOfMathExp() {
        if (!RowSoftmax.SIMD) return;
        SplittableRandom random = new SplittableRandom(7);
        int n = 1 << 16;
        float[] row = new float[n], scalar = new float[n];
        for (int i = 0; i < n; i++) {
            row[i] = (float) (-random.nextDouble() * 110);   // down past the smallest float (e^−103.3)
            scalar[i] = FloatExp.exp(row[i]);
        }
        float[] x = row.clone();
        int done = RowSoftmaxSimd.exponentials(row, 0, n, 0f);
        assertThat(done).isEqualTo(n);
        for (int i = 0; i < n; i++) {
            assertThat(Float.floatToRawIntBits(row[i])).as("e^%s: vector vs scalar", x[i]).isEqualTo(Float.floatToRawIntBits(scalar[i]));
            float want = (float) Math.exp(x[i]);
            // below the normal range (e^x < 2^−126) the result may flush to 0: an absolute error below 2^−126
            assertThat((double) Math.abs(row[i] - want)).as("e^%s", x[i]).isLessThanOrEqualTo(Math.max(2 * Math.ulp(want), 0x1p-126));
        }
    }

    @Test
    void vectorSumIsTheScalarPartialsSum() {
        if (!RowSoftmax.SIMD) return;
        SplittableRandom random = new SplittableRandom(9);
        float[] partials = new float[RowSoftmax.PARTIALS];
        for (int cols : new int[] {1, 15, 16, 17, 31, 32, 64, 100, 4096}) {
            for (int at : new int[] {0, 3}) {
                float[] row = new float[at + cols];
                for (int i = 0; i < row.length; i++) row[i] = (float) Math.exp(random.nextGaussian() * 4);   // magnitudes 10^±5: the order shows in the bits
                float scalar = RowSoftmax.sumScalar(row, at, cols, partials);
                float vector = RowSoftmaxSimd.sum(row, at, cols, partials);
                assertThat(Float.floatToRawIntBits(vector)).as("cols %d at %d: %s vs %s", cols, at, vector, scalar).isEqualTo(Float.floatToRawIntBits(scalar));
            }
        }
    }

    @Test
    void nanInARowMakesTheRowNaNAndLeavesOtherRows() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.zeros(arena, 2, 20);
            x.set(Float.NaN, 0, 13);
            RowSoftmax.softmaxRows(x);
            for (int c = 0; c < 20; c++) {
                assertThat(x.get(0, c)).isNaN();
                assertThat(x.get(1, c)).isEqualTo(1f / 20);
            }
        }
    }

    /**
     * The rows done L at a time (their maxima and sums folded together) and the rows done one by one
     * against the scalar definition, bit for bit: rows around multiples of the lanes, columns around
     * whole vectors and past the grouped length, contiguous and strided rows, NaN, infinities.
     */
    @Test
    void groupedRowsAreTheScalarSoftmaxBitForBit() {
        SplittableRandom random = new SplittableRandom(13);
        float[] partials = new float[RowSoftmax.PARTIALS];
        try (Arena arena = Arena.ofConfined()) {
            for (int rows : new int[] {1, 4, 15, 16, 17, 33, 40}) {
                for (int cols : new int[] {1, 7, 15, 16, 17, 31, 64, 100, 256, 257, 300}) {
                    for (boolean strided : new boolean[] {false, true}) {
                        float[] values = new float[rows * cols];
                        for (int i = 0; i < values.length; i++) {
                            int pick = random.nextInt(200);
                            values[i] = pick == 0 ? Float.NaN : pick == 1 ? Float.NEGATIVE_INFINITY : pick == 2 ? 1e30f : (float) (random.nextGaussian() * 8);
                        }
                        Tensor x = strided ? Tensor.zeros(arena, rows, cols + 3).slice(1, 1, cols + 1) : Tensor.zeros(arena, rows, cols);
                        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) x.set(values[r * cols + c], r, c);
                        RowSoftmax.softmaxRows(x);
                        for (int r = 0; r < rows; r++) {
                            float[] row = java.util.Arrays.copyOfRange(values, r * cols, (r + 1) * cols);
                            float max = RowSoftmax.max(row, 0, cols);
                            for (int c = 0; c < cols; c++) row[c] = FloatExp.exp(row[c] - max);
                            float sum = RowSoftmax.sumScalar(row, 0, cols, partials);
                            for (int c = 0; c < cols; c++) {
                                float want = row[c] * (1f / sum), got = x.get(r, c);
                                assertThat(Float.floatToRawIntBits(got) == Float.floatToRawIntBits(want) || (want != want && got != got))
                                        .as("rows %d cols %d strided %s at (%d, %d): %s vs %s", rows, cols, strided, r, c, got, want).isTrue();
                            }
                        }
                    }
                }
            }
        }
    }
}
