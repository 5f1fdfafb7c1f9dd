package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.variant.kernelized.Performer;
import io.tessera.reference.DenseReference;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** FAVOR+: unbiased kernel estimate, error shrinking with the feature count, causal = prefixes. */
class PerformerProperties {

    /**
     * Mean absolute error against dense softmax attention, over every output element and seeds: the
     * average (not the worst element) is what the 1/√m law describes and what stays stable.
     */
    static double meanError(int features, int seeds, Tensor q, Tensor k, Tensor v, Arena arena, String backend) {
        double[] dense = DenseReference.attention(q, k, v).output();
        double total = 0;
        for (int s = 0; s < seeds; s++) {
            Tensor out = Tensor.zeros(arena, q.size(0), q.size(1), q.size(2), v.size(3));
            Performer.withFeatures(features).redraw(1000 + s).on(Backend.named(backend)).forward(q, k, v, out);
            float[] o = out.toArray();
            for (int i = 0; i < o.length; i++) total += Math.abs(o[i] - dense[i]);
        }
        return total / (seeds * (double) dense.length);
    }

    @Property(tries = 6)
    void errorShrinksLikeOneOverRootM(@ForAll long seed, @ForAll boolean simd) {
        try (Arena arena = Arena.ofShared()) {
            // Small logits (std 0.5) keep the estimator's variance moderate, as in the paper's regime.
            Tensor q = Tensor.randomNormal(arena, seed, 0.5f, 1, 1, 48, 16), k = Tensor.randomNormal(arena, seed + 1, 0.5f, 1, 1, 48, 16);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 1, 48, 8);
            String backend = simd ? "simd" : "scalar";
            double small = meanError(64, 12, q, k, v, arena, backend), large = meanError(1024, 12, q, k, v, arena, backend);
            // 1/√m predicts a 4× drop from 64 to 1024 features; demand at least 2×.
            assertThat(large).as("mean error m=1024 (%s) vs m=64 (%s)", large, small).isLessThan(small / 2);
        }
    }

    @Property(tries = 5)
    void causalOutputIsTheBidirectionalFormulaOnEachPrefix(@ForAll long seed, @ForAll @IntRange(min = 2, max = 40) int n) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 0.7f, 1, 2, n, 8), k = Tensor.randomNormal(arena, seed + 1, 0.7f, 1, 2, n, 8);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 2, n, 5), causal = Tensor.zeros(arena, 1, 2, n, 5);
            Performer p = Performer.withFeatures(32).redraw(seed);
            p.causal(true).forward(q, k, v, causal);
            for (int i : new int[] {0, n / 2, n - 1}) {
                Tensor prefixOut = Tensor.zeros(arena, 1, 2, 1, 5);
                p.forward(q.slice(2, i, i + 1), k.slice(2, 0, i + 1), v.slice(2, 0, i + 1), prefixOut);
                for (int h = 0; h < 2; h++) for (int c = 0; c < 5; c++) {
                    assertThat((double) causal.get(0, h, i, c)).isCloseTo(prefixOut.get(0, h, 0, c), org.assertj.core.api.Assertions.within(1e-4));
                }
            }
        }
    }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(200, 200, 12); }

    /**
     * The forward pass against the float64 estimator it computes (FeatureAttentionOracle, the same
     * features): bidirectional as two softmax attentions through the m random directions in the
     * fused kernel, causal by prefix sums of the features. A weight is e^(argument), so an error of
     * δ in an argument is a relative error of δ in the weight: with arguments ω_f·x − ‖x‖²/(2√D) up
     * to A in size, each computed to (D + 2)·A·ε, and sums over n + m terms, the output (a convex
     * combination of value rows) is off by ≤ c·(n + m + D)·(1 + A)·ε·max|v|; c = 8 as for linear attention.
     */
    @Property(tries = 40)
    void equalsTheFloat64Estimator(@ForAll("cases") AttentionCase c, @ForAll boolean causal, @ForAll boolean orthogonal,
                                   @ForAll @IntRange(min = 1, max = 64) int m, @ForAll boolean simd) {
        int nk = causal ? c.qLen() : c.kvLen();
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, c.seed(), 0.7f, c.batch(), c.heads(), c.qLen(), c.headDim());
            Tensor k = Tensor.randomNormal(arena, c.seed() + 1, 0.7f, c.batch(), c.kvHeads(), nk, c.headDim());
            Tensor v = Tensor.randomNormal(arena, c.seed() + 2, 1f, c.batch(), c.kvHeads(), nk, c.valueDim());
            Tensor out = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen(), c.valueDim());
            Performer op = Performer.withFeatures(m).orthogonal(orthogonal).causal(causal).redraw(c.seed()).on(Backend.named(simd ? "simd" : "scalar"));
            op.forward(q, k, v, out);
            double[][] omega = PerformerGradientProperties.omega(op, c.headDim());
            double largest = 0, maxV = 0;
            for (Tensor x : new Tensor[] {q, k}) {
                float[] rows = x.toArray();
                for (int r = 0; r < rows.length / c.headDim(); r++) {
                    double sq = 0;
                    for (int i = 0; i < c.headDim(); i++) sq += (double) rows[r * c.headDim() + i] * rows[r * c.headDim() + i];
                    for (double[] w : omega) {
                        double dot = 0;
                        for (int i = 0; i < c.headDim(); i++) dot += w[i] * rows[r * c.headDim() + i];
                        largest = Math.max(largest, Math.abs(dot) + sq / (2 * Math.sqrt(c.headDim())));
                    }
                }
            }
            for (float x : v.toArray()) maxV = Math.max(maxV, Math.abs(x));
            double tolerance = 8 * (c.qLen() + nk + m + c.headDim()) * (1 + largest) * 0x1p-24 * maxV + 1e-6;
            double[] reference = FeatureAttentionOracle.forward(FeatureAttentionOracle.favor(omega), q, k, v, causal);
            assertThat(io.tessera.reference.Tolerance.maxError(out, reference)).as("m=%d, causal %s, %s", m, causal, simd ? "simd" : "scalar").isLessThanOrEqualTo(tolerance);
        }
    }

    @Example
    void badFeatureCountsAreRejected() {
        assertThatThrownBy(() -> Performer.withFeatures(0)).hasMessage("features m must be >= 1, got 0");
        assertThatThrownBy(() -> Performer.withFeatures(-3)).hasMessage("features m must be >= 1, got -3");
    }
}
