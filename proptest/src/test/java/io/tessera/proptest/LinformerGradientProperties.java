package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.lowrank.Linformer;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Linformer's backward pass, projections E and F included, against analytic float64 gradients of
 * its definition (K' = E·K, V' = F·V, softmax attention over the k projected positions), themselves
 * checked against central differences, with the EXACT gradient rule (10× the naive fp32 gradients'
 * error + the floor, {@link Tolerance#gradient}); thread-count bit identity; bad inputs.
 */
class LinformerGradientProperties {

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    /** Gradients of q, k, v and of E (through the keys) and F (through the values). */
    record Result(GradientOracles.Gradients inputs, double[] dE, double[] dF) {}

    /** The float64 (or naive fp32) forward output, row-major [B, H, n, Dv]. */
    static double[] forward(Tensor q, Tensor keys, Tensor values, Tensor e, Tensor f, double scale) {
        return run(q, keys, values, e, f, null, scale, false).inputs().dq();
    }

    /** With {@code dOut} null, returns the forward output in place of dq (and nothing else). */
    static Result run(Tensor q, Tensor keys, Tensor values, Tensor e, Tensor f, Tensor dOut, double scale, boolean float32) {
        long[] qs = q.shape(), ks = keys.shape(), vs = values.shape(), es = e.shape();
        int batch = (int) qs[0], heads = (int) qs[1], kvHeads = (int) ks[1], group = heads / kvHeads;
        float[] qa = q.toArray(), ka = keys.toArray(), va = values.toArray(), ea = e.toArray(), fa = f.toArray(), ga = dOut == null ? null : dOut.toArray();
        long[] outShape = {qs[0], qs[1], qs[2], vs[3]}, projShape = {1, es[0], es[1], es[2]};
        double[] out = new double[(int) (qs[0] * qs[1] * qs[2] * vs[3])];
        double[] dq = new double[qa.length], dk = new double[ka.length], dv = new double[va.length], dE = new double[ea.length], dF = new double[fa.length];
        for (int b = 0; b < batch; b++) for (int hk = 0; hk < kvHeads; hk++) {
            int p = es[0] == 1 ? 0 : hk;
            double[][] eh = GradientOracles.head(ea, projShape, 0, p), fh = GradientOracles.head(fa, projShape, 0, p);
            double[][] kh = GradientOracles.head(ka, ks, b, hk), vh = GradientOracles.head(va, vs, b, hk);
            double[][] kp = GradientOracles.product(eh, false, kh, false, float32), vp = GradientOracles.product(fh, false, vh, false, float32);
            double[][] dkp = new double[kp.length][kp[0].length], dvp = new double[vp.length][vp[0].length];
            for (int h = hk * group; h < (hk + 1) * group; h++) {
                double[][] qh = GradientOracles.head(qa, qs, b, h);
                if (ga == null) {
                    GradientOracles.addHead(out, outShape, b, h, GradientOracles.attention(qh, kp, vp, null, scale, float32));
                    continue;
                }
                double[][][] g = GradientOracles.attentionGradients(qh, kp, vp, GradientOracles.head(ga, outShape, b, h), null, scale, float32);
                GradientOracles.addHead(dq, qs, b, h, g[0]);
                for (int r = 0; r < kp.length; r++) {
                    for (int c = 0; c < kp[0].length; c++) dkp[r][c] = round(float32, dkp[r][c] + g[1][r][c]);
                    for (int c = 0; c < vp[0].length; c++) dvp[r][c] = round(float32, dvp[r][c] + g[2][r][c]);
                }
            }
            if (ga == null) continue;
            GradientOracles.addHead(dk, ks, b, hk, GradientOracles.product(eh, true, dkp, false, float32));
            GradientOracles.addHead(dv, vs, b, hk, GradientOracles.product(fh, true, dvp, false, float32));
            GradientOracles.addHead(dE, projShape, 0, p, GradientOracles.product(dkp, false, kh, true, float32));
            GradientOracles.addHead(dF, projShape, 0, p, GradientOracles.product(dvp, false, vh, true, float32));
        }
        return ga == null ? new Result(new GradientOracles.Gradients(out, null, null), null, null) : new Result(new GradientOracles.Gradients(dq, dk, dv), dE, dF);
    }

    private static double round(boolean float32, double x) { return float32 ? (float) x : x; }

    /** One random Linformer call: E and F per key/value head or one pair for all, tied or not. */
    record Call(Tensor q, Tensor keys, Tensor values, Tensor e, Tensor f, Tensor dOut, float scale) {
        static Call of(Arena arena, int batch, int heads, int kvHeads, int n, int k, int d, int dv, boolean shared, boolean tied, float scale, long seed) {
            int count = shared ? 1 : kvHeads;
            Tensor e = Tensor.randomNormal(arena, seed + 4, (float) (1 / Math.sqrt(k)), count, k, n);
            Tensor f = tied ? e : Tensor.randomNormal(arena, seed + 5, (float) (1 / Math.sqrt(k)), count, k, n);
            return new Call(Tensor.randomNormal(arena, seed, 1f, batch, heads, n, d), Tensor.randomNormal(arena, seed + 1, 1f, batch, kvHeads, n, d),
                    Tensor.randomNormal(arena, seed + 2, 1f, batch, kvHeads, n, dv), e, f, Tensor.randomNormal(arena, seed + 3, 1f, batch, heads, n, dv), scale);
        }

        Linformer op() {
            Linformer op = Linformer.of(e, f);
            return Float.isNaN(scale) ? op : op.withScale(scale);
        }

        double oracleScale() { return Float.isNaN(scale) ? (float) (1 / Math.sqrt(q.size(3))) : scale; }
    }

    @Provide
    Arbitrary<Integer> headPairs() { return Arbitraries.of(0, 1, 2, 3); }

    private static final int[][] HEADS = {{1, 1}, {2, 1}, {2, 2}, {4, 2}};

    /**
     * The analytic float64 gradients are the derivative of Σ dOut ∘ (the float64 definition), E and F
     * included; with E and F one tensor, the derivative by the shared matrix is dE + dF.
     */
    @Property(tries = 12)
    void oracleGradientsAreTheDerivative(@ForAll @IntRange(min = 1, max = 5) int n, @ForAll @IntRange(min = 1, max = 5) int k, @ForAll("headPairs") int heads,
                                         @ForAll boolean shared, @ForAll boolean tied, @ForAll long seed) {
        if (k > n) return;
        try (Arena arena = Arena.ofShared()) {
            Call c = Call.of(arena, 1, HEADS[heads][0], HEADS[heads][1], n, k, 2, 2, shared, tied, 0.8f, seed);
            Result g = run(c.q(), c.keys(), c.values(), c.e(), c.f(), c.dOut(), 0.8, false);
            GradientOracles.Forward f = () -> forward(c.q(), c.keys(), c.values(), c.e(), c.f(), 0.8);
            GradientOracles.checkFiniteDifferences("dq", c.q(), g.inputs().dq(), f, c.dOut());
            GradientOracles.checkFiniteDifferences("dk", c.keys(), g.inputs().dk(), f, c.dOut());
            GradientOracles.checkFiniteDifferences("dv", c.values(), g.inputs().dv(), f, c.dOut());
            if (tied) {
                double[] sum = g.dE().clone();
                for (int i = 0; i < sum.length; i++) sum[i] += g.dF()[i];
                GradientOracles.checkFiniteDifferences("dE + dF of the tied projection", c.e(), sum, f, c.dOut());
            } else {
                GradientOracles.checkFiniteDifferences("dE", c.e(), g.dE(), f, c.dOut());
                GradientOracles.checkFiniteDifferences("dF", c.f(), g.dF(), f, c.dOut());
            }
        }
    }

    @Property(tries = 40)
    void matchesTheGradientOracle(@ForAll @IntRange(min = 1, max = 2) int batch, @ForAll("headPairs") int heads, @ForAll @IntRange(min = 1, max = 70) int n,
                                  @ForAll @IntRange(min = 1, max = 70) int k, @ForAll @IntRange(min = 1, max = 9) int d, @ForAll @IntRange(min = 1, max = 9) int dv,
                                  @ForAll boolean shared, @ForAll boolean tied, @ForAll boolean customScale, @ForAll long seed, @ForAll("backends") String backend) {
        if (k > n) k = n;
        try (Arena arena = Arena.ofShared()) {
            Call c = Call.of(arena, batch, HEADS[heads][0], HEADS[heads][1], n, k, d, dv, shared, tied, customScale ? 0.45f : Float.NaN, seed);
            Linformer op = c.op().on(Backend.named(backend));
            Tensor dq = filled(arena, c.q()), dk = filled(arena, c.keys()), dvT = filled(arena, c.values()), dE = filled(arena, c.e()), dF = filled(arena, c.f());
            op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dvT, dE, dF);
            Result oracle = run(c.q(), c.keys(), c.values(), c.e(), c.f(), c.dOut(), c.oracleScale(), false);
            Result naive = run(c.q(), c.keys(), c.values(), c.e(), c.f(), c.dOut(), c.oracleScale(), true);
            GradientOracles.assertWithinExactRule(op.toString(), dq, dk, dvT, oracle.inputs(), naive.inputs());
            assertThat(Tolerance.maxError(dE, oracle.dE())).as("dE error").isLessThanOrEqualTo(Tolerance.gradient(naive.dE(), oracle.dE()));
            assertThat(Tolerance.maxError(dF, oracle.dF())).as("dF error").isLessThanOrEqualTo(Tolerance.gradient(naive.dF(), oracle.dF()));
            // The seven-argument form is the same computation without dE and dF.
            Tensor dq2 = Tensor.zeros(arena, c.q().shape()), dk2 = Tensor.zeros(arena, c.keys().shape()), dv2 = Tensor.zeros(arena, c.values().shape());
            op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq2, dk2, dv2);
            assertThat(dq2.toArray()).isEqualTo(dq.toArray());
            assertThat(dk2.toArray()).isEqualTo(dk.toArray());
            assertThat(dv2.toArray()).isEqualTo(dvT.toArray());
        }
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Half-precision storage: q, keys, values and dOut in BF16 or F16 (the projections F32), dq, dk,
     * dv in F32 or that type, dE and dF in F32 (the projections' type). Against the float64 oracle
     * on the same rounded inputs, the rule above, plus one rounding of each gradient stored in a half
     * type ({@code Tolerance.stored}); the seven-argument form gives the same bits.
     */
    @Property(tries = 20)
    void halfPrecisionMatchesTheOracleOnRoundedInputs(@ForAll("headPairs") int heads, @ForAll @IntRange(min = 1, max = 50) int n,
                                                      @ForAll @IntRange(min = 1, max = 50) int k, @ForAll @IntRange(min = 1, max = 9) int d,
                                                      @ForAll @IntRange(min = 1, max = 9) int dv, @ForAll boolean shared, @ForAll long seed,
                                                      @ForAll("backends") String backend, @ForAll("halfTypes") ElementType type, @ForAll boolean halfGradients) {
        if (k > n) k = n;
        ElementType gradientType = halfGradients ? type : ElementType.F32;
        try (Arena arena = Arena.ofShared()) {
            Call wide = Call.of(arena, 1, HEADS[heads][0], HEADS[heads][1], n, k, d, dv, shared, false, Float.NaN, seed);
            Call c = new Call(wide.q().to(arena, type), wide.keys().to(arena, type), wide.values().to(arena, type), wide.e(), wide.f(),
                    wide.dOut().to(arena, type), Float.NaN);
            Linformer op = c.op().on(Backend.named(backend));
            Tensor dq = GradientOracles.gradient(arena, c.q(), gradientType), dk = GradientOracles.gradient(arena, c.keys(), gradientType);
            Tensor dvT = GradientOracles.gradient(arena, c.values(), gradientType), dE = filled(arena, c.e()), dF = filled(arena, c.f());
            op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dvT, dE, dF);
            Result oracle = run(c.q(), c.keys(), c.values(), c.e(), c.f(), c.dOut(), c.oracleScale(), false);
            Result naive = run(c.q(), c.keys(), c.values(), c.e(), c.f(), c.dOut(), c.oracleScale(), true);
            GradientOracles.assertWithinExactRule(op + " in " + type, dq, dk, dvT, oracle.inputs(), naive.inputs());
            assertThat(Tolerance.maxError(dE, oracle.dE())).as("dE error").isLessThanOrEqualTo(Tolerance.gradient(naive.dE(), oracle.dE()));
            assertThat(Tolerance.maxError(dF, oracle.dF())).as("dF error").isLessThanOrEqualTo(Tolerance.gradient(naive.dF(), oracle.dF()));
            Tensor dq2 = GradientOracles.gradient(arena, c.q(), gradientType), dk2 = GradientOracles.gradient(arena, c.keys(), gradientType);
            Tensor dv2 = GradientOracles.gradient(arena, c.values(), gradientType);
            op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq2, dk2, dv2);
            assertThat(dq2.toArray()).isEqualTo(dq.toArray());
            assertThat(dk2.toArray()).isEqualTo(dk.toArray());
            assertThat(dv2.toArray()).isEqualTo(dvT.toArray());
        }
    }

    /** The seeded JL Linformer of the registry: its live projections are what the gradients refer to. */
    @Property(tries = 10)
    void seededProjectionsMatchTheGradientOracle(@ForAll @IntRange(min = 1, max = 40) int n, @ForAll @IntRange(min = 1, max = 40) int k,
                                                 @ForAll boolean headwise, @ForAll long seed, @ForAll("backends") String backend) {
        if (k > n) k = n;
        try (Arena arena = Arena.ofShared()) {
            Linformer op = Linformer.random(n, k, 2, headwise ? Linformer.Sharing.HEADWISE : Linformer.Sharing.KEY_VALUE, seed).on(Backend.named(backend));
            assertThat(op.valueProjection()).isSameAs(op.keyProjection());
            Call c = new Call(Tensor.randomNormal(arena, seed, 1f, 1, 4, n, 5), Tensor.randomNormal(arena, seed + 1, 1f, 1, 2, n, 5),
                    Tensor.randomNormal(arena, seed + 2, 1f, 1, 2, n, 3), op.keyProjection(), op.valueProjection(),
                    Tensor.randomNormal(arena, seed + 3, 1f, 1, 4, n, 3), Float.NaN);
            Tensor dq = Tensor.zeros(arena, c.q().shape()), dk = Tensor.zeros(arena, c.keys().shape()), dv = Tensor.zeros(arena, c.values().shape());
            Tensor dE = Tensor.zeros(arena, c.e().shape()), dF = Tensor.zeros(arena, c.f().shape());
            op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dv, dE, dF);
            Result oracle = run(c.q(), c.keys(), c.values(), c.e(), c.f(), c.dOut(), c.oracleScale(), false);
            Result naive = run(c.q(), c.keys(), c.values(), c.e(), c.f(), c.dOut(), c.oracleScale(), true);
            GradientOracles.assertWithinExactRule(op.toString(), dq, dk, dv, oracle.inputs(), naive.inputs());
            assertThat(Tolerance.maxError(dE, oracle.dE())).isLessThanOrEqualTo(Tolerance.gradient(naive.dE(), oracle.dE()));
            assertThat(Tolerance.maxError(dF, oracle.dF())).isLessThanOrEqualTo(Tolerance.gradient(naive.dF(), oracle.dF()));
        }
    }

    @Property(tries = 20)
    void gradientsAreBitIdenticalForAnyThreadCount(@ForAll("headPairs") int heads, @ForAll @IntRange(min = 1, max = 150) int n, @ForAll @IntRange(min = 1, max = 150) int k,
                                                   @ForAll boolean shared, @ForAll long seed, @ForAll("backends") String backend) {
        if (k > n) k = n;
        try (Arena arena = Arena.ofShared()) {
            Call c = Call.of(arena, 2, HEADS[heads][0], HEADS[heads][1], n, k, 7, 5, shared, false, Float.NaN, seed);
            Backend be = Backend.named(backend);
            float[][] expected = null;
            for (int threads : new int[] {1, 2, 3}) {
                Tensor dq = Tensor.zeros(arena, c.q().shape()), dk = Tensor.zeros(arena, c.keys().shape()), dv = Tensor.zeros(arena, c.values().shape());
                Tensor dE = Tensor.zeros(arena, c.e().shape()), dF = Tensor.zeros(arena, c.f().shape());
                c.op().on(be.withThreads(threads)).backward(c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dv, dE, dF);
                float[][] got = {dq.toArray(), dk.toArray(), dv.toArray(), dE.toArray(), dF.toArray()};
                if (expected == null) expected = got;
                else for (int t = 0; t < got.length; t++) assertThat(got[t]).as("gradient %d, %d threads vs 1", t, threads).containsExactly(expected[t]);
            }
        }
    }

    @Example
    void badInputsNameTheParameter() {
        try (Arena arena = Arena.ofShared()) {
            Call c = Call.of(arena, 1, 2, 1, 8, 4, 4, 3, false, false, Float.NaN, 1);
            Linformer op = c.op();
            Tensor dq = Tensor.zeros(arena, c.q().shape()), dk = Tensor.zeros(arena, c.keys().shape()), dv = Tensor.zeros(arena, c.values().shape());
            Tensor dE = Tensor.zeros(arena, c.e().shape()), dF = Tensor.zeros(arena, c.f().shape());
            GradientOracles.assertRejectsBadGradientArguments(arena, op, c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dv);
            assertThatThrownBy(() -> op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dv, null, dF)).isInstanceOf(NullPointerException.class).hasMessage("dE");
            assertThatThrownBy(() -> op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dv, dE, Tensor.zeros(arena, 1, 4, 7)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dF shape [1, 4, 7] must be [1, 4, 8]");
            assertThatThrownBy(() -> op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dv, c.e(), dF))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dE shares memory with e (the key projection)");
            assertThatThrownBy(() -> op.backward(c.q(), c.keys(), c.values(), c.dOut(), dq, dk, dv, dE, dE))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dE shares memory with dF");
            Tensor shortKeys = Tensor.zeros(arena, 1, 1, 7, 4), shortValues = Tensor.zeros(arena, 1, 1, 7, 3);
            assertThatThrownBy(() -> op.backward(Tensor.zeros(arena, 1, 2, 7, 4), shortKeys, shortValues, Tensor.zeros(arena, 1, 2, 7, 3),
                    Tensor.zeros(arena, 1, 2, 7, 4), Tensor.zeros(arena, 1, 1, 7, 4), Tensor.zeros(arena, 1, 1, 7, 3)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("projects sequences of n=8, kv length is 7");
        }
    }

    private static Tensor filled(Arena arena, Tensor like) {
        Tensor t = Tensor.zeros(arena, like.shape());
        t.fill(Float.NaN);   // overwritten, never read
        return t;
    }
}
