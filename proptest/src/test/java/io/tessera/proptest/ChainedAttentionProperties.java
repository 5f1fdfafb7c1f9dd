package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.variant.factorized.ChainedAttention;
import io.tessera.backend.Backend;
import io.tessera.pattern.Pattern;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** Factorized and axial attention against the dense oracle applied step by step. */
class ChainedAttentionProperties {

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    /** The oracle applied in sequence: values of step s+1 = float64 output of step s. */
    static double[] composed(ChainedAttention chain, Tensor q, Tensor k, Tensor v, Arena arena) {
        int n = (int) q.size(2);
        Tensor values = v;
        double[] last = null;
        for (Pattern p : chain.steps()) {
            last = DenseReference.attention(q, k, values, p.asMask(n, n), Double.NaN).output();
            float[] asFloat = new float[last.length];
            for (int i = 0; i < last.length; i++) asFloat[i] = (float) last[i];
            values = Tensor.of(arena, asFloat, v.shape());
        }
        return last;
    }

    static void check(ChainedAttention chain, int n, long seed, String backend) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 1f, 1, 2, n, 6), k = Tensor.randomNormal(arena, seed + 1, 1f, 1, 2, n, 6);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 2, n, 5), out = Tensor.zeros(arena, 1, 2, n, 5);
            chain.on(Backend.named(backend)).forward(q, k, v, out);
            // Each step is an EXACT fused call (≤ 1e-5-ish here) on values that are convex combinations of v.
            assertThat(Tolerance.maxError(out, composed(chain, q, k, v, arena))).isLessThanOrEqualTo(1e-4 * chain.steps().size());
        }
    }

    @Property(tries = 40)
    void factorizedEqualsTheComposedOracle(@ForAll @IntRange(min = 1, max = 60) int n, @ForAll @IntRange(min = 1, max = 9) int stride,
                                           @ForAll boolean causal, @ForAll long seed, @ForAll("backends") String backend) {
        check(ChainedAttention.sparseTransformer(stride, causal), n, seed, backend);
    }

    @Property(tries = 40)
    void axialEqualsTheComposedOracle(@ForAll @IntRange(min = 1, max = 8) int rows, @ForAll @IntRange(min = 1, max = 8) int cols,
                                      @ForAll long seed, @ForAll("backends") String backend) {
        check(ChainedAttention.axial(rows, cols), rows * cols, seed, backend);
    }

    @Example
    void badInputs() {
        assertThatThrownBy(() -> ChainedAttention.axial(0, 4)).hasMessage("rows must be >= 1, got 0");
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.zeros(arena, 1, 1, 10, 4);
            assertThatThrownBy(() -> ChainedAttention.axial(3, 4).forward(x, x, x, Tensor.zeros(arena, 1, 1, 10, 4))).hasMessageContaining("axial 3x4 needs sequence length 12, got 10");
        }
    }
}
