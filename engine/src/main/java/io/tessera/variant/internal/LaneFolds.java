package io.tessera.variant.internal;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Folds across the lanes of L rows at once (L = the variants' float lanes, {@link VariantSpecies}),
 * loaded only when the incubator module is present: {@code rows[i·L + lane]} holds row i's L values,
 * and row i's result goes to {@code dst[dstOff + i]}. A fold per row (a horizontal reduction, or a
 * store and a scalar loop) ends a chain of dependent steps that nothing else in a row loop hides: in
 * the linear-attention query pass, the row maxima through {@code reduceLanes(MAX)} and the row dot
 * products through a scalar fold of their stored partials cost 8 and 22 ns a row of 64 features,
 * more than the row's exponentials (2-core AVX-512 Xeon, one thread, a 480-row chunk in L2).
 *
 * <p>A transposing reduction: log₂ L steps, each combining pairs of vectors by a blend, a lane swap
 * and the operation, so one step halves the vectors and every lane stays busy; after the last, one
 * vector holds the L results (in a permuted lane order, put back in order once). Each row's values
 * meet as a halving tree, lane j with lane j + L/2, then j + L/4, …: {@link PartialSums#fold}'s
 * order once the 16 partials are pre-added down to L lanes. Maxima are exact in any order. The CPU
 * decode kernel builds the same steps for its keys' scores; the kernels and the variants share no code
 * (the variants read their width in {@link VariantSpecies} for the same reason).
 */
public final class LaneFolds {
    private LaneFolds() {}

    private static final VectorSpecies<Float> F = VariantSpecies.FLOATS;
    /** Lanes, and rows per fold. */
    public static final int L = F.length();

    // Step st (segments of s = L >> st lanes, half h = s / 2) combines vectors a and b as
    // a.blend(b, HIGH[st]) op b.blend(a, HIGH[st]).rearrange(SWAP[st]): lane i < h of each segment
    // gets a[i] op a[i + h] (a's row), lane i ≥ h gets b[i] op b[i − h] (b's row). NATURAL puts the
    // rows, which end in a permuted lane order, back in order.
    private static final VectorMask<Float>[] HIGH;
    private static final VectorShuffle<Float>[] SWAP;
    private static final VectorShuffle<Float> NATURAL;

    static {
        int steps = Integer.numberOfTrailingZeros(L);
        @SuppressWarnings("unchecked") VectorMask<Float>[] high = new VectorMask[steps];
        @SuppressWarnings("unchecked") VectorShuffle<Float>[] swap = new VectorShuffle[steps];
        int[][] rowOf = new int[L][L];   // rowOf[vector][lane]
        for (int i = 0; i < L; i++) java.util.Arrays.fill(rowOf[i], i);
        for (int st = 0, count = L; count > 1; st++, count >>= 1) {
            int seg = L >> st, h = seg / 2, half = count / 2;
            boolean[] m = new boolean[L];
            int[] sw = new int[L];
            for (int lane = 0; lane < L; lane++) {
                m[lane] = lane % seg >= h;
                sw[lane] = lane ^ h;
            }
            high[st] = VectorMask.fromArray(F, m, 0);
            swap[st] = VectorShuffle.fromArray(F, sw, 0);
            for (int i = 0; i < half; i++) {
                for (int lane = 0; lane < L; lane++) rowOf[i][lane] = m[lane] ? rowOf[i + half][lane] : rowOf[i][lane];
            }
        }
        int[] natural = new int[L];
        for (int lane = 0; lane < L; lane++) natural[rowOf[0][lane]] = lane;
        HIGH = high;
        SWAP = swap;
        NATURAL = VectorShuffle.fromArray(F, natural, 0);
    }

    /** dst[dstOff + i] = row i's L lanes summed as a halving tree; {@code rows} is overwritten. */
    public static void sums(float[] rows, float[] dst, int dstOff) {
        for (int st = 0, count = L; count > 1; st++, count >>= 1) {
            int half = count >> 1;
            VectorMask<Float> high = HIGH[st];
            VectorShuffle<Float> swap = SWAP[st];
            for (int i = 0; i < half; i++) {
                FloatVector a = FloatVector.fromArray(F, rows, i * L), b = FloatVector.fromArray(F, rows, (i + half) * L);
                a.blend(b, high).add(b.blend(a, high).rearrange(swap)).intoArray(rows, i * L);
            }
        }
        FloatVector.fromArray(F, rows, 0).rearrange(NATURAL).intoArray(dst, dstOff);
    }

    /**
     * dst[dstOff + i] = the largest of row i's L lanes (Math.max's rules: NaN wins, +0 over −0);
     * {@code rows} is overwritten. {@link #sums}' loop with max for add: the operation as a parameter
     * would be a vector operation C2 intrinsifies only where this method is inlined.
     */
    public static void maxima(float[] rows, float[] dst, int dstOff) {
        for (int st = 0, count = L; count > 1; st++, count >>= 1) {
            int half = count >> 1;
            VectorMask<Float> high = HIGH[st];
            VectorShuffle<Float> swap = SWAP[st];
            for (int i = 0; i < half; i++) {
                FloatVector a = FloatVector.fromArray(F, rows, i * L), b = FloatVector.fromArray(F, rows, (i + half) * L);
                a.blend(b, high).max(b.blend(a, high).rearrange(swap)).intoArray(rows, i * L);
            }
        }
        FloatVector.fromArray(F, rows, 0).rearrange(NATURAL).intoArray(dst, dstOff);
    }
}
