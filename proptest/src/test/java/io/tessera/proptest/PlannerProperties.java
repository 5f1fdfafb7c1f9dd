package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.pattern.Pattern;
import io.tessera.planner.Planner;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/** The planner's decisions follow its cost model, and whatever it picks computes the same attention. */
class PlannerProperties {

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(48, 48, 8); }

    @Property(tries = 60)
    void theChosenPathMatchesTheOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern p) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen(), c.valueDim());
            Planner.Plan plan = Planner.plan(p, c.heads(), c.qLen(), c.kvLen(), c.headDim());
            plan.forward(q, k, v, out);
            var mask = p.asMask(c.qLen(), c.kvLen());
            DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, Double.NaN), naive = DenseReference.naiveFloat32(q, k, v, mask, Double.NaN);
            assertThat(Tolerance.maxError(out, oracle.output())).as(plan.explain()).isLessThanOrEqualTo(Tolerance.exact(q, k, v, Double.NaN, naive, oracle).output());
            // The choice is the cheapest candidate.
            for (Planner.Candidate other : plan.candidates()) assertThat(plan.chosen().estimatedMs()).isLessThanOrEqualTo(other.estimatedMs());
        }
    }

    @Example
    void structuredPatternsTakeTheFusedKernelScatteredOnesTheCsrPath() {
        assertThat(Planner.plan(Pattern.full(), 8, 4096, 4096, 64).path()).isEqualTo(Planner.Path.FUSED_BLOCK_SPARSE);
        assertThat(Planner.plan(Pattern.slidingWindow(256), 8, 4096, 4096, 64).path()).isEqualTo(Planner.Path.FUSED_BLOCK_SPARSE);
        // ~0.4 % of pairs, scattered: every tile is PARTIAL and nearly empty.
        Pattern scattered = Pattern.predicate("scattered", (i, j) -> PatternProperties.mix(i * 7919L + j) % 256 == 0);
        Planner.Plan plan = Planner.plan(scattered, 8, 1024, 1024, 64);
        assertThat(plan.path()).isEqualTo(Planner.Path.EXPLICIT_CSR);
        assertThat(plan.explain()).contains("explicit CSR").contains("fused 64x64 blocks").contains("estimated");
    }

    @Example
    void badInputs() {
        assertThatThrownBy(() -> Planner.plan(Pattern.causal(), 0, 8, 8, 4)).hasMessage("heads must be >= 1, got 0");
        assertThatThrownBy(() -> Planner.plan(Pattern.causal(), 1, 8, 8, 0)).hasMessage("headDim must be >= 1, got 0");
        assertThatThrownBy(() -> new Planner.CostModel(0, 1, 1)).hasMessageContaining("cost constants must be positive");
    }
}
