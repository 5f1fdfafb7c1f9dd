package io.tessera.variant.kernelized;

import io.tessera.variant.internal.FloatExp;

/**
 * The element-wise passes of {@link FeatureAttention}'s forward pass over heap copies of a chunk's
 * pre-activations ({@code rows × m}, row-major): the largest pre-activation per feature, the scaled
 * key features (with their per-feature sums), and the scaled query weights. Every element is
 * computed on its own, and every sum runs over rows in row order with features in lanes, so the
 * Vector API twin ({@link FeatureKernelsSimd}, used when the incubator module is present) gives
 * these loops' results bit for bit at any vector width, thread count and JIT tier; a tail shorter
 * than a vector goes through the scalar functions here.
 *
 * <p>Shifts are floats: a key feature f is stored as φ_f(k)·e^(−σ_f) and a query weighs it by
 * φ_f(q)·e^(σ_f − M); both use the same float σ_f, so its rounding cancels in the ratio.
 */
final class FeatureKernels {
    private FeatureKernels() {}

    /** Whether the Vector API twin runs (the incubator module is in the boot layer). */
    static final boolean SIMD = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();

    static final float LN2 = 0.6931472f;
    /** The largest gap of log₂(1 + t) − t on [0, 1), rounded up: see {@link #logFeatureBound}. */
    static final float LOG2_GAP = 0.0861f;

    /** e^x in float, about 1 ulp: the variants' shared {@link FloatExp#exp} (its vector twin is in {@link FeatureKernelsSimd}). */
    static float exp(float x) {
        return FloatExp.exp(x);
    }

    /**
     * An upper bound of log φ(u) = log(elu(u) + 1) at most 0.06 above it, from the float bits of
     * y = 1 + max(u, 0) = 2^e·(1 + t): log₂ y = e + log₂(1 + t) ≤ e + t + 0.0861; below 0 it is
     * u + 0.06. NaN stays NaN, −∞ stays −∞.
     */
    static float logFeatureBound(float u) {
        int bits = Float.floatToRawIntBits(1f + Math.max(u, 0f));
        float log2 = (float) ((bits >>> 23) - 127) + (float) (bits & 0x7FFFFF) * 0x1p-23f + LOG2_GAP;
        return Math.fma(LN2, log2, Math.min(u, 0f));
    }

    /** log φ(u): u for exponential maps, log(elu(u) + 1) otherwise (in double, rounded once). */
    static float logFeature(float u, boolean exponential) {
        return exponential || u <= 0 ? u : (float) Math.log1p(u);
    }

    /** φ(u)·e^(−shift): e^(u − shift), or for elu + 1 e^(min(u, 0) − shift)·(1 + max(u, 0)). */
    static float scaledFeature(float u, float shift, boolean exponential) {
        if (exponential) return exp(u - shift);
        return exp(Math.min(u, 0f) - shift) * (1f + Math.max(u, 0f));
    }

    /**
     * dots[r] = Σ_f w[r][f]·z[f] for the first {@code rows} rows, one fma per term in feature order
     * (the chain a GEMM column computes). Eight rows at a time: eight independent chains keep the
     * FMA units busy where one chain waits out each fma's latency.
     */
    static void rowDots(float[] w, int rows, int m, float[] z, float[] dots) {
        int r = 0;
        for (; r + 8 <= rows; r += 8) {
            int o0 = r * m, o1 = o0 + m, o2 = o1 + m, o3 = o2 + m, o4 = o3 + m, o5 = o4 + m, o6 = o5 + m, o7 = o6 + m;
            float d0 = 0f, d1 = 0f, d2 = 0f, d3 = 0f, d4 = 0f, d5 = 0f, d6 = 0f, d7 = 0f;
            for (int f = 0; f < m; f++) {
                float zf = z[f];
                d0 = Math.fma(w[o0 + f], zf, d0);
                d1 = Math.fma(w[o1 + f], zf, d1);
                d2 = Math.fma(w[o2 + f], zf, d2);
                d3 = Math.fma(w[o3 + f], zf, d3);
                d4 = Math.fma(w[o4 + f], zf, d4);
                d5 = Math.fma(w[o5 + f], zf, d5);
                d6 = Math.fma(w[o6 + f], zf, d6);
                d7 = Math.fma(w[o7 + f], zf, d7);
            }
            dots[r] = d0; dots[r + 1] = d1; dots[r + 2] = d2; dots[r + 3] = d3;
            dots[r + 4] = d4; dots[r + 5] = d5; dots[r + 6] = d6; dots[r + 7] = d7;
        }
        for (; r < rows; r++) {
            float d = 0f;
            for (int f = 0, o = r * m; f < m; f++) d = Math.fma(w[o + f], z[f], d);
            dots[r] = d;
        }
    }

    /**
     * The causal pass's chunk cut: the first row r in [1, rows) whose pre-activations
     * ({@code u}, rows × m) exceed their feature's {@code limit} or whose value row
     * ({@code values}, rows × dv) is not finite; {@code rows} when there is none. A NaN
     * pre-activation exceeds nothing. A decision, not a value: the twin finds the same row.
     */
    static int fittingRows(float[] u, int rows, int m, float[] limit, float[] values, int dv) {
        if (SIMD) return FeatureKernelsSimd.fittingRows(u, rows, m, limit, values, dv);
        return fittingRowsScalar(u, rows, m, limit, values, dv);
    }

    static int fittingRowsScalar(float[] u, int rows, int m, float[] limit, float[] values, int dv) {
        for (int r = 1; r < rows; r++) {
            if (rowExceeds(u, r * m, m, limit, 0) || !rowFinite(values, r * dv, dv, 0)) return r;
        }
        return rows;
    }

    /** Whether u[o + f] > limit[f] for some f in [from, m). */
    static boolean rowExceeds(float[] u, int o, int m, float[] limit, int from) {
        for (int f = from; f < m; f++) if (u[o + f] > limit[f]) return true;
        return false;
    }

    /** Whether values[o + c] is finite for every c in [from, dv). */
    static boolean rowFinite(float[] values, int o, int dv, int from) {
        for (int c = from; c < dv; c++) if (!Float.isFinite(values[o + c])) return false;
        return true;
    }

    /** largest[f] = max(largest[f], u[r][f]) over the first {@code rows} rows (NaN propagates). */
    static void columnMax(float[] u, int rows, int m, float[] largest) {
        if (SIMD) {
            FeatureKernelsSimd.columnMax(u, rows, m, largest);
            return;
        }
        columnMax(u, rows, m, largest, 0);
    }

    static void columnMax(float[] u, int rows, int m, float[] largest, int from) {
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            for (int f = from; f < m; f++) largest[f] = Math.max(largest[f], u[o + f]);
        }
    }

    /**
     * dst[r][f] = φ(u[r][f])·e^(−shift[f]) for the first {@code rows} rows; when {@code sums} is not
     * null, each feature's values are also added into sums[f], row by row.
     */
    static void keyFeatures(float[] u, int rows, int m, boolean exponential, float[] shift, float[] dst, float[] sums) {
        if (SIMD) {
            FeatureKernelsSimd.keyFeatures(u, rows, m, exponential, shift, dst, sums);
            return;
        }
        keyFeatures(u, rows, m, exponential, shift, dst, sums, 0);
    }

    static void keyFeatures(float[] u, int rows, int m, boolean exponential, float[] shift, float[] dst, float[] sums, int from) {
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            for (int f = from; f < m; f++) {
                float feature = scaledFeature(u[o + f], shift[f], exponential);
                dst[o + f] = feature;
                if (sums != null) sums[f] += feature;
            }
        }
    }

    /**
     * dst[r][f] = φ(u[r][f])·e^(shift[f] − M_r) with M_r = max_f (ℓ(u[r][f]) + shift[f]), ℓ = u
     * for exponential maps and {@link #logFeatureBound} for elu + 1 (at most 0.06 above log φ, so
     * the weights are ≤ 1 and the largest ≥ e^−0.06 without a logarithm per feature).
     */
    static void queryWeights(float[] u, int rows, int m, boolean exponential, float[] shift, float[] dst) {
        if (SIMD) {
            FeatureKernelsSimd.queryWeights(u, rows, m, exponential, shift, dst);
            return;
        }
        queryWeightsScalar(u, rows, m, exponential, shift, dst);
    }

    /** {@link #queryWeights} without the Vector API. */
    static void queryWeightsScalar(float[] u, int rows, int m, boolean exponential, float[] shift, float[] dst) {
        for (int r = 0; r < rows; r++) {
            float max = rowShift(u, r * m, m, exponential, shift, 0, Float.NEGATIVE_INFINITY);
            queryRow(u, r * m, m, exponential, shift, max, dst, 0);
        }
    }

    /** max(max, ℓ(u[o + f]) + shift[f]) over f in [from, m). */
    static float rowShift(float[] u, int o, int m, boolean exponential, float[] shift, int from, float max) {
        for (int f = from; f < m; f++) {
            float x = u[o + f];
            max = Math.max(max, (exponential ? x : logFeatureBound(x)) + shift[f]);
        }
        return max;
    }

    /** One row of {@link #queryWeights} from feature {@code from} on, its shift M given. */
    static void queryRow(float[] u, int o, int m, boolean exponential, float[] shift, float max, float[] dst, int from) {
        for (int f = from; f < m; f++) {
            float x = u[o + f];
            dst[o + f] = exponential ? exp((x + shift[f]) - max) : exp((Math.min(x, 0f) + shift[f]) - max) * (1f + Math.max(x, 0f));
        }
    }
}
