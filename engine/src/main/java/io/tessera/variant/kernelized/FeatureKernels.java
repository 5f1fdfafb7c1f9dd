package io.tessera.variant.kernelized;

import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.FloatExp;
import io.tessera.variant.internal.PartialSums;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

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

    /**
     * The first {@code rows} rows of the float32 matrix x ({@code cols} columns, any strides), row-major
     * into dst: one bulk copy when the rows are contiguous, a copy per row when the columns are.
     */
    static void copyRows(Tensor x, int rows, int cols, float[] dst) {
        MemorySegment src = x.segment();
        if (x.stride(1) == 1 && x.stride(0) == cols) {
            MemorySegment.copy(src, ValueLayout.JAVA_FLOAT_UNALIGNED, x.offset() * Float.BYTES, dst, 0, rows * cols);
            return;
        }
        for (int r = 0; r < rows; r++) {
            long at = x.offset() + r * x.stride(0);
            if (x.stride(1) == 1) MemorySegment.copy(src, ValueLayout.JAVA_FLOAT_UNALIGNED, at * Float.BYTES, dst, r * cols, cols);
            else for (int c = 0; c < cols; c++) dst[r * cols + c] = src.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, at + c * x.stride(1));
        }
    }

    /** Whether the Vector API twin runs (the incubator module is in the boot layer). */
    static final boolean SIMD = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();

    static final float LN2 = 0.6931472f;
    /**
     * The largest gap of log₂(1 + t) − t on [0, 1) (0.086071), rounded up to 0.0861, minus the
     * exponent bias 127, rounded up to a float: see {@link #logFeatureBound}.
     */
    static final float LOG2_BIAS = -126.913895f;

    /** e^x in float, about 1 ulp: the variants' shared {@link FloatExp#exp} (its vector twin is in {@link FeatureKernelsSimd}). */
    static float exp(float x) {
        return FloatExp.exp(x);
    }

    /**
     * An upper bound of log φ(u) = log(elu(u) + 1) at most 0.06 above it, from the float bits of
     * y = 1 + max(u, 0) = 2^e·(1 + t): log₂ y = e + log₂(1 + t) ≤ e + t + 0.0861, and
     * e + t = bits·2^−23 − 127 exactly; below 0 it is u + 0.06. The bits are converted to float in
     * one rounding (bits &lt; 2^31, so at most half of a 2^7 ulp: ≤ 2^−17 in log₂ units, and ≤ 2^−18
     * more in the fma, whose sum stays below 2^7: together 1.2e-5, inside the 2.9e-5 by which
     * 0.0861 exceeds the gap), so the bound takes one conversion and two fmas where
     * the exponent and the mantissa apart took eight operations (a third of the query weights'
     * first pass). NaN stays NaN, −∞ stays −∞.
     */
    static float logFeatureBound(float u) {
        int bits = Float.floatToRawIntBits(1f + Math.max(u, 0f));
        float log2 = Math.fma((float) bits, 0x1p-23f, LOG2_BIAS);
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

    /** Partial sums per squared norm in {@link #squaredNorms}: 8, the most double lanes of any vector width. */
    static final int NORM_PARTIALS = 8;

    /**
     * out[r] = Σ_c x[r][c]² in double for the first {@code rows} rows (row-major, d columns), in an
     * order that does not depend on the vector width: partial j (j &lt; 8) is the fma chain over the
     * columns c ≡ j (mod 8) below d − d mod 8, in column order; the partials are folded pairwise,
     * then the last d mod 8 columns are fma'd on in order. The vector twin gives these bits; one
     * scalar chain per row was a twentieth of a Performer forward.
     */
    static void squaredNorms(float[] x, int rows, int d, double[] out) {
        if (SIMD) {
            FeatureKernelsSimd.squaredNorms(x, rows, d, out);
            return;
        }
        squaredNormsScalar(x, rows, d, out);
    }

    static void squaredNormsScalar(float[] x, int rows, int d, double[] out) {
        double[] partials = new double[NORM_PARTIALS];
        int body = d - d % NORM_PARTIALS;
        for (int r = 0; r < rows; r++) {
            int o = r * d;
            java.util.Arrays.fill(partials, 0);
            for (int c = 0; c < body; c++) {
                double v = x[o + c];
                partials[c & (NORM_PARTIALS - 1)] = Math.fma(v, v, partials[c & (NORM_PARTIALS - 1)]);
            }
            out[r] = finishNorm(partials, x, o, d, body);
        }
    }

    /** ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)), then columns [body, d) fma'd on in order. */
    static double finishNorm(double[] p, float[] x, int o, int d, int body) {
        double s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        for (int c = body; c < d; c++) {
            double v = x[o + c];
            s = Math.fma(v, v, s);
        }
        return s;
    }

    /** Partial sums per row dot product in {@link #rowDots} ({@link PartialSums#COUNT}). */
    static final int PARTIALS = PartialSums.COUNT;

    /**
     * dots[r] = Σ_f w[r][f]·z[f] for the first {@code rows} rows, in an order that does not depend
     * on the vector width: partial j (j &lt; 16) is the fma chain over the features f ≡ j (mod 16)
     * below m − m mod 16, in feature order; the 16 partials are folded as a halving tree
     * ({@link PartialSums#fold}), then the last m mod 16 features are fma'd on in order. The vector twin
     * keeps the partials in lanes (one vector at 512 bits, two at 256, four at 128), so it gives
     * these bits; one scalar chain per row, as before, was 3 % of the forward pass.
     */
    static void rowDots(float[] w, int rows, int m, float[] z, float[] dots) {
        if (SIMD) {
            FeatureKernelsSimd.rowDots(w, rows, m, z, dots);
            return;
        }
        rowDotsScalar(w, rows, m, z, dots);
    }

    static void rowDotsScalar(float[] w, int rows, int m, float[] z, float[] dots) {
        float[] partials = new float[PARTIALS];
        int body = m - m % PARTIALS;
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            java.util.Arrays.fill(partials, 0f);
            for (int f = 0; f < body; f++) partials[f & (PARTIALS - 1)] = Math.fma(w[o + f], z[f], partials[f & (PARTIALS - 1)]);
            dots[r] = finishDot(partials, w, o, m, z, body);
        }
    }

    /** The folded partials of one row, then its features [body, m) fma'd on in order. */
    static float finishDot(float[] partials, float[] w, int o, int m, float[] z, int body) {
        float d = PartialSums.fold(partials);
        for (int f = body; f < m; f++) d = Math.fma(w[o + f], z[f], d);
        return d;
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

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /**
     * dst = the first {@code rows} rows of m floats from float index {@code at} of {@code src}
     * (rows contiguous, row-major), and largest[f] = max(largest[f], u[r][f]) over them (NaN
     * propagates): {@link #columnMax} on the way in. The vector twin reads the rows once, where a
     * bulk copy and then {@link #columnMax} read the chunk (480 × 64 floats, beyond L1) a second time.
     */
    static void copyColumnMax(MemorySegment src, long at, int rows, int m, float[] dst, float[] largest) {
        if (SIMD) {
            FeatureKernelsSimd.copyColumnMax(src, at, rows, m, dst, largest);
            return;
        }
        MemorySegment.copy(src, FLOAT, at * Float.BYTES, dst, 0, rows * m);
        columnMax(dst, rows, m, largest, 0);
    }

    /**
     * out[r][f] = φ(u[r][f])·e^(−shift[f]) for the first {@code rows} rows, written as float32 rows
     * of m floats into {@code out} from float index {@code at} (the chunk's GEMM operand: written
     * there directly, a heap copy of the chunk and a bulk copy into the segment cost a pass over
     * it); when {@code sums} is not null, each feature's values are also added into sums[f], row
     * by row. {@code scratch} (at least m floats) holds a row's exponentials in the vector twin.
     */
    static void keyFeatures(float[] u, int rows, int m, boolean exponential, float[] shift, float[] sums, MemorySegment out, long at) {
        if (SIMD) {
            FeatureKernelsSimd.keyFeatures(u, rows, m, exponential, shift, sums, out, at);
            return;
        }
        keyFeatures(u, rows, m, exponential, shift, sums, out, at, 0);
    }

    static void keyFeatures(float[] u, int rows, int m, boolean exponential, float[] shift, float[] sums, MemorySegment out, long at, int from) {
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            for (int f = from; f < m; f++) {
                float feature = scaledFeature(u[o + f], shift[f], exponential);
                out.setAtIndex(FLOAT, at + o + f, feature);
                if (sums != null) sums[f] += feature;
            }
        }
    }

    /**
     * out[r][f] = w[r][f]·(1/dots[r]) for the first {@code rows} rows, as float32 rows of m floats
     * into {@code out} from float index {@code at}: one reciprocal per row, then a product per
     * element, written straight into the GEMM operand.
     */
    static void scaleRows(float[] w, int rows, int m, float[] dots, MemorySegment out, long at) {
        if (SIMD) {
            FeatureKernelsSimd.scaleRows(w, rows, m, dots, out, at);
            return;
        }
        scaleRows(w, rows, m, dots, out, at, 0);
    }

    static void scaleRows(float[] w, int rows, int m, float[] dots, MemorySegment out, long at, int from) {
        for (int r = 0; r < rows; r++) {
            float inv = 1f / dots[r];
            for (int f = r * m + from, end = r * m + m; f < end; f++) out.setAtIndex(FLOAT, at + f, w[f] * inv);
        }
    }

    /**
     * The bidirectional pass's query operand: w = {@link #queryWeights}, dots[r] = Σ_f w[r][f]·z[f]
     * ({@link #rowDots}'s order) and out[r][f] = w[r][f]·(1/dots[r]) ({@link #scaleRows}), the
     * values of those three kernels one after the other; the vector twin finishes each row while it
     * is in L1.
     */
    static void normalizedQueryWeights(float[] u, int rows, int m, boolean exponential, float[] shift, float[] z, float[] w, float[] rowShifts,
                                       float[] dots, MemorySegment out, long at) {
        if (SIMD) {
            FeatureKernelsSimd.normalizedQueryWeights(u, rows, m, exponential, shift, z, w, rowShifts, dots, out, at);
            return;
        }
        queryWeightsScalar(u, rows, m, exponential, shift, w);
        rowDotsScalar(w, rows, m, z, dots);
        scaleRows(w, rows, m, dots, out, at, 0);
    }

    /**
     * {@link #normalizedQueryWeights} for elu + 1 (u = the input rows), u copied on the way from the
     * first {@code rows} rows of m floats at float index {@code srcAt} of {@code src} (rows
     * contiguous): the vector twin reads them in its first pass instead of a bulk copy before it.
     */
    static void normalizedQueryWeights(MemorySegment src, long srcAt, float[] u, int rows, int m, float[] shift, float[] z, float[] w, float[] rowShifts,
                                       float[] dots, MemorySegment out, long at) {
        if (SIMD) {
            FeatureKernelsSimd.normalizedQueryWeights(src, srcAt, u, rows, m, shift, z, w, rowShifts, dots, out, at);
            return;
        }
        MemorySegment.copy(src, FLOAT, srcAt * Float.BYTES, u, 0, rows * m);
        normalizedQueryWeights(u, rows, m, false, shift, z, w, rowShifts, dots, out, at);
    }

    /**
     * dst[r][f] = φ(u[r][f])·e^(shift[f] − M_r) with M_r = max_f (ℓ(u[r][f]) + shift[f]), ℓ = u
     * for exponential maps and {@link #logFeatureBound} for elu + 1 (at most 0.06 above log φ, so
     * the weights are ≤ 1 and the largest ≥ e^−0.06 without a logarithm per feature). The vector
     * twin keeps each row's M_r in {@code rowShifts} (at least {@code rows} long) between its passes.
     */
    static void queryWeights(float[] u, int rows, int m, boolean exponential, float[] shift, float[] dst, float[] rowShifts) {
        if (SIMD) {
            FeatureKernelsSimd.queryWeights(u, rows, m, exponential, shift, dst, rowShifts);
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
