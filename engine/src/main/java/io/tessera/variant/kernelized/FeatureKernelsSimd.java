package io.tessera.variant.kernelized;

import static io.tessera.variant.kernelized.FeatureKernels.*;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link FeatureKernels} with the Vector API (loaded only when the incubator module is present):
 * features in lanes, every lane the scalar function's operations in the same order (fma for fma,
 * compare-and-blend for the clamps), so the results are the scalar loops', bit for bit, at any
 * vector width; the last {@code m mod lanes} features go through the scalar functions. The width
 * follows {@code -Dtessera.vectorBitSize} like the CPU kernels' (else the JVM's preferred one).
 */
final class FeatureKernelsSimd {
    private FeatureKernelsSimd() {}

    private static final VectorSpecies<Float> F = species();
    private static final int L = F.length();

    private static VectorSpecies<Float> species() {
        String forced = System.getProperty("tessera.vectorBitSize");
        if (forced == null || forced.isBlank()) return FloatVector.SPECIES_PREFERRED;
        try {
            int bits = Integer.parseInt(forced.trim());
            if (bits == 128 || bits == 256 || bits == 512) return VectorSpecies.of(float.class, VectorShape.forBitSize(bits));
        } catch (NumberFormatException ignored) {
            // the CPU backend rejects the bad value by name; the element-wise kernels need no width of their own
        }
        return FloatVector.SPECIES_PREFERRED;
    }

    static void columnMax(float[] u, int rows, int m, float[] largest) {
        int vec = m - m % L;
        for (int f = 0; f < vec; f += L) {
            FloatVector max = FloatVector.fromArray(F, largest, f);
            for (int r = 0; r < rows; r++) max = max.max(FloatVector.fromArray(F, u, r * m + f));   // Math.max per lane: NaN propagates
            max.intoArray(largest, f);
        }
        if (vec < m) FeatureKernels.columnMax(u, rows, m, largest, vec);
    }

    static void keyFeatures(float[] u, int rows, int m, boolean exponential, float[] shift, float[] dst, float[] sums) {
        int vec = m - m % L;
        for (int f = 0; f < vec; f += L) {
            FloatVector s = FloatVector.fromArray(F, shift, f);
            FloatVector sum = sums != null ? FloatVector.fromArray(F, sums, f) : null;
            for (int r = 0; r < rows; r++) {
                int o = r * m + f;
                FloatVector x = FloatVector.fromArray(F, u, o), e;
                if (exponential) {
                    e = exp(x.sub(s));
                } else {
                    e = exp(x.min(0f).sub(s)).mul(x.max(0f).add(1f));
                }
                e.intoArray(dst, o);
                if (sum != null) sum = sum.add(e);
            }
            if (sum != null) sum.intoArray(sums, f);
        }
        if (vec < m) FeatureKernels.keyFeatures(u, rows, m, exponential, shift, dst, sums, vec);
    }

    static void queryWeights(float[] u, int rows, int m, boolean exponential, float[] shift, float[] dst) {
        int vec = m - m % L;
        float[] lanes = new float[L];
        for (int r = 0; r < rows; r++) {
            int o = r * m;
            float max = Float.NEGATIVE_INFINITY;
            if (vec > 0) {
                FloatVector best = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
                for (int f = 0; f < vec; f += L) {
                    FloatVector x = FloatVector.fromArray(F, u, o + f);
                    best = best.max((exponential ? x : logFeatureBound(x)).add(FloatVector.fromArray(F, shift, f)));
                }
                best.intoArray(lanes, 0);
                for (int i = 0; i < L; i++) max = Math.max(max, lanes[i]);   // max is exact: any order gives the scalar loop's value
            }
            max = FeatureKernels.rowShift(u, o, m, exponential, shift, vec, max);
            FloatVector mv = FloatVector.broadcast(F, max);
            for (int f = 0; f < vec; f += L) {
                FloatVector x = FloatVector.fromArray(F, u, o + f), s = FloatVector.fromArray(F, shift, f);
                FloatVector w = exponential ? exp(x.add(s).sub(mv)) : exp(x.min(0f).add(s).sub(mv)).mul(x.max(0f).add(1f));
                w.intoArray(dst, o + f);
            }
            FeatureKernels.queryRow(u, o, m, exponential, shift, max, dst, vec);
        }
    }

    /** {@link FeatureKernels#exp}, lane by lane. */
    private static FloatVector exp(FloatVector x) {
        x = x.blend(EXP_MIN_ARGUMENT, x.compare(VectorOperators.LT, EXP_MIN_ARGUMENT));
        x = x.blend(EXP_MAX_ARGUMENT, x.compare(VectorOperators.GT, EXP_MAX_ARGUMENT));
        FloatVector t = x.mul(LOG2E);
        FloatVector tLow = x.fma(FloatVector.broadcast(F, LOG2E), t.neg()).add(x.mul(LOG2E_LOW));
        t = t.blend(EXP2_MIN, t.compare(VectorOperators.LT, EXP2_MIN));
        FloatVector rounded = t.add(ROUND_MAGIC);
        FloatVector f = t.sub(rounded.sub(ROUND_MAGIC)).add(tLow);
        FloatVector p = f.fma(P0, P1).fma(f, bc(P2)).fma(f, bc(P3)).fma(f, bc(P4)).fma(f, bc(P5));
        FloatVector scale = rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats();
        return f.fma(p, bc(1f)).mul(scale);
    }

    private static FloatVector bc(float x) { return FloatVector.broadcast(F, x); }

    /** {@link FeatureKernels#logFeatureBound}, lane by lane. */
    private static FloatVector logFeatureBound(FloatVector u) {
        IntVector bits = u.max(0f).add(1f).reinterpretAsInts();
        FloatVector exponent = (FloatVector) bits.lanewise(VectorOperators.LSHR, 23).sub(127).convert(VectorOperators.I2F, 0);
        FloatVector mantissa = (FloatVector) bits.and(0x7FFFFF).convert(VectorOperators.I2F, 0);
        FloatVector log2 = exponent.add(mantissa.mul(0x1p-23f)).add(LOG2_GAP);
        return FloatVector.broadcast(F, LN2).fma(log2, u.min(0f));
    }
}
