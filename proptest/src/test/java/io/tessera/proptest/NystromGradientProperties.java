package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.reference.Tolerance;
import io.tessera.variant.lowrank.Nystromformer;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Assume;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Nyström attention's backward pass against analytic float64 gradients of the computation its
 * forward runs (segment-mean landmarks, three row softmaxes, the iterative pseudo-inverse with its
 * initial scaling and early stop, F·Z·(B·V)), themselves checked against central differences; the
 * oracle runs the pseudo-inverse steps the fp32 forward ran for each head (its stop rule reads fp32
 * residuals near rounding level, which a float64 run need not reproduce); the
 * EXACT gradient rule (10× the naive fp32 gradients' error + the floor: the pseudo-inverse amplifies
 * rounding by A's condition number in every fp32 schedule alike); thread-count bit identity; bad inputs.
 */
class NystromGradientProperties {

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    private static double round(boolean float32, double x) { return float32 ? (float) x : x; }

    private static double[][] mul(double[][] a, boolean ta, double[][] b, boolean tb, double alpha, boolean f32) {
        double[][] c = GradientOracles.product(a, ta, b, tb, f32);
        if (alpha != 1) for (double[] row : c) for (int j = 0; j < row.length; j++) row[j] = round(f32, row[j] * alpha);
        return c;
    }

    private static double[][] identityMinus(double c, double[][] x, boolean f32) {
        double[][] r = new double[x.length][x.length];
        for (int i = 0; i < x.length; i++) for (int j = 0; j < x.length; j++) r[i][j] = round(f32, (i == j ? c : 0) - x[i][j]);
        return r;
    }

    private static void addInto(double[][] dst, double[][] x, double alpha, boolean f32) {
        for (int i = 0; i < dst.length; i++) for (int j = 0; j < dst[0].length; j++) dst[i][j] = round(f32, dst[i][j] + alpha * x[i][j]);
    }

    private static double[][] means(double[][] x, int m, boolean f32) {
        int n = x.length, d = x[0].length;
        double[][] r = new double[m][d];
        for (int s = 0; s < m; s++) {
            int from = (int) ((long) s * n / m), to = (int) ((long) (s + 1) * n / m);
            for (int c = 0; c < d; c++) {
                double sum = 0;
                for (int i = from; i < to; i++) sum += x[i][c];
                r[s][c] = round(f32, sum / (to - from));
            }
        }
        return r;
    }

    private static void meansBackward(double[][] dMeans, double[][] dx, boolean f32) {
        int n = dx.length, m = dMeans.length;
        for (int s = 0; s < m; s++) {
            int from = (int) ((long) s * n / m), to = (int) ((long) (s + 1) * n / m);
            for (int i = from; i < to; i++) for (int c = 0; c < dx[0].length; c++) dx[i][c] = round(f32, dx[i][c] + dMeans[s][c] / (to - from));
        }
    }

    private static double[][] softmaxRows(double[][] s, boolean f32) {
        double[][] p = new double[s.length][];
        for (int i = 0; i < s.length; i++) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (double x : s[i]) max = Math.max(max, x);
            p[i] = new double[s[i].length];
            for (int j = 0; j < s[i].length; j++) { p[i][j] = round(f32, Math.exp(round(f32, s[i][j] - max))); sum = round(f32, sum + p[i][j]); }
            for (int j = 0; j < s[i].length; j++) p[i][j] = round(f32, p[i][j] / sum);
        }
        return p;
    }

    private static double[][] softmaxBackward(double[][] p, double[][] g, boolean f32) {
        double[][] r = new double[p.length][p[0].length];
        for (int i = 0; i < p.length; i++) {
            double dot = 0;
            for (int j = 0; j < p[0].length; j++) dot = round(f32, dot + round(f32, g[i][j] * p[i][j]));
            for (int j = 0; j < p[0].length; j++) r[i][j] = round(f32, p[i][j] * round(f32, g[i][j] - dot));
        }
        return r;
    }

    /** {dq, dk, dv} for loss gradient dOut; with dOut null, the forward output in dq's place. */
    static GradientOracles.Gradients run(int m, int iterations, double scale, Tensor q, Tensor k, Tensor v, Tensor dOut, boolean f32) {
        return run(m, iterations, scale, q, k, v, dOut, f32, null);
    }

    /**
     * As above; {@code steps} (per batch·head, or null) forces the number of pseudo-inverse steps
     * instead of the stopping rule: the forward stops early when its fp32 residual stops falling,
     * which a float64 run of the same rule need not reproduce near rounding level.
     */
    static GradientOracles.Gradients run(int m, int iterations, double scale, Tensor q, Tensor k, Tensor v, Tensor dOut, boolean f32, int[] forcedSteps) {
        return run(m, iterations, scale, q, k, v, dOut, f32, forcedSteps, null);
    }

    /** As above, the steps each head ran (per batch·head) written to {@code stepsRun} when it is not null. */
    static GradientOracles.Gradients run(int m, int iterations, double scale, Tensor q, Tensor k, Tensor v, Tensor dOut, boolean f32, int[] forcedSteps,
                                         int[] stepsRun) {
        long[] qs = q.shape(), ks = k.shape(), vs = v.shape();
        int heads = (int) qs[1], group = heads / (int) ks[1];
        long[] outShape = {qs[0], qs[1], qs[2], vs[3]};
        float[] qa = q.toArray(), ka = k.toArray(), va = v.toArray(), ga = dOut == null ? null : dOut.toArray();
        double[] out = new double[(int) (qs[0] * qs[1] * qs[2] * vs[3])], dq = new double[qa.length], dk = new double[ka.length], dv = new double[va.length];
        for (int b = 0; b < qs[0]; b++) for (int h = 0; h < heads; h++) {
            int hk = h / group;
            double[][] qh = GradientOracles.head(qa, qs, b, h), kh = GradientOracles.head(ka, ks, b, hk), vh = GradientOracles.head(va, vs, b, hk);
            double[][] qL = means(qh, m, f32), kL = means(kh, m, f32);
            double[][] f = softmaxRows(mul(qh, false, kL, true, scale, f32), f32), a = softmaxRows(mul(qL, false, kL, true, scale, f32), f32);
            double[][] bm = softmaxRows(mul(qL, false, kh, true, scale, f32), f32);
            // The pseudo-inverse iteration with the forward's initial scaling and stopping rule.
            double maxRow = -1, maxCol = -1;
            int row = 0, col = 0;
            for (int r = 0; r < m; r++) {
                double rs = 0, cs = 0;
                for (int c = 0; c < m; c++) { rs += Math.abs(a[r][c]); cs += Math.abs(a[c][r]); }
                if (rs > maxRow) { maxRow = rs; row = r; }
                if (cs > maxCol) { maxCol = cs; col = r; }
            }
            double c0 = round(f32, 1 / (maxRow * maxCol));
            double[][][] zs = new double[iterations + 1][][];
            double[][] z = new double[m][m];
            for (int i = 0; i < m; i++) for (int j = 0; j < m; j++) z[i][j] = round(f32, a[j][i] * c0);
            double previous = Double.POSITIVE_INFINITY;
            int steps;
            for (int it = 0; ; it++) {
                zs[it] = z;
                double[][] x = mul(a, false, z, false, 1, f32), aza = mul(x, false, a, false, 1, f32);
                double residual = 0;
                for (int i = 0; i < m; i++) for (int j = 0; j < m; j++) residual += (aza[i][j] - a[i][j]) * (aza[i][j] - a[i][j]);
                residual = Math.sqrt(residual);
                int forced = forcedSteps == null ? -1 : forcedSteps[b * heads + h];
                if (forced < 0 && !(residual < previous)) { steps = Math.max(0, it - 1); break; }
                previous = residual;
                if (it == (forced < 0 ? iterations : forced)) { steps = it; break; }
                double[][] p3 = identityMinus(13, mul(x, false, identityMinus(15, mul(x, false, identityMinus(7, x, f32), false, 1, f32), f32), false, 1, f32), f32);
                z = mul(z, false, p3, false, 0.25, f32);
            }
            if (stepsRun != null) stepsRun[b * heads + h] = steps;
            z = zs[steps];
            double[][] bv = mul(bm, false, vh, false, 1, f32), zbv = mul(z, false, bv, false, 1, f32);
            if (ga == null) {
                GradientOracles.addHead(out, outShape, b, h, mul(f, false, zbv, false, 1, f32));
                continue;
            }
            double[][] g = GradientOracles.head(ga, outShape, b, h);
            double[][] dF = mul(g, false, zbv, true, 1, f32), dZbv = mul(f, true, g, false, 1, f32);
            double[][] gz = mul(dZbv, false, bv, true, 1, f32), dBv = mul(z, true, dZbv, false, 1, f32);
            double[][] dB = mul(dBv, false, vh, true, 1, f32);
            GradientOracles.addHead(dv, vs, b, hk, mul(bm, true, dBv, false, 1, f32));
            double[][] dA = new double[m][m];
            for (int t = steps - 1; t >= 0; t--) {
                double[][] zt = zs[t], x = mul(a, false, zt, false, 1, f32), p1 = identityMinus(7, x, f32);
                double[][] p2 = identityMinus(15, mul(x, false, p1, false, 1, f32), f32), p3 = identityMinus(13, mul(x, false, p2, false, 1, f32), f32);
                double[][] dZ = mul(gz, false, p3, true, 0.25, f32), dP3 = mul(zt, true, gz, false, 0.25, f32);
                double[][] dX = mul(dP3, false, p2, true, -1, f32), dP2 = mul(x, true, dP3, false, -1, f32);
                addInto(dX, mul(dP2, false, p1, true, 1, f32), -1, f32);
                double[][] dP1 = mul(x, true, dP2, false, -1, f32);
                addInto(dX, dP1, -1, f32);
                addInto(dA, mul(dX, false, zt, true, 1, f32), 1, f32);
                addInto(dZ, mul(a, true, dX, false, 1, f32), 1, f32);
                gz = dZ;
            }
            double gamma = 0;
            for (int i = 0; i < m; i++) for (int j = 0; j < m; j++) gamma += gz[i][j] * a[j][i];
            double c = 1 / (maxRow * maxCol);
            for (int i = 0; i < m; i++) for (int j = 0; j < m; j++) {
                double add = c * gz[j][i];
                if (i == row) add -= c / maxRow * gamma;
                if (j == col) add -= c / maxCol * gamma;
                dA[i][j] = round(f32, dA[i][j] + add);
            }
            double[][] dSf = softmaxBackward(f, dF, f32), dSa = softmaxBackward(a, dA, f32), dSb = softmaxBackward(bm, dB, f32);
            double[][] dqh = mul(dSf, false, kL, false, scale, f32), dkh = mul(dSb, true, qL, false, scale, f32);
            double[][] dkL = mul(dSf, true, qh, false, scale, f32), dqL = mul(dSa, false, kL, false, scale, f32);
            addInto(dkL, mul(dSa, true, qL, false, scale, f32), 1, f32);
            addInto(dqL, mul(dSb, false, kh, false, scale, f32), 1, f32);
            meansBackward(dqL, dqh, f32);
            meansBackward(dkL, dkh, f32);
            GradientOracles.addHead(dq, qs, b, h, dqh);
            GradientOracles.addHead(dk, ks, b, hk, dkh);
        }
        return ga == null ? new GradientOracles.Gradients(out, null, null) : new GradientOracles.Gradients(dq, dk, dv);
    }

    private static Tensor input(Arena arena, long seed, float std, long... shape) { return Tensor.randomNormal(arena, seed, std, shape); }

    @Property(tries = 12)
    void oracleGradientsAreTheDerivative(@ForAll @IntRange(min = 1, max = 5) int n, @ForAll @IntRange(min = 1, max = 3) int m,
                                         @ForAll @IntRange(min = 1, max = 3) int iterations, @ForAll boolean grouped, @ForAll long seed) {
        checkOracleDerivative(n, m, iterations, grouped, seed);
    }

    /**
     * The sample the property once failed on (n = 3, m = 3, 1 iteration, grouped, seed 448): head 1's
     * two largest column sums of A, 1.15175 and 1.15101, swap places under the finite differences'
     * steps, so the largest, which scales the pseudo-inverse's start, has a kink there that the
     * differences straddle. The property now leaves out samples that close to a tie.
     */
    @Example
    void aNearTieOfColumnSumsIsLeftOut() {
        try (Arena arena = Arena.ofShared()) {
            assertThat(smallestColumnSumGap(arena, 3, 3, true, 448)).isLessThan(COLUMN_SUM_MARGIN);
        }
    }

    /**
     * How far apart the largest two column sums of A must be, in every head, for the oracle's
     * derivative to be checked: a finite-difference step (at most 2⁻¹⁰ on one input) moves them by
     * a few 1e-3 at these sizes, and where the largest changes places the scale of the
     * pseudo-inverse's start, 1/(‖A‖₁‖A‖∞), has a kink. (The row sums of A are all 1, a softmax's:
     * ties there change nothing, the softmax's backward pass cancels a row's common term.)
     */
    private static final double COLUMN_SUM_MARGIN = 1e-2;

    /** The smallest gap, over the heads, between the largest and second-largest column sum of A = softmax(scale·Q̃K̃ᵀ); infinite for m = 1. */
    private static double smallestColumnSumGap(Arena arena, int n, int m, boolean grouped, long seed) {
        int heads = grouped ? 2 : 1;
        Tensor q = input(arena, seed, 1f, 1, heads, n, 2), k = input(arena, seed + 1, 1f, 1, 1, n, 2);
        float[] qa = q.toArray();
        double[][] kL = means(GradientOracles.head(k.toArray(), k.shape(), 0, 0), m, false);
        double gap = Double.POSITIVE_INFINITY;
        for (int h = 0; h < heads; h++) {
            double[][] qL = means(GradientOracles.head(qa, q.shape(), 0, h), m, false);
            double[][] a = softmaxRows(mul(qL, false, kL, true, 0.8, false), false);
            double first = Double.NEGATIVE_INFINITY, second = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < m; c++) {
                double sum = 0;
                for (int r = 0; r < m; r++) sum += Math.abs(a[r][c]);
                if (sum > first) { second = first; first = sum; }
                else if (sum > second) second = sum;
            }
            gap = Math.min(gap, first - second);
        }
        return gap;
    }

    private static void checkOracleDerivative(int n, int m, int iterations, boolean grouped, long seed) {
        if (m > n) return;
        try (Arena arena = Arena.ofShared()) {
            Assume.that(smallestColumnSumGap(arena, n, m, grouped, seed) > COLUMN_SUM_MARGIN);
            int heads = grouped ? 2 : 1;
            Tensor q = input(arena, seed, 1f, 1, heads, n, 2), k = input(arena, seed + 1, 1f, 1, 1, n, 2), v = input(arena, seed + 2, 1f, 1, 1, n, 2);
            Tensor dOut = input(arena, seed + 3, 1f, 1, heads, n, 2);
            // The derivative of the function with the steps the stopping rule chose here: perturbed
            // inputs may stop one step earlier or later, a jump the finite differences would see.
            int[] steps = new int[heads];
            GradientOracles.Gradients g = run(m, iterations, 0.8, q, k, v, dOut, false, null, steps);
            GradientOracles.Forward f = () -> run(m, iterations, 0.8, q, k, v, null, false, steps).dq();
            GradientOracles.checkFiniteDifferences("dq", q, g.dq(), f, dOut);
            GradientOracles.checkFiniteDifferences("dk", k, g.dk(), f, dOut);
            GradientOracles.checkFiniteDifferences("dv", v, g.dv(), f, dOut);
        }
    }

    @Property(tries = 40)
    void matchesTheGradientOracle(@ForAll("cases") AttentionCase c, @ForAll @IntRange(min = 1, max = 8) int m, @ForAll @IntRange(min = 1, max = 4) int iterations,
                                  @ForAll boolean customScale, @ForAll("backends") String backend) {
        check(c, m, iterations, customScale, backend);
    }

    /**
     * Nearly uniform landmarks (means of 18 and 30 rows) make A nearly singular: at m = 2 the SIMD
     * forward's fp32 residual stops falling after one step, the scalar one's and a float64 run's after
     * two (found by the property); each is differentiated as it ran.
     */
    @Example
    void aForwardThatStoppedEarlyIsDifferentiatedAsItRan() {
        check(new AttentionCase(1, 1, 1, 36, 60, 8, 1, -168), 2, 2, false, "simd");
        check(new AttentionCase(1, 1, 1, 36, 60, 8, 1, -168), 2, 2, false, "scalar");
    }

    private static void check(AttentionCase c, int m, int iterations, boolean customScale, String backend) {
        check(c, m, iterations, customScale, backend, ElementType.F32, ElementType.F32);
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Half-precision storage: q, k, v and dOut in BF16 or F16, the gradients in F32 or that type.
     * Against the float64 oracle on the same rounded inputs (the pseudo-inverse steps the forward ran
     * on them), the rule above, plus one rounding of each gradient stored in a half type
     * ({@code Tolerance.stored}).
     */
    @Property(tries = 20)
    void halfPrecisionMatchesTheOracleOnRoundedInputs(@ForAll("cases") AttentionCase c, @ForAll @IntRange(min = 1, max = 8) int m,
                                                      @ForAll @IntRange(min = 1, max = 4) int iterations, @ForAll("backends") String backend,
                                                      @ForAll("halfTypes") ElementType type, @ForAll boolean halfGradients) {
        check(c, m, iterations, false, backend, type, halfGradients ? type : ElementType.F32);
    }

    private static void check(AttentionCase c, int m, int iterations, boolean customScale, String backend, ElementType inputType, ElementType gradientType) {
        if (m > Math.min(c.qLen(), c.kvLen())) m = Math.min(c.qLen(), c.kvLen());
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena).to(arena, inputType), k = c.k(arena).to(arena, inputType), v = c.v(arena).to(arena, inputType);
            Tensor dOut = GradientOracles.dOut(arena, c).to(arena, inputType);
            Nystromformer op = Nystromformer.withLandmarks(m).iterations(iterations).on(Backend.named(backend));
            if (customScale) op = op.withScale(0.3f);
            double scale = customScale ? 0.3f : (float) (1 / Math.sqrt(c.headDim()));
            // Overwritten, never read (NaN).
            Tensor dq = GradientOracles.gradient(arena, q, gradientType), dk = GradientOracles.gradient(arena, k, gradientType), dv = GradientOracles.gradient(arena, v, gradientType);
            op.backward(q, k, v, dOut, dq, dk, dv);
            int[] steps = op.pseudoInverseSteps(q, k, v);
            for (int t : steps) assertThat(t).as("pseudo-inverse steps").isBetween(0, iterations);
            String what = "nystrom m=" + m + " iterations=" + iterations + " steps=" + java.util.Arrays.toString(steps);
            // The forward ran that computation: its output is the oracle's for those steps (so the
            // reported count is checked, not trusted), under the same rule as the gradients.
            double[] oracleOut = run(m, iterations, scale, q, k, v, null, false, steps).dq(), naiveOut = run(m, iterations, scale, q, k, v, null, true, steps).dq();
            GradientOracles.assertStoredWithin("forward output of " + what, op.forward(arena, q, k, v), oracleOut, Tolerance.gradient(naiveOut, oracleOut));
            GradientOracles.assertWithinExactRule(what, dq, dk, dv, run(m, iterations, scale, q, k, v, dOut, false, steps), run(m, iterations, scale, q, k, v, dOut, true, steps));
        }
    }

    /**
     * Outputs of 1 and 2 pseudo-inverse steps that differ by less than float32 rounding while their
     * gradients differ by 1.6e-5 (found by the property with customScale): the steps come from the
     * operator ({@link Nystromformer#pseudoInverseSteps}), not from the output nearest an oracle's.
     */
    @Example
    void stepsAreTheOperatorsNotTheNearestOutput() {
        for (String backend : new String[] {"simd", "scalar"}) check(new AttentionCase(1, 1, 1, 50, 2, 7, 2, -2120), 2, 2, true, backend);
    }

    /** pseudoInverseSteps checks its arguments by name. */
    @Example
    void stepsRejectBadInputs() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 8, 4), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, 8, 4), v = Tensor.randomNormal(arena, 3, 1f, 1, 1, 8, 3);
            assertThatThrownBy(() -> Nystromformer.withLandmarks(4).pseudoInverseSteps(null, k, v)).hasMessage("q");
            assertThatThrownBy(() -> Nystromformer.withLandmarks(9).pseudoInverseSteps(q, k, v)).hasMessageContaining("landmarks m=9 exceeds the sequence");
            assertThat(Nystromformer.withLandmarks(4).iterations(3).pseudoInverseSteps(q, k, v)).hasSize(2);
        }
    }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(60, 60, 8); }

    @Property(tries = 15)
    void gradientsAreBitIdenticalForAnyThreadCount(@ForAll("cases") AttentionCase c, @ForAll @IntRange(min = 1, max = 8) int m, @ForAll("backends") String backend) {
        if (m > Math.min(c.qLen(), c.kvLen())) m = Math.min(c.qLen(), c.kvLen());
        try (Arena arena = Arena.ofShared()) {
            GradientOracles.assertBitIdenticalForThreads(arena, Nystromformer.withLandmarks(m), Backend.named(backend), c.q(arena), c.k(arena), c.v(arena), GradientOracles.dOut(arena, c));
        }
    }

    @Example
    void badInputsNameTheParameter() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 8, 4), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, 8, 4), v = Tensor.randomNormal(arena, 3, 1f, 1, 1, 8, 3);
            Tensor dOut = Tensor.zeros(arena, 1, 2, 8, 3), dq = Tensor.zeros(arena, 1, 2, 8, 4), dk = Tensor.zeros(arena, 1, 1, 8, 4), dv = Tensor.zeros(arena, 1, 1, 8, 3);
            GradientOracles.assertRejectsBadGradientArguments(arena, Nystromformer.withLandmarks(4), q, k, v, dOut, dq, dk, dv);
            assertThatThrownBy(() -> Nystromformer.withLandmarks(9).backward(q, k, v, dOut, dq, dk, dv)).hasMessageContaining("landmarks m=9 exceeds the sequence");
        }
    }
}
