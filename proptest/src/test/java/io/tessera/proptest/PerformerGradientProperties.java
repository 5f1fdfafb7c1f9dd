package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.backend.Backend;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.kernelized.Performer;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * The Performer's backward pass: the gradients of the estimator it computes (features held fixed,
 * read back with {@link Performer#projection}) against the analytic float64 gradients of its
 * quadratic definition with FAVOR+ features (checked against central differences). Tolerance as
 * for linear attention: 10× the naive fp32 gradients' error + the floor, or the a-priori summation
 * bound 2(Nq + Nkv + m + D + Dv)·2⁻²⁴·Σ|terms| where larger (the feature sums run over m too).
 * Inputs of scale 0.5, inside the numeric domain where the features of every row are comparable.
 */
class PerformerGradientProperties {

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(140, 140, 8); }

    @Provide
    Arbitrary<AttentionCase> smallCases() { return AttentionCase.cases(5, 5, 3); }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    static double[][] omega(Performer op, int headDim) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor w = op.projection(arena, headDim);
            double[][] m = new double[(int) w.size(0)][headDim];
            for (int f = 0; f < m.length; f++) for (int c = 0; c < headDim; c++) m[f][c] = w.get(f, c);
            return m;
        }
    }

    private static Tensor scaled(Arena arena, long seed, long... shape) { return Tensor.randomNormal(arena, seed, 0.5f, shape); }

    private record Inputs(Tensor q, Tensor k, Tensor v, Tensor dOut) {
        static Inputs of(Arena arena, AttentionCase c, boolean causal) {
            int nk = causal ? c.qLen() : c.kvLen();
            return new Inputs(scaled(arena, c.seed(), c.batch(), c.heads(), c.qLen(), c.headDim()), scaled(arena, c.seed() + 1, c.batch(), c.kvHeads(), nk, c.headDim()),
                    Tensor.randomNormal(arena, c.seed() + 2, 1f, c.batch(), c.kvHeads(), nk, c.valueDim()), GradientOracles.dOut(arena, c));
        }
    }

    @Property(tries = 15)
    void oracleGradientsAreTheDerivative(@ForAll("smallCases") AttentionCase c, @ForAll boolean causal, @ForAll @IntRange(min = 1, max = 6) int m) {
        try (Arena arena = Arena.ofShared()) {
            Inputs in = Inputs.of(arena, c, causal);
            FeatureAttentionOracle.FeatureMap map = FeatureAttentionOracle.favor(omega(Performer.withFeatures(m).orthogonal(m % 2 == 0), c.headDim()));
            GradientOracles.Gradients g = FeatureAttentionOracle.gradients(map, in.q(), in.k(), in.v(), in.dOut(), causal, false, false);
            GradientOracles.Forward f = () -> FeatureAttentionOracle.forward(map, in.q(), in.k(), in.v(), causal);
            GradientOracles.checkFiniteDifferences("dq", in.q(), g.dq(), f, in.dOut());
            GradientOracles.checkFiniteDifferences("dk", in.k(), g.dk(), f, in.dOut());
            GradientOracles.checkFiniteDifferences("dv", in.v(), g.dv(), f, in.dOut());
        }
    }

    @Property(tries = 30)
    void matchesTheGradientOracle(@ForAll("cases") AttentionCase c, @ForAll boolean causal, @ForAll boolean orthogonal, @ForAll @IntRange(min = 1, max = 40) int m,
                                  @ForAll("backends") String backend) {
        check(c, causal, orthogonal, m, backend, ElementType.F32, ElementType.F32);
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Half-precision storage: q, k, v and dOut in BF16 or F16, the gradients in F32 or that type.
     * Against the float64 oracle on the same rounded inputs, the rule above, plus one rounding of
     * each gradient stored in a half type ({@code Tolerance.stored}).
     */
    @Property(tries = 20)
    void halfPrecisionMatchesTheOracleOnRoundedInputs(@ForAll("cases") AttentionCase c, @ForAll boolean causal, @ForAll boolean orthogonal,
                                                      @ForAll @IntRange(min = 1, max = 40) int m, @ForAll("backends") String backend,
                                                      @ForAll("halfTypes") ElementType type, @ForAll boolean halfGradients) {
        check(c, causal, orthogonal, m, backend, type, halfGradients ? type : ElementType.F32);
    }

    private static void check(AttentionCase c, boolean causal, boolean orthogonal, int m, String backend, ElementType inputType, ElementType gradientType) {
        try (Arena arena = Arena.ofShared()) {
            Inputs wide = Inputs.of(arena, c, causal);
            Inputs in = new Inputs(wide.q().to(arena, inputType), wide.k().to(arena, inputType), wide.v().to(arena, inputType), wide.dOut().to(arena, inputType));
            Performer op = Performer.withFeatures(m).orthogonal(orthogonal).causal(causal).redraw(c.seed()).on(Backend.named(backend));
            // Overwritten, never read (NaN).
            Tensor dq = GradientOracles.gradient(arena, in.q(), gradientType), dk = GradientOracles.gradient(arena, in.k(), gradientType);
            Tensor dv = GradientOracles.gradient(arena, in.v(), gradientType);
            op.backward(in.q(), in.k(), in.v(), in.dOut(), dq, dk, dv);
            FeatureAttentionOracle.FeatureMap map = FeatureAttentionOracle.favor(omega(op, c.headDim()));
            double gamma = 2 * (in.q().size(2) + in.k().size(2) + m + c.headDim() + c.valueDim()) * 0x1p-24;
            GradientOracles.assertWithinExactRule("performer m=" + m, dq, dk, dv,
                    FeatureAttentionOracle.gradients(map, in.q(), in.k(), in.v(), in.dOut(), causal, false, false),
                    FeatureAttentionOracle.gradients(map, in.q(), in.k(), in.v(), in.dOut(), causal, true, false),
                    FeatureAttentionOracle.gradients(map, in.q(), in.k(), in.v(), in.dOut(), causal, false, true), gamma);
        }
    }

    @Property(tries = 15)
    void gradientsAreBitIdenticalForAnyThreadCount(@ForAll("cases") AttentionCase c, @ForAll boolean causal, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Inputs in = Inputs.of(arena, c, causal);
            GradientOracles.assertBitIdenticalForThreads(arena, Performer.withFeatures(48).causal(causal), Backend.named(backend), in.q(), in.k(), in.v(), in.dOut());
        }
    }

    /** Causal: NaN, ±∞ and huge values from position p on leave dq of every earlier row bit-identical. */
    @Property(tries = 20)
    void causalQueryGradientsNeverSeeLaterPositions(@ForAll("cases") AttentionCase c, @ForAll("backends") String backend, @ForAll @IntRange(min = 1, max = 139) int cut) {
        int n = c.qLen();
        if (cut >= n) return;
        try (Arena arena = Arena.ofShared()) {
            Inputs in = Inputs.of(arena, c, true);
            Performer op = Performer.withFeatures(32).causal(true).on(Backend.named(backend));
            Tensor dq = Tensor.zeros(arena, in.q().shape()), dk = Tensor.zeros(arena, in.k().shape()), dv = Tensor.zeros(arena, in.v().shape());
            op.backward(in.q(), in.k(), in.v(), in.dOut(), dq, dk, dv);
            float[] clean = dq.toArray();
            float[] poison = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 1e30f, -1e30f};
            for (int b = 0; b < c.batch(); b++) for (int i = cut; i < n; i++) {
                for (int h = 0; h < c.kvHeads(); h++) {
                    in.k().set(poison[i % 5], b, h, i, i % c.headDim());
                    in.v().set(poison[(i + 1) % 5], b, h, i, i % c.valueDim());
                }
                for (int h = 0; h < c.heads(); h++) {
                    in.q().set(poison[(i + 2) % 5], b, h, i, 0);
                    in.dOut().set(poison[(i + 3) % 5], b, h, i, 0);
                }
            }
            op.backward(in.q(), in.k(), in.v(), in.dOut(), dq, dk, dv);
            float[] dirty = dq.toArray();
            int d = c.headDim();
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) for (int i = 0; i < cut; i++) for (int x = 0; x < d; x++) {
                int at = ((b * c.heads() + h) * n + i) * d + x;
                assertThat(dirty[at]).as("dq[%d,%d,%d,%d] with positions >= %d poisoned", b, h, i, x, cut).isEqualTo(clean[at]);
            }
        }
    }

    @Example
    void badInputsNameTheParameter() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 8, 4), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, 8, 4), v = Tensor.randomNormal(arena, 3, 1f, 1, 1, 8, 3);
            Tensor dOut = Tensor.zeros(arena, 1, 2, 8, 3), dq = Tensor.zeros(arena, 1, 2, 8, 4), dk = Tensor.zeros(arena, 1, 1, 8, 4), dv = Tensor.zeros(arena, 1, 1, 8, 3);
            GradientOracles.assertRejectsBadGradientArguments(arena, Performer.withFeatures(16), q, k, v, dOut, dq, dk, dv);
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> Performer.withFeatures(4).projection(arena, 0)).hasMessage("headDim must be >= 1, got 0");
        }
    }
}
