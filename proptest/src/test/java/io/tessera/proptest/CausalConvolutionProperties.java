package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.variant.conv.CausalConvolution;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** The causal convolution as Toeplitz attention, and its FFT path against the direct one. */
class CausalConvolutionProperties {

    @Property(tries = 80)
    void directPathIsToeplitzAttention(@ForAll @IntRange(min = 1, max = 80) int n, @ForAll @IntRange(min = 1, max = 12) int taps,
                                       @ForAll @IntRange(min = 1, max = 5) int dilation, @ForAll @IntRange(min = 1, max = 3) int groupsLog, @ForAll long seed) {
        toeplitz(n, taps, dilation, groupsLog, seed, ElementType.F32, ElementType.F32, CausalConvolution.Path.DIRECT);
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Half-precision storage: x in BF16 or F16, out in F32 or that type, on both paths. Against the
     * float64 Toeplitz product of the same rounded x, the direct path's bound (on the FFT path plus
     * {@link #fftPathEqualsTheDirectPath}'s bound between the two paths), plus one rounding of an
     * output stored in a half type ({@code Tolerance.stored}).
     */
    @Property(tries = 40)
    void halfPrecisionIsToeplitzAttentionOnTheRoundedInput(@ForAll @IntRange(min = 1, max = 80) int n, @ForAll @IntRange(min = 1, max = 12) int taps,
                                                           @ForAll @IntRange(min = 1, max = 5) int dilation, @ForAll @IntRange(min = 1, max = 3) int groupsLog,
                                                           @ForAll long seed, @ForAll("halfTypes") ElementType type, @ForAll boolean halfOutput, @ForAll boolean fft) {
        toeplitz(n, taps, dilation, groupsLog, seed, type, halfOutput ? type : ElementType.F32, fft ? CausalConvolution.Path.FFT : CausalConvolution.Path.DIRECT);
    }

    private static void toeplitz(int n, int taps, int dilation, int groupsLog, long seed, ElementType inputType, ElementType outputType, CausalConvolution.Path path) {
        int groups = 1 << (groupsLog - 1), channels = groups * 3;
        float[][] w = weights(groups, taps, seed);
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.randomNormal(arena, seed, 1f, 1, 2, n, channels).to(arena, inputType), out = Tensor.zeros(arena, outputType, 1, 2, n, channels);
            CausalConvolution.of(w, dilation).forward(x, out, path);
            double[] expectedAll = new double[2 * n * channels];
            double worst = 0, bound = 0;
            for (int h = 0; h < 2; h++) for (int i = 0; i < n; i++) for (int c = 0; c < channels; c++) {
                double expected = 0, abs = 0;
                for (int j = 0; j <= i; j++) {   // A[i][j] = w[(i−j)/dilation] on the taps, 0 elsewhere
                    int lag = i - j;
                    if (lag % dilation != 0 || lag / dilation >= taps) continue;
                    double term = w[c / 3][lag / dilation] * (double) x.get(0, h, j, c);
                    expected += term;
                    abs += Math.abs(term);
                }
                expectedAll[(h * n + i) * channels + c] = expected;
                worst = Math.max(worst, Math.abs(out.get(0, h, i, c) - expected));
                bound = Math.max(bound, (taps + 2) * 0x1p-24 * abs + 1e-7);
            }
            if (path == CausalConvolution.Path.FFT) {
                // The FFT path is within fftPathEqualsTheDirectPath's bound of the direct path.
                double sumW = 0, maxX = 0;
                for (float[] g : w) for (float t : g) sumW += Math.abs(t);
                for (float v : x.toArray()) maxX = Math.max(maxX, Math.abs(v));
                bound += (taps + 2) * 0x1p-24 * sumW * maxX + 1e-6;
            }
            if (outputType == ElementType.F32 && path == CausalConvolution.Path.DIRECT) assertThat(worst).isLessThanOrEqualTo(bound);
            else GradientOracles.assertStoredWithin(path + " convolution output in " + outputType, out, expectedAll, bound);
        }
    }

    @Property(tries = 60)
    void fftPathEqualsTheDirectPath(@ForAll @IntRange(min = 1, max = 300) int n, @ForAll @IntRange(min = 1, max = 100) int taps,
                                    @ForAll @IntRange(min = 1, max = 4) int dilation, @ForAll long seed) {
        float[][] w = weights(2, taps, seed);
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.randomNormal(arena, seed, 1f, 1, 1, n, 4), direct = Tensor.zeros(arena, 1, 1, n, 4), fft = Tensor.zeros(arena, 1, 1, n, 4);
            CausalConvolution conv = CausalConvolution.of(w, dilation);
            conv.forward(x, direct, CausalConvolution.Path.DIRECT);
            conv.forward(x, fft, CausalConvolution.Path.FFT);
            double sumW = 0, maxX = 0;
            for (float[] g : w) for (float t : g) sumW += Math.abs(t);
            for (float v : x.toArray()) maxX = Math.max(maxX, Math.abs(v));
            // FFT round-off ∝ log2(size)·ε_double, negligible; both are then rounded to fp32 and the direct path accumulates in fp32.
            double bound = (taps + 2) * 0x1p-24 * sumW * maxX + 1e-6;
            float[] a = direct.toArray(), b = fft.toArray();
            for (int i = 0; i < a.length; i++) assertThat((double) Math.abs(a[i] - b[i])).isLessThanOrEqualTo(bound);
        }
    }

    static float[][] weights(int groups, int taps, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[][] w = new float[groups][taps];
        for (float[] g : w) for (int t = 0; t < taps; t++) g[t] = (float) r.nextGaussian() / taps;
        return w;
    }

    @Example
    void badInputs() {
        assertThatThrownBy(() -> CausalConvolution.of(new float[][] {{}}, 1)).hasMessage("kernel size must be >= 1, got 0");
        assertThatThrownBy(() -> CausalConvolution.of(new float[][] {{1f}}, 0)).hasMessage("dilation must be >= 1, got 0");
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.zeros(arena, 1, 1, 4, 5);
            assertThatThrownBy(() -> CausalConvolution.of(new float[][] {{1f}, {1f}}, 1).forward(x, Tensor.zeros(arena, 1, 1, 4, 5), CausalConvolution.Path.AUTO))
                    .hasMessage("groups=2 must divide channels=5");
        }
        assertThat(CausalConvolution.of(new float[][] {new float[CausalConvolution.fftThresholdTaps() + 1]}, 1).explain()).startsWith("FFT");
        assertThat(CausalConvolution.of(new float[][] {new float[CausalConvolution.fftThresholdTaps()]}, 1).explain()).startsWith("direct");
    }
}
