package io.tessera.variant.kernelized;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** FAVOR+ is an unbiased estimator of the softmax kernel exp(qᵀk/√D) (Choromanski et al. 2021, Lemma 1). */
class RandomFeaturesTest {

    @Test
    void positiveRandomFeaturesEstimateTheSoftmaxKernelWithoutBias() {
        int d = 8, m = 16, draws = 2000;
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.randomNormal(arena, 1, 0.6f, 1, d), k = Tensor.randomNormal(arena, 2, 0.6f, 1, d);
            double dot = 0;
            for (int c = 0; c < d; c++) dot += (double) q.get(0, c) * k.get(0, c);
            double exact = Math.exp(dot / Math.sqrt(d));
            Tensor fq = Tensor.zeros(arena, 1, m), fk = Tensor.zeros(arena, 1, m);
            double sum = 0, sumSq = 0;
            for (int s = 0; s < draws; s++) {
                RandomFeatures phi = new RandomFeatures(m, d, false, 1000 + s);
                // The plain estimator φ(q)·φ(k), no stabilizer.
                phi.features(Backend.named("scalar"), q, fq);
                phi.features(Backend.named("scalar"), k, fk);
                double est = 0;
                for (int f = 0; f < m; f++) est += (double) fq.get(0, f) * fk.get(0, f);
                sum += est;
                sumSq += est * est;
            }
            double mean = sum / draws, stdError = Math.sqrt((sumSq / draws - mean * mean) / draws);
            // Unbiased: the mean over independent draws lies within 4 standard errors of the kernel.
            assertThat(Math.abs(mean - exact)).as("mean %s, exact %s, standard error %s", mean, exact, stdError).isLessThanOrEqualTo(4 * stdError);
        }
    }

    /**
     * The pre-activations' backward pass (what a Performer backward needs on top of the feature core
     * linear attention shares) is the transpose of their derivative: Σ_f du_f ∂u_f/∂x, with the
     * derivative taken by central differences of the pre-activations in float64 from their fp32 values.
     */
    @Test
    void preActivationsBackwardIsTheTransposedDerivative() {
        int d = 5, m = 7, rows = 3;
        try (Arena arena = Arena.ofConfined()) {
            RandomFeatures phi = new RandomFeatures(m, d, true, 42);
            Tensor x = Tensor.randomNormal(arena, 3, 1f, rows, d), du = Tensor.randomNormal(arena, 4, 1f, rows, m);
            Tensor dx = Tensor.zeros(arena, rows, d), u = Tensor.zeros(arena, rows, m);
            for (String name : new String[] {"scalar", "simd"}) {
                Backend be = Backend.named(name);
                dx.fill(1f);   // accumulate adds to what is there
                phi.preActivationsBackward(be, x, du, dx, true);
                for (int r = 0; r < rows; r++) for (int c = 0; c < d; c++) {
                    float original = x.get(r, c);
                    double h = 0x1p-6;
                    x.set((float) (original + h), r, c);
                    phi.preActivations(be, x, u);
                    double plus = 0;
                    for (int f = 0; f < m; f++) plus += (double) du.get(r, f) * u.get(r, f);
                    x.set((float) (original - h), r, c);
                    phi.preActivations(be, x, u);
                    double minus = 0;
                    for (int f = 0; f < m; f++) minus += (double) du.get(r, f) * u.get(r, f);
                    x.set(original, r, c);
                    // u is quadratic in x: central differences are exact up to the fp32 rounding of u.
                    assertThat((double) dx.get(r, c) - 1).as("%s dx[%d][%d]", name, r, c).isCloseTo((plus - minus) / (2 * h), org.assertj.core.data.Offset.offset(2e-3));
                }
            }
        }
    }
}
