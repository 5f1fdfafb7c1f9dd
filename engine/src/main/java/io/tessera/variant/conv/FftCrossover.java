package io.tessera.variant.conv;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * The filter length above which {@link CausalConvolution.Path#AUTO} takes the FFT path, measured on
 * the machine at hand once per JVM (about 0.1 s) or fixed by {@value #PROPERTY}. The direct path
 * costs K multiply-adds per output, the (causal divide-and-conquer) FFT path ~4·log2(2N) per output
 * and level whatever K, so the crossover is the number of taps at which a direct convolution costs
 * what one FFT convolution does (it grows slowly with N; AUTO uses the one measured here):
 * both are timed at N = 1024 and 8 channels with K = {@value #PROBE_TAPS} taps (their fastest runs
 * within the budget), and the direct time scaled linearly in K. Both paths are plain Java, which the
 * JIT compiles within the first few calls, so the measurement is of compiled code.
 */
final class FftCrossover {
    private FftCrossover() {}

    /** System property that fixes the crossover (taps) instead of measuring it. */
    static final String PROPERTY = "tessera.conv.fftThresholdTaps";
    static final int PROBE_TAPS = 64;
    private static final long BUDGET_NANOS = 50_000_000;

    private static final class Holder {
        static final int TAPS = resolve(System.getProperty(PROPERTY));
    }

    static int thresholdTaps() { return Holder.TAPS; }

    static int resolve(String property) {
        if (property == null || property.isBlank()) return measure();
        try {
            int taps = Integer.parseInt(property.trim());
            if (taps >= 0) return taps;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(PROPERTY + " must be a number of taps >= 0, got '" + property + "'");
    }

    /** Taps at which the direct path costs what the FFT path does (at N = 1024). */
    static int measure() {
        float[][] weights = new float[1][PROBE_TAPS];
        for (int t = 0; t < PROBE_TAPS; t++) weights[0][t] = 1f / (t + 1);
        CausalConvolution conv = CausalConvolution.of(weights, 1);
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.randomNormal(arena, 5, 1f, 1, 1, 1024, 8), out = Tensor.zeros(arena, 1, 1, 1024, 8);
            double direct = fastest(() -> conv.forward(x, out, CausalConvolution.Path.DIRECT));
            double fft = fastest(() -> conv.forward(x, out, CausalConvolution.Path.FFT));
            return (int) Math.min(Integer.MAX_VALUE, Math.round(PROBE_TAPS * fft / direct));
        }
    }

    private static double fastest(Runnable call) {
        long best = Long.MAX_VALUE, start = System.nanoTime();
        for (int run = 0; run < 3 || System.nanoTime() - start < BUDGET_NANOS; run++) {
            long t0 = System.nanoTime();
            call.run();
            best = Math.min(best, System.nanoTime() - t0);
        }
        return Math.max(1, best);
    }
}
