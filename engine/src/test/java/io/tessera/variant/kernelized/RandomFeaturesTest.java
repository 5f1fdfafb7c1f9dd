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
}
