package io.tessera.variant.conv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** The FFT crossover: measured quickly, fixed by the property, bad values named. */
class FftCrossoverTest {

    @Test
    void firstUseGivesACrossover() {
        // How long first use takes is a benchmark's business, not a test's (CI machines are shared).
        long start = System.nanoTime();
        int taps = FftCrossover.resolve(null);
        System.out.printf("first-use FFT crossover: %d taps in %.2f s%n", taps, (System.nanoTime() - start) / 1e9);
        assertThat(taps).isPositive();
    }

    @Test
    void onceTheJitHasCompiledBothPathsTheMeasurementSettlesWithinTheCostModel() {
        java.util.OptionalInt taps = java.util.OptionalInt.empty();
        for (int attempt = 0; attempt < 40 && taps.isEmpty(); attempt++) taps = FftCrossover.measure();   // each attempt also warms
        assertThat(taps).as("settled within 40 attempts of 0.3 s").isPresent();
        System.out.println("measured FFT crossover: " + taps.getAsInt() + " taps (reference machine: " + FftCrossover.REFERENCE_TAPS + ")");
        // The causal FFT path at N = 512 costs ~4·log2(1024) = 40 multiply-adds per output and level against
        // 1 per tap: a crossover between a few taps and a few thousand.
        assertThat(taps.getAsInt()).isBetween(2, 8192);
    }

    @Test
    void thePropertyFixesIt() {
        assertThat(FftCrossover.resolve(" 17 ")).isEqualTo(17);
        assertThat(FftCrossover.resolve("0")).isZero();
        assertThatThrownBy(() -> FftCrossover.resolve("many")).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("tessera.conv.fftThresholdTaps must be a number of taps >= 0, got 'many'");
        assertThatThrownBy(() -> FftCrossover.resolve("-1")).hasMessage("tessera.conv.fftThresholdTaps must be a number of taps >= 0, got '-1'");
    }

    @Test
    void explainNamesTheMeasuredThreshold() {
        CausalConvolution conv = CausalConvolution.of(new float[][] {{1f, 0.5f}}, 1);
        assertThat(conv.explain()).isEqualTo("direct: 2 taps <= " + CausalConvolution.fftThresholdTaps());
    }
}
