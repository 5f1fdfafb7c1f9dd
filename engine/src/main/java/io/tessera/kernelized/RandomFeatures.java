package io.tessera.kernelized;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * FAVOR+ positive random features (Choromanski et al. 2021, "Rethinking Attention with
 * Performers"): φ(x) = exp(ωᵢᵀx' − ‖x'‖²/2 − shift)/√m with x' = x·D^(−1/4), so that
 * E[φ(q)·φ(k)] = exp(qᵀk/√D) (up to the shifts, which cancel in the normalized ratio). With
 * {@code orthogonal}, ω come in blocks of D mutually orthogonal rows with χ(D)-distributed norms.
 * The shift is the per-row max for queries and the max over all keys of a head for keys — the
 * paper's numerical stabilizer.
 */
final class RandomFeatures implements FeatureMap {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int m, headDim;
    private final float[] omega;   // [m][D], pre-multiplied by D^(-1/4)

    RandomFeatures(int m, int headDim, boolean orthogonal, long seed) {
        if (m < 1) throw new IllegalArgumentException("features m must be >= 1, got " + m);
        this.m = m;
        this.headDim = headDim;
        this.omega = new float[m * headDim];
        SplittableRandom random = new SplittableRandom(seed);
        double scale = Math.pow(headDim, -0.25);
        double[] block = new double[headDim * headDim];
        for (int f0 = 0; f0 < m; f0 += headDim) {
            int rows = Math.min(headDim, m - f0);
            for (int i = 0; i < block.length; i++) block[i] = random.nextGaussian();
            if (orthogonal) orthonormalize(block, headDim);
            for (int r = 0; r < rows; r++) {
                double norm = 1;
                if (orthogonal) {   // a Gaussian row's length: χ(D)
                    double sq = 0;
                    for (int c = 0; c < headDim; c++) { double g = random.nextGaussian(); sq += g * g; }
                    norm = Math.sqrt(sq);
                }
                for (int c = 0; c < headDim; c++) omega[(f0 + r) * headDim + c] = (float) (block[r * headDim + c] * norm * scale);
            }
        }
    }

    /** Gram–Schmidt on the rows of a D×D matrix, in place. */
    private static void orthonormalize(double[] a, int d) {
        for (int r = 0; r < d; r++) {
            for (int p = 0; p < r; p++) {
                double dot = 0;
                for (int c = 0; c < d; c++) dot += a[r * d + c] * a[p * d + c];
                for (int c = 0; c < d; c++) a[r * d + c] -= dot * a[p * d + c];
            }
            double norm = 0;
            for (int c = 0; c < d; c++) norm += a[r * d + c] * a[r * d + c];
            norm = Math.sqrt(norm);
            for (int c = 0; c < d; c++) a[r * d + c] /= norm;
        }
    }

    int headDim() { return headDim; }

    @Override public int features(int d) {
        if (d != headDim) throw new IllegalArgumentException("features were drawn for headDim=" + headDim + ", input has headDim=" + d);
        return m;
    }

    /** Exponents ωᵢᵀx' − ‖x'‖²/2 of row r of x, into e. */
    private void exponents(MemorySegment src, long row, float[] e) {
        float sq = 0;
        float[] x = new float[headDim];
        for (int c = 0; c < headDim; c++) { x[c] = src.getAtIndex(FLOAT, row + c); sq += x[c] * x[c]; }
        float half = (float) (0.5 * sq / Math.sqrt(headDim));   // ‖x'‖²/2 with x' = x·D^(-1/4)
        for (int f = 0; f < m; f++) {
            float dot = 0;
            int o = f * headDim;
            for (int c = 0; c < headDim; c++) dot += omega[o + c] * x[c];
            e[f] = dot - half;
        }
    }

    @Override
    public float keyShift(Tensor keys, Tensor scratch) {
        float[] e = new float[m];
        float max = Float.NEGATIVE_INFINITY;
        for (int r = 0; r < keys.size(0); r++) {
            exponents(keys.segment(), keys.offset() + r * keys.stride(0), e);
            for (float x : e) max = Math.max(max, x);
        }
        return max;
    }

    @Override
    public void apply(Tensor x, boolean query, float keyShift, Tensor dst) {
        float[] e = new float[m];
        float norm = (float) (1 / Math.sqrt(m));
        MemorySegment out = dst.segment();
        for (int r = 0; r < x.size(0); r++) {
            exponents(x.segment(), x.offset() + r * x.stride(0), e);
            float shift = keyShift;
            if (query) {
                shift = Float.NEGATIVE_INFINITY;
                for (float v : e) shift = Math.max(shift, v);
            }
            long o = dst.offset() + (long) r * m;
            for (int f = 0; f < m; f++) out.setAtIndex(FLOAT, o + f, norm * (float) Math.exp(e[f] - shift));
        }
    }

    /** φ(x)·φ(y) without stabilizers: the unbiased estimate of exp(xᵀy/√D) (for tests). */
    double estimateKernel(float[] x, float[] y) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.of(arena, x, 1, headDim), b = Tensor.of(arena, y, 1, headDim);
            float[] ex = new float[m], ey = new float[m];
            exponents(a.segment(), 0, ex);
            exponents(b.segment(), 0, ey);
            double sum = 0;
            for (int f = 0; f < m; f++) sum += Math.exp((double) ex[f] + ey[f]);
            return sum / m;
        }
    }
}
