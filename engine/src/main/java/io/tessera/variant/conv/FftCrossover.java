package io.tessera.variant.conv;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.OptionalInt;

/**
 * The filter length above which {@link CausalConvolution.Path#AUTO} takes the FFT path, measured on
 * the machine at hand once per JVM (0.3 s) or fixed by {@value #PROPERTY}. The direct path
 * costs K multiply-adds per output, the (causal divide-and-conquer) FFT path ~4·log2(2N) per output
 * and level whatever K, so the crossover is the number of taps at which a direct convolution costs
 * what one FFT convolution does (it grows slowly with N; AUTO uses the one measured here):
 * both are timed at N = 512 and 4 channels with K = {@value #PROBE_TAPS} taps, and the direct time
 * scaled linearly in K. Both paths are plain Java; a measurement taken while the JIT was still
 * compiling them is rejected, and the reference machine's crossover stands in.
 */
final class FftCrossover {
    private FftCrossover() {}

    /** System property that fixes the crossover (taps) instead of measuring it. */
    static final String PROPERTY = "tessera.conv.fftThresholdTaps";
    static final int PROBE_TAPS = 64;
    private static final long WARM_UP_NANOS = 150_000_000, BUDGET_NANOS = 150_000_000;

    private static final class Holder {
        static final int TAPS = resolve(System.getProperty(PROPERTY));
    }

    static int thresholdTaps() { return Holder.TAPS; }

    static int resolve(String property) {
        if (property == null || property.isBlank()) return measure().orElse(REFERENCE_TAPS);
        try {
            int taps = Integer.parseInt(property.trim());
            if (taps >= 0) return taps;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(PROPERTY + " must be a number of taps >= 0, got '" + property + "'");
    }

    /** The reference machine's crossover (2026-11-24), used when the timings have not settled. */
    static final int REFERENCE_TAPS = 48;

    /**
     * Taps at which the direct path costs what the FFT path does (at N = 512): after a warm-up on a
     * short sequence, both paths run alternately for the budget, and each one's fastest run counts once its timings have settled
     * (the second half of its runs no more than 20 % faster than the first: the JIT has finished);
     * empty otherwise.
     */
    static OptionalInt measure() {
        float[][] weights = new float[1][PROBE_TAPS];
        for (int t = 0; t < PROBE_TAPS; t++) weights[0][t] = 1f / (t + 1);
        CausalConvolution conv = CausalConvolution.of(weights, 1);
        try (Arena arena = Arena.ofConfined()) {
            // Warm-up on a short sequence: many cheap calls get both paths' loops compiled by C2 soon.
            Tensor small = Tensor.randomNormal(arena, 4, 1f, 1, 1, 96, 4), smallOut = Tensor.zeros(arena, 1, 1, 96, 4);
            long start = System.nanoTime();
            while (System.nanoTime() - start < WARM_UP_NANOS) {
                conv.forward(small, smallOut, CausalConvolution.Path.DIRECT);
                conv.forward(small, smallOut, CausalConvolution.Path.FFT);
            }
            Tensor x = Tensor.randomNormal(arena, 5, 1f, 1, 1, 512, 4), out = Tensor.zeros(arena, 1, 1, 512, 4);
            long[][] times = new long[2][1024];
            int runs = 0;
            start = System.nanoTime();
            while (runs < times[0].length && System.nanoTime() - start < BUDGET_NANOS) {
                for (int path = 0; path < 2; path++) {
                    long t0 = System.nanoTime();
                    conv.forward(x, out, path == 0 ? CausalConvolution.Path.DIRECT : CausalConvolution.Path.FFT);
                    times[path][runs] = Math.max(1, System.nanoTime() - t0);
                }
                runs++;
            }
            double direct = settled(times[0], runs), fft = settled(times[1], runs);
            if (Double.isNaN(direct) || Double.isNaN(fft)) return OptionalInt.empty();
            return OptionalInt.of((int) Math.min(Integer.MAX_VALUE, Math.round(PROBE_TAPS * fft / direct)));
        }
    }

    private static double settled(long[] times, int runs) {
        if (runs < 10) return Double.NaN;
        long first = Long.MAX_VALUE, second = Long.MAX_VALUE;
        for (int i = 0; i < runs / 2; i++) first = Math.min(first, times[i]);
        for (int i = runs / 2; i < runs; i++) second = Math.min(second, times[i]);
        return second >= 0.8 * first ? Math.min(first, second) : Double.NaN;
    }
}
