package io.tessera.variant.kernelized;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The Vector API feature kernels are the scalar loops' bit-identical twins, and the float e^x is accurate. */
class FeatureKernelsTest {
    private static final float[] SPECIAL = {0f, -0f, 1e-30f, -1e-30f, 88f, -88f, -89.9f, -90.1f, -200f, 30f, Float.NaN,
            Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, 0.5f, -0.5f, 1e6f, -1e6f};

    private static float[] values(SplittableRandom random, int count) {
        float[] x = new float[count];
        for (int i = 0; i < count; i++) {
            x[i] = random.nextInt(8) == 0 ? SPECIAL[random.nextInt(SPECIAL.length)] : (float) (random.nextGaussian() * 6);
        }
        return x;
    }

    @Test
    void vectorKernelsAreTheScalarLoopsTwins() {
        assertTrue(FeatureKernels.SIMD, "the engine's tests run with jdk.incubator.vector");
        SplittableRandom random = new SplittableRandom(5);
        for (int m : new int[] {1, 3, 7, 8, 16, 19, 32, 64, 67, 256}) {
            for (boolean exponential : new boolean[] {true, false}) {
                int rows = 1 + random.nextInt(40);   // past whole groups of L rows (the row maxima and dot products fold L rows at a time)
                float[] u = values(random, rows * m), shift = values(random, m);
                float[] a = new float[rows * m], b = new float[rows * m], sa = values(random, m), sb = sa.clone();
                try (Arena arena = Arena.ofConfined()) {
                    // written from a float index past 0, as into a chunk's slice of a larger tensor
                    MemorySegment ka = arena.allocate((3L + rows * m) * Float.BYTES), kb = arena.allocate((3L + rows * m) * Float.BYTES);
                    FeatureKernelsSimd.keyFeatures(u, rows, m, exponential, shift, sa, ka, 3);
                    FeatureKernels.keyFeatures(u, rows, m, exponential, shift, sb, kb, 3, 0);
                    assertBits(kb.asSlice(3L * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT), ka.asSlice(3L * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT), "key features m=" + m);
                    assertBits(sb, sa, "key sums m=" + m);
                    float[] dots = values(random, rows);
                    FeatureKernelsSimd.scaleRows(u, rows, m, dots, ka, 3);
                    FeatureKernels.scaleRows(u, rows, m, dots, kb, 3, 0);
                    assertBits(kb.asSlice(3L * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT), ka.asSlice(3L * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT), "scaled rows m=" + m);
                }
                FeatureKernelsSimd.queryWeights(u, rows, m, exponential, shift, a, new float[rows]);
                FeatureKernels.queryWeightsScalar(u, rows, m, exponential, shift, b);
                assertBits(b, a, "query weights m=" + m);
                float[] la = values(random, m), lb = la.clone();
                FeatureKernelsSimd.columnMax(u, rows, m, la);
                FeatureKernels.columnMax(u, rows, m, lb, 0);
                assertBits(lb, la, "column maxima m=" + m);
                float[] da = new float[rows], db = new float[rows];
                FeatureKernelsSimd.rowDots(u, rows, m, shift, da);
                FeatureKernels.rowDotsScalar(u, rows, m, shift, db);
                assertBits(db, da, "row dots m=" + m);
                double[] na = new double[rows], nb = new double[rows];
                FeatureKernelsSimd.squaredNorms(u, rows, m, na);
                FeatureKernels.squaredNormsScalar(u, rows, m, nb);
                for (int r = 0; r < rows; r++) {
                    assertEquals(Double.doubleToLongBits(nb[r]), Double.doubleToLongBits(na[r]), "squared norm m=" + m + " row " + r + ": " + nb[r] + " vs " + na[r]);
                }
            }
        }
    }

    /**
     * The bidirectional forward pass's fused kernels against the scalar loops they fuse, bit for
     * bit: the copy with the column maxima, the query operand (weights, denominators, scaled rows)
     * from heap rows and, for elu + 1, from the input segment. Odd feature counts (ragged tails),
     * rows not a multiple of 4 nor of the lanes, whole blocks of lanes of rows, both maps, sources and destinations at float offsets past 0, NaN,
     * infinities and ±0 among the values.
     */
    @Test
    void fusedKernelsAreTheScalarLoopsTwins() {
        SplittableRandom random = new SplittableRandom(17);
        for (int m : new int[] {1, 3, 7, 8, 15, 16, 17, 19, 32, 33, 64, 67, 256}) {
            for (int trial = 0; trial < 8; trial++) {
                // up to 3 blocks of 16 rows and a ragged rest (the query operand folds 16 rows at a time at 512 bits)
                int rows = trial < 4 ? 1 + random.nextInt(11) : 1 + random.nextInt(50);
                boolean exponential = trial % 2 == 0;
                float[] u = values(random, rows * m), shift = values(random, m), z = new float[m];
                for (int f = 0; f < m; f++) z[f] = random.nextInt(10) == 0 ? SPECIAL[random.nextInt(SPECIAL.length)] : (float) Math.abs(random.nextGaussian());
                try (Arena arena = Arena.ofConfined()) {
                    long srcAt = 5, at = 3;
                    MemorySegment src = arena.allocate((srcAt + rows * m) * Float.BYTES);
                    MemorySegment.copy(u, 0, src, ValueLayout.JAVA_FLOAT, srcAt * Float.BYTES, rows * m);
                    // the copy with the column maxima
                    float[] la = values(random, m), lb = la.clone(), ca = new float[rows * m], cb = u.clone();
                    FeatureKernelsSimd.copyColumnMax(src, srcAt, rows, m, ca, la);
                    FeatureKernels.columnMax(cb, rows, m, lb, 0);
                    assertBits(cb, ca, "copied rows m=" + m);
                    assertBits(lb, la, "copied column maxima m=" + m);
                    // the scalar twin of the query operand: the three kernels it fuses
                    float[] wb = new float[rows * m], db = new float[rows];
                    MemorySegment ob = arena.allocate((at + rows * m) * Float.BYTES);
                    FeatureKernels.queryWeightsScalar(u, rows, m, exponential, shift, wb);
                    FeatureKernels.rowDotsScalar(wb, rows, m, z, db);
                    FeatureKernels.scaleRows(wb, rows, m, db, ob, at, 0);
                    float[] expected = ob.asSlice(at * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT);
                    float[] wa = new float[rows * m], da = new float[rows];
                    MemorySegment oa = arena.allocate((at + rows * m) * Float.BYTES);
                    FeatureKernelsSimd.normalizedQueryWeights(u, rows, m, exponential, shift, z, wa, new float[rows], da, oa, at);
                    assertBits(wb, wa, "query weights m=" + m);
                    assertBits(db, da, "query denominators m=" + m);
                    assertBits(expected, oa.asSlice(at * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT), "query operand m=" + m);
                    // and the dispatching entry point
                    MemorySegment oc = arena.allocate((at + rows * m) * Float.BYTES);
                    float[] dc = new float[rows];
                    FeatureKernels.normalizedQueryWeights(u, rows, m, exponential, shift, z, new float[rows * m], new float[rows], dc, oc, at);
                    assertBits(db, dc, "query denominators, dispatched, m=" + m);
                    assertBits(expected, oc.asSlice(at * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT), "query operand, dispatched, m=" + m);
                    if (!exponential) {   // elu + 1 with the rows read from the input segment
                        float[] ua = new float[rows * m];
                        MemorySegment os = arena.allocate((at + rows * m) * Float.BYTES);
                        FeatureKernelsSimd.normalizedQueryWeights(src, srcAt, ua, rows, m, shift, z, new float[rows * m], new float[rows], da, os, at);
                        assertBits(u, ua, "query rows copied m=" + m);
                        assertBits(db, da, "query denominators from the input m=" + m);
                        assertBits(expected, os.asSlice(at * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT), "query operand from the input m=" + m);
                        MemorySegment od = arena.allocate((at + rows * m) * Float.BYTES);
                        FeatureKernels.normalizedQueryWeights(src, srcAt, new float[rows * m], rows, m, shift, z, new float[rows * m], new float[rows], dc, od, at);
                        assertBits(expected, od.asSlice(at * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT), "query operand from the input, dispatched, m=" + m);
                    }
                }
            }
        }
    }

    @Test
    void chunkCutsAreTheScalarLoopsTwins() {
        SplittableRandom random = new SplittableRandom(9);
        for (int trial = 0; trial < 400; trial++) {
            int m = 1 + random.nextInt(70), dv = 1 + random.nextInt(70), rows = 1 + random.nextInt(12);
            float[] u = values(random, rows * m), limit = new float[m], v = new float[rows * dv];
            for (int f = 0; f < m; f++) limit[f] = 8 + (float) random.nextGaussian() * 10;
            for (int i = 0; i < v.length; i++) v[i] = random.nextInt(200) == 0 ? SPECIAL[random.nextInt(SPECIAL.length)] : (float) random.nextGaussian();
            assertEquals(FeatureKernels.fittingRowsScalar(u, rows, m, limit, v, dv), FeatureKernelsSimd.fittingRows(u, rows, m, limit, v, dv),
                    "chunk cut m=" + m + " dv=" + dv);
        }
    }

    private static void assertBits(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]) == Float.floatToRawIntBits(actual[i]) || (expected[i] != expected[i] && actual[i] != actual[i]), true,
                    what + " at " + i + ": scalar " + expected[i] + ", vector " + actual[i]);
        }
    }

    @Test
    void logFeatureBoundIsAtMostSixHundredthsAboveLogPhi() {
        SplittableRandom random = new SplittableRandom(3);
        for (int i = 0; i < 200_000; i++) {
            // every binade of positive floats, and the negative side
            float u = i % 4 == 0 ? (float) (-random.nextDouble() * 100) : Float.intBitsToFloat(random.nextInt(0x7F800000));
            double logPhi = u <= 0 ? u : Math.log1p(u), bound = FeatureKernels.logFeatureBound(u);
            assertTrue(bound >= logPhi && bound <= logPhi + 0.06, "u = " + u + ": bound " + bound + ", log φ " + logPhi);
        }
        assertTrue(Float.isNaN(FeatureKernels.logFeatureBound(Float.NaN)));
        assertEquals(Float.NEGATIVE_INFINITY, FeatureKernels.logFeatureBound(Float.NEGATIVE_INFINITY));
    }

    @Test
    void expIsWithinTwoUlpsOfMathExpAndZeroBelowTheRange() {
        for (double x = -87; x <= 60; x += 0.0137) {
            float got = FeatureKernels.exp((float) x), want = (float) Math.exp((float) x);
            assertTrue(Math.abs(got - want) <= 2 * Math.ulp(want), "e^" + (float) x + ": " + got + " vs " + want);
        }
        assertEquals(0f, FeatureKernels.exp(-91f));
        assertEquals(0f, FeatureKernels.exp(Float.NEGATIVE_INFINITY));
        assertTrue(Float.isNaN(FeatureKernels.exp(Float.NaN)));
        assertEquals(1f, FeatureKernels.exp(0f));
    }
}
