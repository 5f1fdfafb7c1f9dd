package io.tessera.variant.kernelized;

import static io.tessera.variant.kernelized.FeatureKernels.*;

import io.tessera.variant.internal.FloatExp;
import io.tessera.variant.internal.LaneFolds;
import io.tessera.variant.internal.PartialSums;
import io.tessera.variant.internal.VariantSpecies;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link FeatureKernels} with the Vector API (loaded only when the incubator module is present):
 * features in lanes, every lane the scalar function's operations in the same order (fma for fma,
 * compare-and-blend for the clamps), so the results are the scalar loops', bit for bit, at any
 * vector width; the last {@code m mod lanes} features go through the scalar functions. The width
 * is the CPU kernels' ({@link VariantSpecies}).
 */
final class FeatureKernelsSimd {
    private FeatureKernelsSimd() {}

    private static final VectorSpecies<Float> F = VariantSpecies.FLOATS;
    private static final int L = F.length();
    /** Doubles at the float width: the low half of a float vector's lanes widens to exactly one vector of them. */
    private static final VectorSpecies<Double> D = VectorSpecies.of(double.class, F.vectorShape());
    /**
     * The low half of the float lanes. A float vector of half the width would be a second float shape
     * in the JVM (see VariantSpecies: C2 then boxes the vectors of kernels compiled later, the decode
     * kernel's at 128 and 256 bits); a masked load of the full shape reads the same floats.
     */
    private static final VectorMask<Float> LOW_HALF = F.indexInRange(0, L / 2);
    private static final FloatVector V_LN2 = FloatVector.broadcast(F, LN2);
    private static final FloatVector V_MANTISSA_ULP = FloatVector.broadcast(F, 0x1p-23f), V_LOG2_BIAS = FloatVector.broadcast(F, LOG2_BIAS);
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /**
     * The elu clamps as a compare and a blend: min(x, 0) = x > 0 ? +0 : x and max(x, 0) = x ≤ 0 ? +0 : x
     * are Math.min and Math.max exactly (−0 stays −0 in the first and becomes +0 in the second, NaN
     * stays NaN in both), but FloatVector.min / max with 0 compile to six instructions on AVX-512
     * (two blends, the min or max, a NaN compare and a masked move), a compare and a blend to two.
     */
    private static final FloatVector ZERO = FloatVector.zero(F);

    /**
     * {@link FeatureKernels#squaredNorms}: the 8 partials of a row in 8 / (double lanes)
     * accumulators of float pairs widened to doubles, each the scalar twin's fma chain (the widening
     * written out in the loops: no method here takes or returns a vector, see FloatExpSimd).
     */
    static void squaredNorms(float[] x, int rows, int d, double[] out) {
        int lanes = D.length();
        if (FeatureKernels.NORM_PARTIALS % lanes != 0 || lanes < 2) {
            FeatureKernels.squaredNormsScalar(x, rows, d, out);
            return;
        }
        double[] partials = new double[FeatureKernels.NORM_PARTIALS];
        int body = d - d % FeatureKernels.NORM_PARTIALS;
        DoubleVector zero = DoubleVector.zero(D);
        for (int r = 0; r < rows; r++) {
            int o = r * d;
            if (lanes == 8) {
                DoubleVector a0 = zero;
                for (int c = 0; c < body; c += 8) {
                    DoubleVector v0 = (DoubleVector) FloatVector.fromArray(F, x, o + c, LOW_HALF).convertShape(VectorOperators.F2D, D, 0);
                    a0 = v0.fma(v0, a0);
                }
                a0.intoArray(partials, 0);
            } else if (lanes == 4) {
                DoubleVector a0 = zero, a1 = zero;
                for (int c = 0; c < body; c += 8) {
                    DoubleVector v0 = (DoubleVector) FloatVector.fromArray(F, x, o + c, LOW_HALF).convertShape(VectorOperators.F2D, D, 0);
                    DoubleVector v1 = (DoubleVector) FloatVector.fromArray(F, x, o + c + 4, LOW_HALF).convertShape(VectorOperators.F2D, D, 0);
                    a0 = v0.fma(v0, a0);
                    a1 = v1.fma(v1, a1);
                }
                a0.intoArray(partials, 0);
                a1.intoArray(partials, 4);
            } else {
                DoubleVector a0 = zero, a1 = zero, a2 = zero, a3 = zero;
                for (int c = 0; c < body; c += 8) {
                    DoubleVector v0 = (DoubleVector) FloatVector.fromArray(F, x, o + c, LOW_HALF).convertShape(VectorOperators.F2D, D, 0);
                    DoubleVector v1 = (DoubleVector) FloatVector.fromArray(F, x, o + c + 2, LOW_HALF).convertShape(VectorOperators.F2D, D, 0);
                    DoubleVector v2 = (DoubleVector) FloatVector.fromArray(F, x, o + c + 4, LOW_HALF).convertShape(VectorOperators.F2D, D, 0);
                    DoubleVector v3 = (DoubleVector) FloatVector.fromArray(F, x, o + c + 6, LOW_HALF).convertShape(VectorOperators.F2D, D, 0);
                    a0 = v0.fma(v0, a0);
                    a1 = v1.fma(v1, a1);
                    a2 = v2.fma(v2, a2);
                    a3 = v3.fma(v3, a3);
                }
                a0.intoArray(partials, 0);
                a1.intoArray(partials, 2);
                a2.intoArray(partials, 4);
                a3.intoArray(partials, 6);
            }
            out[r] = FeatureKernels.finishNorm(partials, x, o, d, body);
        }
    }

    /**
     * {@link FeatureKernels#rowDots}: the 16 partials of a row in 16 / L accumulators (lane i of
     * accumulator a is partial a·L + i), each the scalar twin's fma chain, pre-added to L lanes
     * (the first levels of {@link PartialSums#fold}); L rows' lanes folded together by
     * {@link LaneFolds#sums}, fewer row by row, then each row's tail. The branches test a constant,
     * so C2 keeps one of them and no vector crosses a control-flow merge.
     */
    static void rowDots(float[] w, int rows, int m, float[] z, float[] dots) {
        if (FeatureKernels.PARTIALS % L != 0 || L < 4) {
            FeatureKernels.rowDotsScalar(w, rows, m, z, dots);
            return;
        }
        float[] lanes = new float[L * L];
        for (int r0 = 0; r0 < rows; r0 += L) rowDots(w, r0, Math.min(r0 + L, rows), m, z, dots, lanes);
    }

    /** {@link #rowDots} of rows [from, to): exactly L of them folded together, any other count row by row; {@code lanes} holds L·L floats. */
    private static void rowDots(float[] w, int from, int to, int m, float[] z, float[] dots, float[] lanes) {
        int body = m - m % FeatureKernels.PARTIALS;
        boolean together = to - from == L;
        for (int r = from; r < to; r++) {
            int o = r * m, part = (together ? r - from : 0) * L;
            FloatVector zero = FloatVector.zero(F), a0 = zero, a1 = zero, a2 = zero, a3 = zero;
            if (L == 16) {
                for (int f = 0; f < body; f += 16) a0 = FloatVector.fromArray(F, w, o + f).fma(FloatVector.fromArray(F, z, f), a0);
                a0.intoArray(lanes, part);
            } else if (L == 8) {
                for (int f = 0; f < body; f += 16) {
                    a0 = FloatVector.fromArray(F, w, o + f).fma(FloatVector.fromArray(F, z, f), a0);
                    a1 = FloatVector.fromArray(F, w, o + f + 8).fma(FloatVector.fromArray(F, z, f + 8), a1);
                }
                a0.add(a1).intoArray(lanes, part);   // p[i] + p[i + 8]
            } else {
                for (int f = 0; f < body; f += 16) {
                    a0 = FloatVector.fromArray(F, w, o + f).fma(FloatVector.fromArray(F, z, f), a0);
                    a1 = FloatVector.fromArray(F, w, o + f + 4).fma(FloatVector.fromArray(F, z, f + 4), a1);
                    a2 = FloatVector.fromArray(F, w, o + f + 8).fma(FloatVector.fromArray(F, z, f + 8), a2);
                    a3 = FloatVector.fromArray(F, w, o + f + 12).fma(FloatVector.fromArray(F, z, f + 12), a3);
                }
                a0.add(a2).add(a1.add(a3)).intoArray(lanes, part);   // p[i] + p[i + 8], then + p[i + 4]
            }
            if (!together) dots[r] = foldLanes(lanes);
        }
        if (together) LaneFolds.sums(lanes, dots, from);
        for (int r = from; r < to; r++) {
            int o = r * m;
            float dot = dots[r];
            for (int f = body; f < m; f++) dot = Math.fma(w[o + f], z[f], dot);   // finishDot's tail
            dots[r] = dot;
        }
    }

    /** The halving tree over lanes[0, L) (the levels of PartialSums.fold past the pre-adds), for one row. */
    private static float foldLanes(float[] lanes) {
        for (int half = L / 2; half >= 1; half >>= 1) {
            for (int i = 0; i < half; i++) lanes[i] = lanes[i] + lanes[i + half];
        }
        return lanes[0];
    }

    /**
     * Four running maxima per vector of features (rows r mod 4), combined at the end: one chain
     * waited out every max's latency. The maximum is exact and NaN propagates through any
     * grouping, so the result is the scalar loop's.
     */
    static void columnMax(float[] u, int rows, int m, float[] largest) {
        int vec = m - m % L;
        FloatVector none = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        for (int f = 0; f < vec; f += L) {
            FloatVector m0 = FloatVector.fromArray(F, largest, f), m1 = none, m2 = none, m3 = none;
            int r = 0;
            for (; r + 4 <= rows; r += 4) {
                int o = r * m + f;
                m0 = m0.max(FloatVector.fromArray(F, u, o));   // Math.max per lane: NaN propagates
                m1 = m1.max(FloatVector.fromArray(F, u, o + m));
                m2 = m2.max(FloatVector.fromArray(F, u, o + 2 * m));
                m3 = m3.max(FloatVector.fromArray(F, u, o + 3 * m));
            }
            for (; r < rows; r++) m0 = m0.max(FloatVector.fromArray(F, u, r * m + f));
            m0.max(m1).max(m2.max(m3)).intoArray(largest, f);
        }
        if (vec < m) FeatureKernels.columnMax(u, rows, m, largest, vec);
    }

    /**
     * {@link FeatureKernels#copyColumnMax}: four rows at a time, each vector of them stored to the
     * heap and folded into the running maximum of its features (one maximum through memory per four
     * rows). The maximum is exact and NaN propagates through any grouping, so the result is the
     * scalar loop's. A tail of features goes through the bulk copy and the scalar loop.
     */
    static void copyColumnMax(MemorySegment src, long at, int rows, int m, float[] dst, float[] largest) {
        int vec = m - m % L;
        if (vec < m) {
            MemorySegment.copy(src, FLOAT, at * Float.BYTES, dst, 0, rows * m);
            columnMax(dst, rows, m, largest);
            return;
        }
        long base = at * Float.BYTES, rowBytes = (long) m * Float.BYTES;
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            int o = r * m;
            long b = base + (long) o * Float.BYTES;
            for (int f = 0; f < m; f += L) {
                long bf = b + (long) f * Float.BYTES;
                FloatVector x0 = FloatVector.fromMemorySegment(F, src, bf, ORDER);
                FloatVector x1 = FloatVector.fromMemorySegment(F, src, bf + rowBytes, ORDER);
                FloatVector x2 = FloatVector.fromMemorySegment(F, src, bf + 2 * rowBytes, ORDER);
                FloatVector x3 = FloatVector.fromMemorySegment(F, src, bf + 3 * rowBytes, ORDER);
                x0.intoArray(dst, o + f);
                x1.intoArray(dst, o + m + f);
                x2.intoArray(dst, o + 2 * m + f);
                x3.intoArray(dst, o + 3 * m + f);
                FloatVector.fromArray(F, largest, f).max(x0.max(x1).max(x2.max(x3))).intoArray(largest, f);   // Math.max per lane
            }
        }
        for (; r < rows; r++) {
            int o = r * m;
            long b = base + (long) o * Float.BYTES;
            for (int f = 0; f < m; f += L) {
                FloatVector x0 = FloatVector.fromMemorySegment(F, src, b + (long) f * Float.BYTES, ORDER);
                x0.intoArray(dst, o + f);
                FloatVector.fromArray(F, largest, f).max(x0).intoArray(largest, f);
            }
        }
    }

    static int fittingRows(float[] u, int rows, int m, float[] limit, float[] values, int dv) {
        int vec = m - m % L, vecValues = dv - dv % L;
        for (int r = 1; r < rows; r++) {
            int o = r * m;
            for (int f = 0; f < vec; f += L) {
                if (FloatVector.fromArray(F, u, o + f).compare(VectorOperators.GT, FloatVector.fromArray(F, limit, f)).anyTrue()) return r;
            }
            if (FeatureKernels.rowExceeds(u, o, m, limit, vec)) return r;
            int ov = r * dv;
            for (int c = 0; c < vecValues; c += L) {
                FloatVector x = FloatVector.fromArray(F, values, ov + c);
                if (x.sub(x).compare(VectorOperators.NE, 0f).anyTrue()) return r;   // x − x is 0 exactly when x is finite
            }
            if (!FeatureKernels.rowFinite(values, ov, dv, vecValues)) return r;
        }
        return rows;
    }

    /*
     * The exponentials are FloatExpSimd.expInPlace's operations, one for one in its order (so the
     * scalar FloatExp.exp's bits), written out in the forward's kernels' loops: through a call of
     * expInPlace per row of 64 features, a scratch row stored and reloaded and the constants
     * broadcast per row cost a third of the elu key features' time (see keyFeaturesElu). No vector
     * crosses a call (see FloatExpSimd), and no branch merges two vectors (a phi of vectors boxes them: the exponential
     * and elu + 1 maps have loops of their own).
     */

    static void keyFeatures(float[] u, int rows, int m, boolean exponential, float[] shift, float[] sums, MemorySegment out, long at) {
        if (exponential) {
            keyFeaturesExponential(u, rows, m, shift, sums, out, at);
            return;
        }
        // elu(u) + 1 = e^min(u, 0) · (max(u, 0) + 1): exact for either sign (one factor is 1)
        keyFeaturesElu(u, rows, m, shift, sums, out, at);
    }

    /**
     * {@link #keyFeatures} for elu + 1 with FloatExpSimd.expInPlace's operations written out in the
     * loop, one for one in the same order (so the same bits as FloatExp.exp): no scratch row stored
     * and reloaded, x loaded once, the constants broadcast once per call instead of once per row (a
     * call of expInPlace per row of 64 features). Measured on the 2-core AVX-512 Xeon, one thread, a
     * chunk of 480 × 64: 22.5–23.4 µs through expInPlace, 14.3–14.8 µs written out.
     */
    private static void keyFeaturesElu(float[] u, int rows, int m, float[] shift, float[] sums, MemorySegment out, long at) {
        int vec = m - m % L;
        FloatVector lowest = FloatVector.broadcast(F, FloatExp.MIN_ARGUMENT), highest = FloatVector.broadcast(F, FloatExp.MAX_ARGUMENT);
        FloatVector log2e = FloatVector.broadcast(F, FloatExp.LOG2E), log2eLow = FloatVector.broadcast(F, FloatExp.LOG2E_LOW);
        FloatVector exp2Min = FloatVector.broadcast(F, FloatExp.EXP2_MIN), magic = FloatVector.broadcast(F, FloatExp.ROUND_MAGIC), one = FloatVector.broadcast(F, 1f);
        FloatVector p0 = FloatVector.broadcast(F, FloatExp.P0), p1 = FloatVector.broadcast(F, FloatExp.P1), p2 = FloatVector.broadcast(F, FloatExp.P2);
        FloatVector p3 = FloatVector.broadcast(F, FloatExp.P3), p4 = FloatVector.broadcast(F, FloatExp.P4), p5 = FloatVector.broadcast(F, FloatExp.P5);
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            for (int f = 0; f < vec; f += L) {
                FloatVector x = FloatVector.fromArray(F, u, o + f);
                FloatVector y = x.blend(ZERO, x.compare(VectorOperators.GT, 0f)).sub(FloatVector.fromArray(F, shift, f));   // min(x, 0) − shift
                y = y.blend(lowest, y.compare(VectorOperators.LT, lowest));
                y = y.blend(highest, y.compare(VectorOperators.GT, highest));
                FloatVector t = y.mul(log2e);
                FloatVector tLow = y.fma(log2e, t.neg()).add(y.mul(log2eLow));
                t = t.blend(exp2Min, t.compare(VectorOperators.LT, exp2Min));
                FloatVector rounded = t.add(magic);
                FloatVector g = t.sub(rounded.sub(magic)).add(tLow);
                FloatVector p = g.fma(p0, p1).fma(g, p2).fma(g, p3).fma(g, p4).fma(g, p5);
                FloatVector scale = rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(FloatExp.EXPONENT_BIAS_BITS).reinterpretAsFloats();
                FloatVector ey = g.fma(p, one).mul(scale);
                FloatVector e = ey.mul(x.blend(ZERO, x.compare(VectorOperators.LE, 0f)).add(1f));   // · (max(x, 0) + 1)
                e.intoMemorySegment(out, (at + o + f) * Float.BYTES, ORDER);
                if (sums != null) FloatVector.fromArray(F, sums, f).add(e).intoArray(sums, f);   // row by row, as the scalar loop
            }
        }
        if (vec < m) FeatureKernels.keyFeatures(u, rows, m, false, shift, sums, out, at, vec);
    }

    static void scaleRows(float[] w, int rows, int m, float[] dots, MemorySegment out, long at) {
        int vec = m - m % L;
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            float inv = 1f / dots[r];
            for (int f = 0; f < vec; f += L) FloatVector.fromArray(F, w, o + f).mul(inv).intoMemorySegment(out, (at + o + f) * Float.BYTES, ORDER);
        }
        if (vec < m) FeatureKernels.scaleRows(w, rows, m, dots, out, at, vec);
    }

    /**
     * In two passes over the rows: first every row's shift M_r (the exponentials' arguments
     * min(x, 0) + shift go to dst on the way), then the exponentials and the elu factor. A row's
     * exponentials wait for its M_r, a maximum across lanes at the end of a dependent chain; row by
     * row, nothing else was in flight to hide that wait (a quarter of this method's time at m = 64).
     */
    static void queryWeights(float[] u, int rows, int m, boolean exponential, float[] shift, float[] dst, float[] rowShifts) {
        if (exponential) {
            queryWeightsExponential(u, rows, m, shift, dst, rowShifts);
            return;
        }
        queryShifts(u, rows, m, shift, dst, rowShifts);
        eluWeights(u, 0, rows, m, shift, dst, rowShifts);
    }

    /**
     * The first pass of {@link #queryWeights} for elu + 1: every row's shift M_r into
     * {@code rowShifts}, and the exponentials' arguments min(x, 0) + shift of the vector body into dst.
     */
    private static void queryShifts(float[] u, int rows, int m, float[] shift, float[] dst, float[] rowShifts) {
        int vec = m - m % L, grouped = vec == 0 ? 0 : rows - rows % L;
        float[] lanes = new float[L * L];
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            float max = Float.NEGATIVE_INFINITY;
            if (vec > 0) {
                FloatVector best = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
                for (int f = 0; f < vec; f += L) {
                    // FeatureKernels.logFeatureBound, lane by lane (written out here: no vector crosses a call)
                    FloatVector x = FloatVector.fromArray(F, u, o + f), s = FloatVector.fromArray(F, shift, f);
                    FloatVector below = x.blend(ZERO, x.compare(VectorOperators.GT, 0f));   // min(x, 0)
                    FloatVector bits = (FloatVector) x.blend(ZERO, x.compare(VectorOperators.LE, 0f)).add(1f).reinterpretAsInts().convert(VectorOperators.I2F, 0);
                    FloatVector log2 = bits.fma(V_MANTISSA_ULP, V_LOG2_BIAS);
                    best = best.max(V_LN2.fma(log2, below).add(s));
                    below.add(s).intoArray(dst, o + f);
                }
                // Math.max over the lanes, which is exact: any order gives the scalar loop's value (a
                // store and a scalar loop here cost as much as the row's exponentials at m = 64). L rows
                // at a time by LaneFolds (a reduceLanes per row ends a chain nothing hides), the rest by reduceLanes.
                if (r < grouped) best.intoArray(lanes, (r % L) * L);
                else max = best.reduceLanes(VectorOperators.MAX);
            }
            if (r < grouped) {
                if (r % L == L - 1) {
                    LaneFolds.maxima(lanes, rowShifts, r + 1 - L);
                    if (vec < m) for (int q = r + 1 - L; q <= r; q++) rowShifts[q] = FeatureKernels.rowShift(u, q * m, m, false, shift, vec, rowShifts[q]);
                }
                continue;
            }
            if (vec < m) max = FeatureKernels.rowShift(u, o, m, false, shift, vec, max);   // a call per row, even with no tail, was an eighth of this method
            rowShifts[r] = max;
        }
    }

    /**
     * The elu + 1 query weights of rows [from, to) once their shifts are in {@code rowShifts} and the
     * exponentials' arguments min(x, 0) + shift in w ({@link #queryShifts}): e^(argument − M_r) times
     * max(x, 0) + 1, FloatExpSimd.expInPlace's operations written out, as in keyFeaturesElu (the
     * same bits; through a call of expInPlace per row the constants were broadcast per row).
     */
    private static void eluWeights(float[] u, int from, int to, int m, float[] shift, float[] w, float[] rowShifts) {
        int vec = m - m % L;
        FloatVector lowest = FloatVector.broadcast(F, FloatExp.MIN_ARGUMENT), highest = FloatVector.broadcast(F, FloatExp.MAX_ARGUMENT);
        FloatVector log2e = FloatVector.broadcast(F, FloatExp.LOG2E), log2eLow = FloatVector.broadcast(F, FloatExp.LOG2E_LOW);
        FloatVector exp2Min = FloatVector.broadcast(F, FloatExp.EXP2_MIN), magic = FloatVector.broadcast(F, FloatExp.ROUND_MAGIC), one = FloatVector.broadcast(F, 1f);
        FloatVector p0 = FloatVector.broadcast(F, FloatExp.P0), p1 = FloatVector.broadcast(F, FloatExp.P1), p2 = FloatVector.broadcast(F, FloatExp.P2);
        FloatVector p3 = FloatVector.broadcast(F, FloatExp.P3), p4 = FloatVector.broadcast(F, FloatExp.P4), p5 = FloatVector.broadcast(F, FloatExp.P5);
        for (int r = from; r < to; r++) {
            int o = r * m;
            FloatVector rowShift = FloatVector.broadcast(F, rowShifts[r]);
            for (int f = 0; f < vec; f += L) {
                FloatVector y = FloatVector.fromArray(F, w, o + f).sub(rowShift);
                y = y.blend(lowest, y.compare(VectorOperators.LT, lowest));
                y = y.blend(highest, y.compare(VectorOperators.GT, highest));
                FloatVector t = y.mul(log2e);
                FloatVector tLow = y.fma(log2e, t.neg()).add(y.mul(log2eLow));
                t = t.blend(exp2Min, t.compare(VectorOperators.LT, exp2Min));
                FloatVector rounded = t.add(magic);
                FloatVector g = t.sub(rounded.sub(magic)).add(tLow);
                FloatVector p = g.fma(p0, p1).fma(g, p2).fma(g, p3).fma(g, p4).fma(g, p5);
                FloatVector scale = rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(FloatExp.EXPONENT_BIAS_BITS).reinterpretAsFloats();
                FloatVector e = g.fma(p, one).mul(scale);
                FloatVector x = FloatVector.fromArray(F, u, o + f);
                e.mul(x.blend(ZERO, x.compare(VectorOperators.LE, 0f)).add(1f)).intoArray(w, o + f);   // max(x, 0) + 1
            }
            if (vec < m) FeatureKernels.queryRow(u, o, m, false, shift, rowShifts[r], w, vec);
        }
    }

    /*
     * The exponential map (the Performer) in loops of its own: the elu loop's cap (min with 0), factor
     * and, in the query weights' maximum, the elu bound would cost about a third of its element-wise
     * time. The values are the scalar twin's bit for bit.
     */

    /**
     * The Performer's key features e^(u − shift), FloatExpSimd.expInPlace's operations written out
     * as in keyFeaturesElu (the same bits: its argument minus 0 is the argument): no scratch row
     * stored and reloaded, no call per row, the constants broadcast once per call.
     */
    private static void keyFeaturesExponential(float[] u, int rows, int m, float[] shift, float[] sums, MemorySegment out, long at) {
        int vec = m - m % L;
        FloatVector lowest = FloatVector.broadcast(F, FloatExp.MIN_ARGUMENT), highest = FloatVector.broadcast(F, FloatExp.MAX_ARGUMENT);
        FloatVector log2e = FloatVector.broadcast(F, FloatExp.LOG2E), log2eLow = FloatVector.broadcast(F, FloatExp.LOG2E_LOW);
        FloatVector exp2Min = FloatVector.broadcast(F, FloatExp.EXP2_MIN), magic = FloatVector.broadcast(F, FloatExp.ROUND_MAGIC), one = FloatVector.broadcast(F, 1f);
        FloatVector p0 = FloatVector.broadcast(F, FloatExp.P0), p1 = FloatVector.broadcast(F, FloatExp.P1), p2 = FloatVector.broadcast(F, FloatExp.P2);
        FloatVector p3 = FloatVector.broadcast(F, FloatExp.P3), p4 = FloatVector.broadcast(F, FloatExp.P4), p5 = FloatVector.broadcast(F, FloatExp.P5);
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            for (int f = 0; f < vec; f += L) {
                FloatVector y = FloatVector.fromArray(F, u, o + f).sub(FloatVector.fromArray(F, shift, f));
                y = y.blend(lowest, y.compare(VectorOperators.LT, lowest));
                y = y.blend(highest, y.compare(VectorOperators.GT, highest));
                FloatVector t = y.mul(log2e);
                FloatVector tLow = y.fma(log2e, t.neg()).add(y.mul(log2eLow));
                t = t.blend(exp2Min, t.compare(VectorOperators.LT, exp2Min));
                FloatVector rounded = t.add(magic);
                FloatVector g = t.sub(rounded.sub(magic)).add(tLow);
                FloatVector p = g.fma(p0, p1).fma(g, p2).fma(g, p3).fma(g, p4).fma(g, p5);
                FloatVector scale = rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(FloatExp.EXPONENT_BIAS_BITS).reinterpretAsFloats();
                FloatVector e = g.fma(p, one).mul(scale);
                e.intoMemorySegment(out, (at + o + f) * Float.BYTES, ORDER);
                if (sums != null) FloatVector.fromArray(F, sums, f).add(e).intoArray(sums, f);
            }
        }
        if (vec < m) FeatureKernels.keyFeatures(u, rows, m, true, shift, sums, out, at, vec);
    }

    private static void queryWeightsExponential(float[] u, int rows, int m, float[] shift, float[] dst, float[] rowShifts) {
        queryShiftsExponential(u, rows, m, shift, dst, rowShifts);
        int vec = m - m % L;
        FloatVector lowest = FloatVector.broadcast(F, FloatExp.MIN_ARGUMENT), highest = FloatVector.broadcast(F, FloatExp.MAX_ARGUMENT);
        FloatVector log2e = FloatVector.broadcast(F, FloatExp.LOG2E), log2eLow = FloatVector.broadcast(F, FloatExp.LOG2E_LOW);
        FloatVector exp2Min = FloatVector.broadcast(F, FloatExp.EXP2_MIN), magic = FloatVector.broadcast(F, FloatExp.ROUND_MAGIC), one = FloatVector.broadcast(F, 1f);
        FloatVector p0 = FloatVector.broadcast(F, FloatExp.P0), p1 = FloatVector.broadcast(F, FloatExp.P1), p2 = FloatVector.broadcast(F, FloatExp.P2);
        FloatVector p3 = FloatVector.broadcast(F, FloatExp.P3), p4 = FloatVector.broadcast(F, FloatExp.P4), p5 = FloatVector.broadcast(F, FloatExp.P5);
        for (int r = 0; r < rows; r++) {   // the exponentials after every row's shift, as in queryWeights
            int o = r * m;
            FloatVector rowShift = FloatVector.broadcast(F, rowShifts[r]);
            for (int f = 0; f < vec; f += L) {   // e^((x + shift) − max), as the scalar twin: expInPlace's operations written out
                FloatVector y = FloatVector.fromArray(F, dst, o + f).sub(rowShift);
                y = y.blend(lowest, y.compare(VectorOperators.LT, lowest));
                y = y.blend(highest, y.compare(VectorOperators.GT, highest));
                FloatVector t = y.mul(log2e);
                FloatVector tLow = y.fma(log2e, t.neg()).add(y.mul(log2eLow));
                t = t.blend(exp2Min, t.compare(VectorOperators.LT, exp2Min));
                FloatVector rounded = t.add(magic);
                FloatVector g = t.sub(rounded.sub(magic)).add(tLow);
                FloatVector p = g.fma(p0, p1).fma(g, p2).fma(g, p3).fma(g, p4).fma(g, p5);
                FloatVector scale = rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(FloatExp.EXPONENT_BIAS_BITS).reinterpretAsFloats();
                FloatVector e = g.fma(p, one).mul(scale);
                e.intoArray(dst, o + f);
            }
            if (vec < m) FeatureKernels.queryRow(u, o, m, true, shift, rowShifts[r], dst, vec);
        }
    }

    /** The first pass of {@link #queryWeightsExponential}: the row shifts, and the arguments x + shift of the vector body into dst. */
    private static void queryShiftsExponential(float[] u, int rows, int m, float[] shift, float[] dst, float[] rowShifts) {
        int vec = m - m % L;
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            float max = Float.NEGATIVE_INFINITY;
            if (vec > 0) {
                // Four running maxima (one chain waited out every max's latency: 40 % of this
                // method at m = 256), then Math.max over them and their lanes, which is exact: any
                // order gives the scalar loop's value (a store and a scalar loop over the lanes cost
                // as much as the row's exponentials at m = 64). The sums x + shift go to dst, the
                // exponentials' arguments.
                FloatVector b0 = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY), b1 = b0, b2 = b0, b3 = b0;
                int f = 0;
                for (; f + 4 * L <= vec; f += 4 * L) {
                    FloatVector x0 = FloatVector.fromArray(F, u, o + f).add(FloatVector.fromArray(F, shift, f));
                    FloatVector x1 = FloatVector.fromArray(F, u, o + f + L).add(FloatVector.fromArray(F, shift, f + L));
                    FloatVector x2 = FloatVector.fromArray(F, u, o + f + 2 * L).add(FloatVector.fromArray(F, shift, f + 2 * L));
                    FloatVector x3 = FloatVector.fromArray(F, u, o + f + 3 * L).add(FloatVector.fromArray(F, shift, f + 3 * L));
                    x0.intoArray(dst, o + f);
                    x1.intoArray(dst, o + f + L);
                    x2.intoArray(dst, o + f + 2 * L);
                    x3.intoArray(dst, o + f + 3 * L);
                    b0 = b0.max(x0);
                    b1 = b1.max(x1);
                    b2 = b2.max(x2);
                    b3 = b3.max(x3);
                }
                for (; f < vec; f += L) {
                    FloatVector x0 = FloatVector.fromArray(F, u, o + f).add(FloatVector.fromArray(F, shift, f));
                    x0.intoArray(dst, o + f);
                    b0 = b0.max(x0);
                }
                max = b0.max(b1).max(b2.max(b3)).reduceLanes(VectorOperators.MAX);
            }
            if (vec < m) max = FeatureKernels.rowShift(u, o, m, true, shift, vec, max);
            rowShifts[r] = max;
        }
    }

    /**
     * {@link FeatureKernels#normalizedQueryWeights}: the row shifts of every row first (as in
     * {@link #queryWeights}), then L rows at a time the exponentials, the elu factor, the dot
     * products with z (the 16 partials of {@link #rowDots}) and the scaled rows into the segment,
     * while the rows are in L1: as three passes over the chunk (480 × 64 floats, beyond L1) the
     * weights were read twice more from L2. Elu + 1 only: the exponential map (the Performer) runs the three
     * kernels (with both maps in one method, the Performer's forward measured 5 % slower in the
     * variants section, where it runs before linear attention in the same JVM).
     */
    static void normalizedQueryWeights(float[] u, int rows, int m, boolean exponential, float[] shift, float[] z, float[] w, float[] rowShifts,
                                       float[] dots, MemorySegment out, long at) {
        if (exponential || FeatureKernels.PARTIALS % L != 0 || L < 4) {
            queryWeights(u, rows, m, exponential, shift, w, rowShifts);
            rowDots(w, rows, m, z, dots);
            scaleRows(w, rows, m, dots, out, at);
            return;
        }
        queryShifts(u, rows, m, shift, w, rowShifts);
        float[] lanes = new float[L * L];
        for (int r0 = 0; r0 < rows; r0 += L) finishQueryRows(u, r0, Math.min(r0 + L, rows), m, shift, z, w, rowShifts, dots, out, at, lanes);
    }

    /**
     * {@link FeatureKernels#normalizedQueryWeights} for elu + 1 with u copied from the rows at
     * float index {@code srcAt} of {@code src} on the way: the first pass reads the input rows
     * themselves (a bulk copy of the chunk before it was one more pass over it). L rows at a time
     * ({@link LaneFolds}): their shifts, then their exponentials and partial sums, then their scaled
     * rows, the folds across lanes done for the L rows together; the last rows % L row by row.
     */
    static void normalizedQueryWeights(MemorySegment src, long srcAt, float[] u, int rows, int m, float[] shift, float[] z, float[] w, float[] rowShifts,
                                       float[] dots, MemorySegment out, long at) {
        if (FeatureKernels.PARTIALS % L != 0 || L < 4) {
            MemorySegment.copy(src, FLOAT, srcAt * Float.BYTES, u, 0, rows * m);
            normalizedQueryWeights(u, rows, m, false, shift, z, w, rowShifts, dots, out, at);
            return;
        }
        int vec = m - m % L, grouped = vec == 0 ? 0 : rows - rows % L;
        float[] lanes = new float[L * L];
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            long b = (srcAt + o) * Float.BYTES;
            float max = Float.NEGATIVE_INFINITY;
            if (vec > 0) {
                FloatVector best = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
                for (int f = 0; f < vec; f += L) {
                    // queryShifts' loop, its x loaded from the input and stored to u
                    FloatVector x = FloatVector.fromMemorySegment(F, src, b + (long) f * Float.BYTES, ORDER), s = FloatVector.fromArray(F, shift, f);
                    x.intoArray(u, o + f);
                    FloatVector below = x.blend(ZERO, x.compare(VectorOperators.GT, 0f));   // min(x, 0)
                    FloatVector bits = (FloatVector) x.blend(ZERO, x.compare(VectorOperators.LE, 0f)).add(1f).reinterpretAsInts().convert(VectorOperators.I2F, 0);
                    FloatVector log2 = bits.fma(V_MANTISSA_ULP, V_LOG2_BIAS);
                    best = best.max(V_LN2.fma(log2, below).add(s));
                    below.add(s).intoArray(w, o + f);
                }
                if (r < grouped) best.intoArray(lanes, (r % L) * L);
                else max = best.reduceLanes(VectorOperators.MAX);   // exact, as in queryShifts
            }
            if (vec < m) MemorySegment.copy(src, FLOAT, b + (long) vec * Float.BYTES, u, o + vec, m - vec);
            if (r < grouped) {
                if (r % L == L - 1) {   // L rows' shifts, then their weights, dot products and scaled rows
                    int r0 = r + 1 - L;
                    LaneFolds.maxima(lanes, rowShifts, r0);   // exact: any order gives queryShifts' value
                    if (vec < m) for (int q = r0; q <= r; q++) rowShifts[q] = FeatureKernels.rowShift(u, q * m, m, false, shift, vec, rowShifts[q]);
                    finishQueryRows(u, r0, r + 1, m, shift, z, w, rowShifts, dots, out, at, lanes);
                }
                continue;
            }
            if (vec < m) max = FeatureKernels.rowShift(u, o, m, false, shift, vec, max);
            rowShifts[r] = max;
        }
        if (grouped < rows) finishQueryRows(u, grouped, rows, m, shift, z, w, rowShifts, dots, out, at, lanes);
    }

    /**
     * Rows [from, to) (L of them, or the rest) of {@link #normalizedQueryWeights} once their shifts are known
     * and the exponentials' arguments are in w: the weights ({@link #eluWeights}), their dot
     * products with z ({@link #rowDots}: L rows folded together) and the rows scaled into the
     * segment, while the rows are in L1.
     */
    private static void finishQueryRows(float[] u, int from, int to, int m, float[] shift, float[] z, float[] w, float[] rowShifts,
                                        float[] dots, MemorySegment out, long at, float[] lanes) {
        eluWeights(u, from, to, m, shift, w, rowShifts);
        rowDots(w, from, to, m, z, dots, lanes);
        int vec = m - m % L;
        for (int r = from; r < to; r++) {
            int o = r * m;
            float inv = 1f / dots[r];
            for (int f = 0; f < vec; f += L) FloatVector.fromArray(F, w, o + f).mul(inv).intoMemorySegment(out, (at + o + f) * Float.BYTES, ORDER);
            for (int f = vec; f < m; f++) out.setAtIndex(FLOAT, at + o + f, w[o + f] * inv);   // scaleRows' tail
        }
    }

}
