package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import java.lang.foreign.Arena;

/**
 * What the variants' gradient properties share: float64 gradients checked against central
 * differences, the EXACT gradient rule, thread-count bit identity and the argument checks of
 * {@link AttentionOperator.Differentiable#backward}.
 */
final class GradientOracles {
    private GradientOracles() {}

    /** Gradients with respect to q, k, v (row-major, shaped like them). */
    record Gradients(double[] dq, double[] dk, double[] dv) {}

    /** A float64 forward pass over the current contents of its input tensors (row-major output). */
    @FunctionalInterface
    interface Forward {
        double[] output();
    }

    static Tensor dOut(Arena arena, AttentionCase c) {
        return Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
    }

    /**
     * Central differences of L = Σ dOut ∘ forward in float64, on float32 inputs (steps 2⁻¹⁰ and
     * 2⁻¹¹, exact in float32 for |x| < 2¹³, so the step taken is the one divided by), combined by one
     * Richardson step, (4·D(h/2) − D(h))/3, which cancels the h²·L'''/6 term of each: they agree
     * with the analytic gradient to O(h⁴) + O(ε/h). The h² term alone was not small enough for
     * Nyström, whose pseudo-inverse is a polynomial of degree 7^iterations in its input (a seed with
     * n = 3, m = 2, 2 iterations missed the 1e-3 bound by 7 %).
     */
    static void checkFiniteDifferences(String what, Tensor x, double[] analytic, Forward forward, Tensor dOut) {
        float[] values = x.toArray(), g = dOut.toArray();
        for (int i = 0; i < values.length; i++) {
            long[] index = unravel(x.shape(), i);
            double coarse = centralDifference(x, index, values[i], 0x1p-10f, forward, g);
            double fine = centralDifference(x, index, values[i], 0x1p-11f, forward, g);
            double numeric = (4 * fine - coarse) / 3;
            assertThat(analytic[i]).as("%s element %d", what, i).isCloseTo(numeric, org.assertj.core.data.Offset.offset(1e-3 * (1 + Math.abs(numeric))));
        }
    }

    /** (L(x + h) − L(x − h)) / 2h at one element, which is left as it was. */
    private static double centralDifference(Tensor x, long[] index, float original, float h, Forward forward, float[] g) {
        float plus = original + h, minus = original - h;
        x.set(plus, index);
        double lossPlus = loss(forward.output(), g);
        x.set(minus, index);
        double lossMinus = loss(forward.output(), g);
        x.set(original, index);
        return (lossPlus - lossMinus) / ((double) plus - minus);
    }

    private static double loss(double[] out, float[] g) {
        double sum = 0;
        for (int i = 0; i < g.length; i++) sum += g[i] * out[i];
        return sum;
    }

    static long[] unravel(long[] shape, long flat) {
        long[] index = new long[shape.length];
        for (int d = shape.length - 1; d >= 0; d--) {
            index[d] = flat % shape[d];
            flat /= shape[d];
        }
        return index;
    }

    /**
     * Each gradient within 10× the naive fp32 gradient's error against float64, + the floor relative
     * to its size; a gradient stored in a half type also within its one rounding ({@link #assertStoredWithin}).
     */
    static void assertWithinExactRule(String what, Tensor dq, Tensor dk, Tensor dv, Gradients oracle, Gradients naive) {
        assertStoredWithin("dq error of " + what, dq, oracle.dq(), Tolerance.gradient(naive.dq(), oracle.dq()));
        assertStoredWithin("dk error of " + what, dk, oracle.dk(), Tolerance.gradient(naive.dk(), oracle.dk()));
        assertStoredWithin("dv error of " + what, dv, oracle.dv(), Tolerance.gradient(naive.dv(), oracle.dv()));
    }

    /**
     * {@code got} within {@code tolerance} of the float64 {@code ref} when it is F32; when it is
     * stored in a half type, each element within {@link Tolerance#stored}: the float32 result obeys
     * {@code tolerance} and rounding it once to the type moves it by at most its unit roundoff times
     * its magnitude (≤ |ref| + tolerance), or half the type's subnormal spacing.
     */
    static void assertStoredWithin(String what, Tensor got, double[] ref, double tolerance) {
        if (got.type() == ElementType.F32) {
            assertThat(Tolerance.maxError(got, ref)).as(what).isLessThanOrEqualTo(tolerance);
            return;
        }
        float[] values = got.contiguous(Arena.ofAuto()).toArray();
        assertThat(values.length).isEqualTo(ref.length);
        for (int i = 0; i < values.length; i++) {
            double error = Double.isNaN(values[i]) ? Double.POSITIVE_INFINITY : Math.abs(values[i] - ref[i]);
            assertThat(error).as("%s, element %d stored in %s", what, i, got.type()).isLessThanOrEqualTo(Tolerance.stored(got.type(), tolerance, ref[i]));
        }
    }

    /** A gradient tensor shaped like {@code like}, stored in {@code type}, filled with NaN (overwritten, never read). */
    static Tensor gradient(Arena arena, Tensor like, ElementType type) {
        Tensor g = Tensor.zeros(arena, type, like.shape());
        g.fill(Float.NaN);
        return g;
    }

    /**
     * The EXACT rule with an a-priori term: each gradient within max(10× the naive fp32 error,
     * gamma·max Σ|terms|) + the floor, {@code absolute} holding the sums of the terms' magnitudes.
     */
    static void assertWithinExactRule(String what, Tensor dq, Tensor dk, Tensor dv, Gradients oracle, Gradients naive, Gradients absolute, double gamma) {
        String[] names = {"dq", "dk", "dv"};
        Tensor[] got = {dq, dk, dv};
        double[][] ref = {oracle.dq(), oracle.dk(), oracle.dv()}, naiveValues = {naive.dq(), naive.dk(), naive.dv()}, abs = {absolute.dq(), absolute.dk(), absolute.dv()};
        for (int t = 0; t < 3; t++) {
            double largest = 0;
            for (double x : abs[t]) largest = Math.max(largest, Math.abs(x));
            double tolerance = Math.max(Tolerance.gradient(naiveValues[t], ref[t]), gamma * largest + Tolerance.gradient(ref[t], ref[t]));
            assertStoredWithin(names[t] + " error of " + what, got[t], ref[t], tolerance);
        }
    }

    /** The same gradient bits for 1, 2 and 3 threads of {@code backend}. */
    static void assertBitIdenticalForThreads(Arena arena, AttentionOperator.Differentiable op, Backend backend, Tensor q, Tensor k, Tensor v, Tensor dOut) {
        float[][] expected = null;
        for (int threads : new int[] {1, 2, 3}) {
            Tensor dq = Tensor.zeros(arena, q.shape()), dk = Tensor.zeros(arena, k.shape()), dv = Tensor.zeros(arena, v.shape());
            ((AttentionOperator.Differentiable) op.on(backend.withThreads(threads))).backward(q, k, v, dOut, dq, dk, dv);
            float[][] got = {dq.toArray(), dk.toArray(), dv.toArray()};
            if (expected == null) expected = got;
            else for (int t = 0; t < 3; t++) assertThat(got[t]).as("%s gradient %d, %d threads vs 1", op, t, threads).containsExactly(expected[t]);
        }
    }

    /** Nulls, shapes, strides and aliasing of a backward call are rejected by name before any work. */
    static void assertRejectsBadGradientArguments(Arena arena, AttentionOperator.Differentiable op, Tensor q, Tensor k, Tensor v, Tensor dOut,
                                                  Tensor dq, Tensor dk, Tensor dv) {
        assertThatThrownBy(() -> op.backward(q, k, v, null, dq, dk, dv)).isInstanceOf(NullPointerException.class).hasMessage("dOut");
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, null, dk, dv)).isInstanceOf(NullPointerException.class).hasMessage("dq");
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, dq, dk, null)).isInstanceOf(NullPointerException.class).hasMessageStartingWith("dv");
        long[] bad = dOut.shape();
        bad[3] += 1;
        assertThatThrownBy(() -> op.backward(q, k, v, Tensor.zeros(arena, bad), dq, dk, dv))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dOut shape");
        long[] badK = dk.shape();
        badK[2] += 1;
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, dq, Tensor.zeros(arena, badK), dv))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("shape");
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, q, dk, dv)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dq shares memory with q");
        long kCount = dk.elementCount(), vCount = dv.elementCount();
        Tensor both = Tensor.zeros(arena, Math.max(kCount, vCount));
        Tensor dkView = both.slice(0, 0, kCount).reshape(dk.shape()), dvView = both.slice(0, 0, vCount).reshape(dv.shape());
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, dq, dkView, dvView))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("shares memory with");
        Tensor wide = Tensor.zeros(arena, q.size(0), q.size(1), q.size(2), 2 * q.size(3));
        Tensor strided = wide.reshape(q.size(0), q.size(1), q.size(2), q.size(3), 2).select(4, 0);
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, strided, dk, dv))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dq must have a unit-stride last dimension");
    }

    private static double round(boolean float32, double x) { return float32 ? (float) x : x; }

    /** Rows × columns of head (b, h) of a rank-4 tensor's row-major values. */
    static double[][] head(float[] values, long[] shape, int b, int h) {
        int rows = (int) shape[2], cols = (int) shape[3];
        double[][] m = new double[rows][cols];
        int base = (int) (((long) b * shape[1] + h) * rows * cols);
        for (int i = 0; i < rows; i++) for (int c = 0; c < cols; c++) m[i][c] = values[base + i * cols + c];
        return m;
    }

    /** Writes (adds) a head matrix into a row-major rank-4 array. */
    static void addHead(double[] target, long[] shape, int b, int h, double[][] m) {
        int rows = (int) shape[2], cols = (int) shape[3];
        int base = (int) (((long) b * shape[1] + h) * rows * cols);
        for (int i = 0; i < rows; i++) for (int c = 0; c < cols; c++) target[base + i * cols + c] += m[i][c];
    }

    /**
     * Softmax attention of one head, {@code softmax(scale·q·kᵀ + mask)·v} ({@code allowed} null: no
     * mask), in float64 or naively in fp32 (every operation rounded); rows that attend nothing give 0.
     */
    static double[][] attention(double[][] q, double[][] k, double[][] v, boolean[][] allowed, double scale, boolean float32) {
        int n = q.length, dv = v.length == 0 ? 0 : v[0].length;
        double[][] out = new double[n][dv];
        for (int i = 0; i < n; i++) {
            double[] p = probabilities(q, k, i, allowed, scale, float32);
            if (p == null) continue;
            for (int j = 0; j < k.length; j++) {
                if (p[j] == 0) continue;
                for (int c = 0; c < dv; c++) out[i][c] = round(float32, out[i][c] + round(float32, p[j] * v[j][c]));
            }
        }
        return out;
    }

    /** Row i's softmax weights, or null when the row attends nothing. */
    private static double[] probabilities(double[][] q, double[][] k, int i, boolean[][] allowed, double scale, boolean float32) {
        int m = k.length, d = q[i].length;
        double[] p = new double[m];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < m; j++) {
            if (allowed != null && !allowed[i][j]) { p[j] = Double.NEGATIVE_INFINITY; continue; }
            double dot = 0;
            for (int c = 0; c < d; c++) dot = round(float32, dot + round(float32, q[i][c] * k[j][c]));
            p[j] = round(float32, dot * scale);
            max = Math.max(max, p[j]);
        }
        if (max == Double.NEGATIVE_INFINITY) return null;
        double sum = 0;
        for (int j = 0; j < m; j++) {
            p[j] = p[j] == Double.NEGATIVE_INFINITY ? 0 : round(float32, Math.exp(p[j] - max));
            sum = round(float32, sum + p[j]);
        }
        for (int j = 0; j < m; j++) p[j] = round(float32, p[j] / sum);
        return p;
    }

    /**
     * The analytic gradients of {@link #attention} for loss gradient g: dv_j = Σ_i p_ij g_i,
     * ds_ij = p_ij (g_i·v_j − g_i·o_i), dq_i = scale Σ_j ds_ij k_j, dk_j = scale Σ_i ds_ij q_i; rows
     * that attend nothing contribute nothing. Returns {dq, dk, dv}.
     */
    static double[][][] attentionGradients(double[][] q, double[][] k, double[][] v, double[][] g, boolean[][] allowed, double scale, boolean float32) {
        int n = q.length, m = k.length, d = q[0].length, dv = v[0].length;
        double[][] dq = new double[n][d], dk = new double[m][d], dvOut = new double[m][dv];
        double[] o = new double[dv];
        for (int i = 0; i < n; i++) {
            double[] p = probabilities(q, k, i, allowed, scale, float32);
            if (p == null) continue;
            java.util.Arrays.fill(o, 0);
            for (int j = 0; j < m; j++) {
                if (p[j] == 0) continue;
                for (int c = 0; c < dv; c++) o[c] = round(float32, o[c] + round(float32, p[j] * v[j][c]));
            }
            double delta = 0;
            for (int c = 0; c < dv; c++) delta = round(float32, delta + round(float32, g[i][c] * o[c]));
            for (int j = 0; j < m; j++) {
                if (p[j] == 0) continue;
                double dp = 0;
                for (int c = 0; c < dv; c++) dp = round(float32, dp + round(float32, g[i][c] * v[j][c]));
                double ds = round(float32, round(float32, p[j] * round(float32, dp - delta)) * scale);
                for (int c = 0; c < d; c++) {
                    dq[i][c] = round(float32, dq[i][c] + round(float32, ds * k[j][c]));
                    dk[j][c] = round(float32, dk[j][c] + round(float32, ds * q[i][c]));
                }
                for (int c = 0; c < dv; c++) dvOut[j][c] = round(float32, dvOut[j][c] + round(float32, p[j] * g[i][c]));
            }
        }
        return new double[][][] {dq, dk, dvOut};
    }

    /** a·b (rows of a times columns of b), in float64 or naively in fp32; {@code transposeA}: aᵀ·b. */
    static double[][] product(double[][] a, boolean transposeA, double[][] b, boolean transposeB, boolean float32) {
        int rows = transposeA ? a[0].length : a.length, inner = transposeA ? a.length : a[0].length, cols = transposeB ? b.length : b[0].length;
        double[][] c = new double[rows][cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) {
            double sum = 0;
            for (int p = 0; p < inner; p++) {
                double x = transposeA ? a[p][i] : a[i][p], y = transposeB ? b[j][p] : b[p][j];
                sum = round(float32, sum + round(float32, x * y));
            }
            c[i][j] = sum;
        }
        return c;
    }
}
