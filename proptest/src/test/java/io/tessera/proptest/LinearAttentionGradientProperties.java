package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.kernelized.LinearAttention;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * The backward pass of linear attention against the analytic gradients of its quadratic definition
 * in float64 (themselves checked against central differences), with the EXACT gradient rule:
 * within 10× the error of the same gradients computed naively in fp32, plus a floor relative to
 * the gradient's size ({@link Tolerance#gradient}), or within the a-priori rounding bound of any
 * summation order, 2(Nq + Nkv + D + Dv)·2⁻²⁴·Σ|terms|, when that is larger: gradients whose true
 * value cancels to ~0 (kvLen = 1: out = v₀ whatever q and k are) come out of the naive loop exact
 * by luck of its order, not of its accuracy. Bidirectional and causal, grouped-query heads,
 * qLen ≠ kvLen, sequences longer than a chunk (128) and causal chunks cut by huge keys; thread-count
 * bit identity; causality of dq; bad inputs.
 */
class LinearAttentionGradientProperties {

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(160, 160, 9); }

    @Provide
    Arbitrary<AttentionCase> smallCases() { return AttentionCase.cases(6, 6, 3); }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    static GradientOracles.Gradients gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, boolean causal, boolean float32) {
        return FeatureAttentionOracle.gradients(FeatureAttentionOracle.ELU, q, k, v, dOut, causal, float32, false);
    }

    static GradientOracles.Gradients absoluteTerms(Tensor q, Tensor k, Tensor v, Tensor dOut, boolean causal) {
        return FeatureAttentionOracle.gradients(FeatureAttentionOracle.ELU, q, k, v, dOut, causal, false, true);
    }

    /** The analytic float64 gradients are the derivative of Σ dOut ∘ (the float64 definition). */
    @Property(tries = 25)
    void oracleGradientsAreTheDerivative(@ForAll("smallCases") AttentionCase c, @ForAll boolean causal) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = keys(arena, c, causal), v = values(arena, c, causal), dOut = GradientOracles.dOut(arena, c);
            GradientOracles.Gradients g = gradients(q, k, v, dOut, causal, false);
            GradientOracles.Forward f = () -> LinearAttentionProperties.reference(q, k, v, causal);
            GradientOracles.checkFiniteDifferences("dq", q, g.dq(), f, dOut);
            GradientOracles.checkFiniteDifferences("dk", k, g.dk(), f, dOut);
            GradientOracles.checkFiniteDifferences("dv", v, g.dv(), f, dOut);
        }
    }

    @Property(tries = 45)
    void matchesTheGradientOracle(@ForAll("cases") AttentionCase c, @ForAll boolean causal, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = keys(arena, c, causal), v = values(arena, c, causal), dOut = GradientOracles.dOut(arena, c);
            check(arena, op(causal).on(Backend.named(backend)), q, k, v, dOut, causal);
        }
    }

    /**
     * Keys far apart in size: a causal chunk ends before a key whose features exceed its shift by
     * e^20, so these inputs run many short chunks whose shifts differ by up to e^40 (the backward
     * pass carries dS and dz down across them).
     */
    @Property(tries = 30)
    void causalChunksCutByHugeKeysMatchTheOracle(@ForAll @IntRange(min = 2, max = 200) int n, @ForAll @IntRange(min = 1, max = 4) int d,
                                                @ForAll long seed, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 1f, 1, 2, n, d), k = Tensor.randomNormal(arena, seed + 1, 1f, 1, 1, n, d);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 1, n, 3), dOut = Tensor.randomNormal(arena, seed + 3, 1f, 1, 2, n, 3);
            java.util.SplittableRandom random = new java.util.SplittableRandom(seed);
            for (int j = 0; j < n; j++) if (random.nextInt(5) == 0) k.set((float) Math.exp(random.nextDouble(3, 9)), 0, 0, j, random.nextInt(d));
            check(arena, LinearAttention.causal().on(Backend.named(backend)), q, k, v, dOut, true);
        }
    }

    /**
     * Half-precision storage: q, k, v and dOut in BF16 or F16, the gradients in F32 or that type.
     * Against the float64 oracle on the same rounded inputs, the rule above, plus one rounding of
     * each gradient stored in a half type ({@code Tolerance.stored}): the backward pass runs in
     * float32 on exact widenings of the inputs and rounds each half-precision gradient once.
     */
    @Property(tries = 30)
    void halfPrecisionMatchesTheOracleOnRoundedInputs(@ForAll("cases") AttentionCase c, @ForAll boolean causal, @ForAll("backends") String backend,
                                                      @ForAll("halfTypes") ElementType type, @ForAll boolean halfGradients) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena).to(arena, type), k = keys(arena, c, causal).to(arena, type), v = values(arena, c, causal).to(arena, type);
            Tensor dOut = GradientOracles.dOut(arena, c).to(arena, type);
            check(arena, op(causal).on(Backend.named(backend)), q, k, v, dOut, causal, halfGradients ? type : ElementType.F32);
        }
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /** No atomics, one order for every sum: the same bits for 1, 2 and 3 threads. */
    @Property(tries = 20)
    void gradientsAreBitIdenticalForAnyThreadCount(@ForAll("cases") AttentionCase c, @ForAll boolean causal, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = keys(arena, c, causal), v = values(arena, c, causal), dOut = GradientOracles.dOut(arena, c);
            Backend be = Backend.named(backend);
            GradientOracles.assertBitIdenticalForThreads(arena, op(causal), be, q, k, v, dOut);
        }
    }

    /**
     * Causal: the gradient of row i's query depends on positions ≤ i only. NaN, ±∞ and huge values
     * in keys, values, queries and loss gradients from position p on leave dq of every earlier row
     * bit-identical.
     */
    @Property(tries = 30)
    void causalQueryGradientsNeverSeeLaterPositions(@ForAll("cases") AttentionCase c, @ForAll("backends") String backend, @ForAll @IntRange(min = 1, max = 159) int cut) {
        int n = c.qLen();
        if (cut >= n) return;
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = keys(arena, c, true), v = values(arena, c, true), dOut = GradientOracles.dOut(arena, c);
            LinearAttention op = LinearAttention.causal().on(Backend.named(backend));
            Tensor dq = Tensor.zeros(arena, q.shape()), dk = Tensor.zeros(arena, k.shape()), dv = Tensor.zeros(arena, v.shape());
            op.backward(q, k, v, dOut, dq, dk, dv);
            float[] clean = dq.toArray();
            float[] poison = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 1e30f, -1e30f};
            for (int b = 0; b < c.batch(); b++) for (int i = cut; i < n; i++) {
                for (int h = 0; h < c.kvHeads(); h++) {
                    k.set(poison[i % 5], b, h, i, i % c.headDim());
                    v.set(poison[(i + 1) % 5], b, h, i, i % c.valueDim());
                }
                for (int h = 0; h < c.heads(); h++) {
                    q.set(poison[(i + 2) % 5], b, h, i, 0);
                    dOut.set(poison[(i + 3) % 5], b, h, i, 0);
                }
            }
            op.backward(q, k, v, dOut, dq, dk, dv);
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
            GradientOracles.assertRejectsBadGradientArguments(arena, LinearAttention.bidirectional(), q, k, v, dOut, dq, dk, dv);
            Tensor shortK = Tensor.zeros(arena, 1, 1, 7, 4), shortV = Tensor.zeros(arena, 1, 1, 7, 3);
            assertThatThrownBy(() -> LinearAttention.causal().backward(q, shortK, shortV, dOut, dq, Tensor.zeros(arena, 1, 1, 7, 4), Tensor.zeros(arena, 1, 1, 7, 3)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("causal linear attention needs qLen == kvLen, got qLen=8, kvLen=7");
        }
    }

    private static LinearAttention op(boolean causal) { return causal ? LinearAttention.causal() : LinearAttention.bidirectional(); }

    private static Tensor keys(Arena arena, AttentionCase c, boolean causal) {
        return Tensor.randomNormal(arena, c.seed() + 1, 1f, c.batch(), c.kvHeads(), causal ? c.qLen() : c.kvLen(), c.headDim());
    }

    private static Tensor values(Arena arena, AttentionCase c, boolean causal) {
        return Tensor.randomNormal(arena, c.seed() + 2, 1f, c.batch(), c.kvHeads(), causal ? c.qLen() : c.kvLen(), c.valueDim());
    }

    private static void check(Arena arena, LinearAttention op, Tensor q, Tensor k, Tensor v, Tensor dOut, boolean causal) {
        check(arena, op, q, k, v, dOut, causal, ElementType.F32);
    }

    private static void check(Arena arena, LinearAttention op, Tensor q, Tensor k, Tensor v, Tensor dOut, boolean causal, ElementType gradientType) {
        // Overwritten, never read (NaN).
        Tensor dq = GradientOracles.gradient(arena, q, gradientType), dk = GradientOracles.gradient(arena, k, gradientType), dv = GradientOracles.gradient(arena, v, gradientType);
        op.backward(q, k, v, dOut, dq, dk, dv);
        // Sums run over the queries, the keys and the feature and value dimensions.
        double gamma = 2 * (q.size(2) + k.size(2) + q.size(3) + v.size(3)) * 0x1p-24;
        GradientOracles.assertWithinExactRule(op.toString(), dq, dk, dv, gradients(q, k, v, dOut, causal, false), gradients(q, k, v, dOut, causal, true),
                absoluteTerms(q, k, v, dOut, causal), gamma);
    }
}
