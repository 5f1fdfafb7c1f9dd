package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
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
 * paper's numerical stabilizer. The projections ωᵀx are one GEMM per chunk of rows.
 */
final class RandomFeatures implements FeatureMap {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int m, headDim;
    private final Tensor omega;   // [m, D], pre-multiplied by D^(-1/4)

    RandomFeatures(int m, int headDim, boolean orthogonal, long seed) {
        if (m < 1) throw new IllegalArgumentException("features m must be >= 1, got " + m);
        this.m = m;
        this.headDim = headDim;
        this.omega = Tensor.zeros(Arena.ofAuto(), m, headDim);
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
                for (int c = 0; c < headDim; c++) omega.set((float) (block[r * headDim + c] * norm * scale), f0 + r, c);
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

    /** dst[r][f] = ωᵢᵀx'_r − ‖x'_r‖²/2: the exponents before any shift. */
    private void exponents(Backend backend, Tensor x, Tensor dst) {
        backend.gemm(x, false, omega, true, dst, 1f, 0f);
        MemorySegment src = x.segment(), out = dst.segment();
        for (int r = 0; r < x.size(0); r++) {
            long row = x.offset() + r * x.stride(0);
            float sq = 0;
            for (int c = 0; c < headDim; c++) { float v = src.getAtIndex(FLOAT, row + c); sq += v * v; }
            float half = (float) (0.5 * sq / Math.sqrt(headDim));   // ‖x'‖²/2 with x' = x·D^(-1/4)
            long o = dst.offset() + r * dst.stride(0);
            for (int f = 0; f < m; f++) out.setAtIndex(FLOAT, o + f, out.getAtIndex(FLOAT, o + f) - half);
        }
    }

    @Override
    public float keyShift(Backend backend, Tensor keys, Tensor scratch) {
        float max = Float.NEGATIVE_INFINITY;
        int chunk = (int) scratch.size(0);
        for (int r0 = 0; r0 < keys.size(0); r0 += chunk) {
            int rows = (int) Math.min(chunk, keys.size(0) - r0);
            Tensor e = scratch.slice(0, 0, rows);
            exponents(backend, keys.slice(0, r0, r0 + rows), e);
            for (float v : e.toArray()) max = Math.max(max, v);
        }
        return max;
    }

    @Override
    public void apply(Backend backend, Tensor x, boolean query, float keyShift, Tensor dst) {
        exponents(backend, x, dst);
        float norm = (float) (1 / Math.sqrt(m));
        MemorySegment out = dst.segment();
        for (int r = 0; r < x.size(0); r++) {
            long o = dst.offset() + r * dst.stride(0);
            float shift = keyShift;
            if (query) {
                shift = Float.NEGATIVE_INFINITY;
                for (int f = 0; f < m; f++) shift = Math.max(shift, out.getAtIndex(FLOAT, o + f));
            }
            for (int f = 0; f < m; f++) out.setAtIndex(FLOAT, o + f, norm * (float) Math.exp(out.getAtIndex(FLOAT, o + f) - shift));
        }
    }
}
