package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.factorized.ChainedAttention;
import java.lang.foreign.Arena;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * The backward pass of factorized and axial attention (the fused backward chained through the
 * steps) against analytic float64 gradients of the composed definition (Y_s = softmax(scale·qkᵀ +
 * mask_s)·Y_{s−1}, Y_0 = v), themselves checked against central differences; the EXACT gradient
 * rule; fully masked rows; thread-count bit identity; bad inputs.
 */
class ChainedAttentionGradientProperties {

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    /** {dq, dk, dv} of the chain for loss gradient dOut (null: the forward output in dq's place). */
    static GradientOracles.Gradients run(List<Pattern> steps, Tensor q, Tensor k, Tensor v, Tensor dOut, double scale, boolean float32) {
        long[] qs = q.shape(), vs = v.shape();
        int batch = (int) qs[0], heads = (int) qs[1], n = (int) qs[2];
        float[] qa = q.toArray(), ka = k.toArray(), va = v.toArray(), ga = dOut == null ? null : dOut.toArray();
        double[] dq = new double[qa.length], dk = new double[ka.length], dv = new double[va.length];
        for (int b = 0; b < batch; b++) for (int h = 0; h < heads; h++) {
            double[][] qh = GradientOracles.head(qa, qs, b, h), kh = GradientOracles.head(ka, k.shape(), b, h);
            boolean[][][] masks = new boolean[steps.size()][n][n];
            double[][][] ys = new double[steps.size() + 1][][];
            ys[0] = GradientOracles.head(va, vs, b, h);
            for (int s = 0; s < steps.size(); s++) {
                MaskFunction m = steps.get(s).asMask(n, n);
                for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) masks[s][i][j] = m.allowed(b, h, i, j);
                ys[s + 1] = GradientOracles.attention(qh, kh, ys[s], masks[s], scale, float32);
            }
            if (ga == null) {
                GradientOracles.addHead(dq, vs, b, h, ys[steps.size()]);
                continue;
            }
            double[][] dy = GradientOracles.head(ga, vs, b, h);
            for (int s = steps.size() - 1; s >= 0; s--) {
                double[][][] g = GradientOracles.attentionGradients(qh, kh, ys[s], dy, masks[s], scale, float32);
                GradientOracles.addHead(dq, qs, b, h, g[0]);
                GradientOracles.addHead(dk, k.shape(), b, h, g[1]);
                dy = g[2];
            }
            GradientOracles.addHead(dv, vs, b, h, dy);
        }
        return new GradientOracles.Gradients(dq, dk, dv);
    }

    /** Odd rows attend nothing in the second step, keys ≥ 2/3·n nobody in the first. */
    static List<Pattern> withEmptyRows(int n) {
        return List.of(Pattern.predicate("first two thirds", (i, j) -> 3 * j < 2 * n), Pattern.predicate("even rows", (i, j) -> i % 2 == 0).and(Pattern.causal()));
    }

    @Provide
    Arbitrary<Integer> chains() { return Arbitraries.integers().between(0, 3); }

    /** Factorized (causal or not), axial, or a chain with empty rows, for sequence length n. */
    static ChainedAttention chain(int kind, int n, int stride) {
        return switch (kind) {
            case 0 -> ChainedAttention.sparseTransformer(stride, true);
            case 1 -> ChainedAttention.sparseTransformer(stride, false);
            case 2 -> {
                int cols = Math.max(1, (int) Math.sqrt(n));
                while (n % cols != 0) cols--;
                yield ChainedAttention.axial(n / cols, cols);
            }
            default -> ChainedAttention.of(withEmptyRows(n));
        };
    }

    @Property(tries = 10)
    void oracleGradientsAreTheDerivative(@ForAll("chains") int kind, @ForAll @IntRange(min = 1, max = 6) int n, @ForAll @IntRange(min = 1, max = 3) int stride, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 1f, 1, 1, n, 2), k = Tensor.randomNormal(arena, seed + 1, 1f, 1, 1, n, 2);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 1, n, 2), dOut = Tensor.randomNormal(arena, seed + 3, 1f, 1, 1, n, 2);
            List<Pattern> steps = chain(kind, n, stride).steps();
            GradientOracles.Gradients g = run(steps, q, k, v, dOut, 0.9, false);
            GradientOracles.Forward f = () -> run(steps, q, k, v, null, 0.9, false).dq();
            GradientOracles.checkFiniteDifferences("dq", q, g.dq(), f, dOut);
            GradientOracles.checkFiniteDifferences("dk", k, g.dk(), f, dOut);
            GradientOracles.checkFiniteDifferences("dv", v, g.dv(), f, dOut);
        }
    }

    @Property(tries = 25)
    void matchesTheGradientOracle(@ForAll("chains") int kind, @ForAll @IntRange(min = 1, max = 2) int batch, @ForAll @IntRange(min = 1, max = 2) int heads,
                                  @ForAll @IntRange(min = 1, max = 60) int n, @ForAll @IntRange(min = 1, max = 9) int stride, @ForAll @IntRange(min = 1, max = 9) int d,
                                  @ForAll @IntRange(min = 1, max = 9) int dv, @ForAll boolean customScale, @ForAll long seed, @ForAll("backends") String backend) {
        check(kind, batch, heads, n, stride, d, dv, customScale, seed, backend, ElementType.F32, ElementType.F32);
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Half-precision storage: q, k, v and dOut in BF16 or F16, the gradients in F32 or that type.
     * Against the float64 oracle on the same rounded inputs, the rule above, plus one rounding of
     * each gradient stored in a half type ({@code Tolerance.stored}).
     */
    @Property(tries = 20)
    void halfPrecisionMatchesTheOracleOnRoundedInputs(@ForAll("chains") int kind, @ForAll @IntRange(min = 1, max = 2) int heads,
                                                      @ForAll @IntRange(min = 1, max = 40) int n, @ForAll @IntRange(min = 1, max = 9) int stride,
                                                      @ForAll @IntRange(min = 1, max = 9) int d, @ForAll @IntRange(min = 1, max = 9) int dv, @ForAll long seed,
                                                      @ForAll("backends") String backend, @ForAll("halfTypes") ElementType type, @ForAll boolean halfGradients) {
        check(kind, 1, heads, n, stride, d, dv, false, seed, backend, type, halfGradients ? type : ElementType.F32);
    }

    private static void check(int kind, int batch, int heads, int n, int stride, int d, int dv, boolean customScale, long seed, String backend,
                              ElementType inputType, ElementType gradientType) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 1f, batch, heads, n, d).to(arena, inputType), k = Tensor.randomNormal(arena, seed + 1, 1f, batch, heads, n, d).to(arena, inputType);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, batch, heads, n, dv).to(arena, inputType);
            Tensor dOut = Tensor.randomNormal(arena, seed + 3, 1f, batch, heads, n, dv).to(arena, inputType);
            ChainedAttention op = chain(kind, n, stride).on(Backend.named(backend));
            if (customScale) op = op.withScale(0.35f);
            double scale = customScale ? 0.35f : (float) (1 / Math.sqrt(d));
            // Overwritten, never read (NaN).
            Tensor dq = GradientOracles.gradient(arena, q, gradientType), dk = GradientOracles.gradient(arena, k, gradientType), dvT = GradientOracles.gradient(arena, v, gradientType);
            op.backward(q, k, v, dOut, dq, dk, dvT);
            GradientOracles.assertWithinExactRule(op.steps().toString(), dq, dk, dvT, run(op.steps(), q, k, v, dOut, scale, false), run(op.steps(), q, k, v, dOut, scale, true));
        }
    }

    /** Rows a step leaves empty get nothing from that step; keys nobody attends get dk = dv = 0. */
    @Example
    void emptyRowsAndUnattendedKeysGetZeroGradients() {
        try (Arena arena = Arena.ofShared()) {
            int n = 30;
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, n, 4), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, n, 4);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 2, n, 3), dOut = Tensor.randomNormal(arena, 4, 1f, 1, 2, n, 3);
            // One step: odd rows attend nothing, keys ≥ 20 are attended by nobody.
            ChainedAttention one = ChainedAttention.of(List.of(Pattern.predicate("odd rows empty", (i, j) -> i % 2 == 0 && j < 20)));
            for (Backend be : Backend.available()) {
                Tensor dq = Tensor.zeros(arena, q.shape()), dk = Tensor.zeros(arena, k.shape()), dv = Tensor.zeros(arena, v.shape());
                one.on(be).backward(q, k, v, dOut, dq, dk, dv);
                for (int h = 0; h < 2; h++) {
                    for (int i = 1; i < n; i += 2) for (int x = 0; x < 4; x++) assertThat(dq.get(0, h, i, x)).isEqualTo(0f);
                    for (int j = 20; j < n; j++) {
                        for (int x = 0; x < 4; x++) assertThat(dk.get(0, h, j, x)).isEqualTo(0f);
                        for (int x = 0; x < 3; x++) assertThat(dv.get(0, h, j, x)).isEqualTo(0f);
                    }
                }
                for (Tensor t : new Tensor[] {dq, dk, dv}) for (float x : t.toArray()) assertThat(x).isFinite();
            }
        }
    }

    @Property(tries = 12)
    void gradientsAreBitIdenticalForAnyThreadCount(@ForAll("chains") int kind, @ForAll @IntRange(min = 1, max = 120) int n, @ForAll @IntRange(min = 1, max = 12) int stride,
                                                   @ForAll long seed, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 1f, 2, 2, n, 6), k = Tensor.randomNormal(arena, seed + 1, 1f, 2, 2, n, 6);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 2, 2, n, 5), dOut = Tensor.randomNormal(arena, seed + 3, 1f, 2, 2, n, 5);
            GradientOracles.assertBitIdenticalForThreads(arena, chain(kind, n, stride), Backend.named(backend), q, k, v, dOut);
        }
    }

    @Example
    void badInputsNameTheParameter() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 12, 4), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, 12, 4), v = Tensor.randomNormal(arena, 3, 1f, 1, 2, 12, 3);
            Tensor dOut = Tensor.zeros(arena, 1, 2, 12, 3), dq = Tensor.zeros(arena, q.shape()), dk = Tensor.zeros(arena, k.shape()), dv = Tensor.zeros(arena, v.shape());
            GradientOracles.assertRejectsBadGradientArguments(arena, ChainedAttention.axial(3, 4), q, k, v, dOut, dq, dk, dv);
            assertThatThrownBy(() -> ChainedAttention.axial(3, 5).backward(q, k, v, dOut, dq, dk, dv))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("axial 3x5 needs sequence length 15, got 12");
            Tensor k1 = Tensor.zeros(arena, 1, 1, 12, 4), v1 = Tensor.zeros(arena, 1, 1, 12, 3);
            assertThatThrownBy(() -> ChainedAttention.axial(3, 4).backward(q, k1, v1, dOut, dq, Tensor.zeros(arena, k1.shape()), Tensor.zeros(arena, v1.shape())))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("chained attention needs heads == kvHeads, got heads=2, kvHeads=1");
        }
    }
}
