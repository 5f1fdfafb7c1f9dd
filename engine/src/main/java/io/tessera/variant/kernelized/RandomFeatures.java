package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * FAVOR+ positive random features (Choromanski et al. 2021, "Rethinking Attention with
 * Performers"): φ(x) = exp(ωᵢᵀx' − ‖x'‖²/2 − shift)/√m with x' = x·D^(−1/4), so that
 * E[φ(q)·φ(k)] = exp(qᵀk/√D) (up to the shifts, which cancel in the normalized ratio). With
 * {@code orthogonal}, ω come in blocks of D mutually orthogonal rows with χ(D)-distributed norms.
 * The projections ωᵀx are one GEMM per chunk of rows; {@link FeatureAttention} applies the exponential
 * with its stabilizing shifts (which, for causal attention, never look at a later key).
 */
final class RandomFeatures implements FeatureMap {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int m, headDim;
    private final Tensor omega;   // [m, D], pre-multiplied by D^(-1/4)
    /** ω transposed and contiguous, [D, m]: the projection's right operand with unit-stride rows, which the GEMM packs with vector loads. */
    private final Tensor omegaColumns;
    private final double largestRowNorm;

    RandomFeatures(int m, int headDim, boolean orthogonal, long seed) {
        if (m < 1) throw new IllegalArgumentException("features m must be >= 1, got " + m);
        if (headDim < 1) throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        this.m = m;
        this.headDim = headDim;
        // A block holds min(m, D) rows of D: the rows Gram–Schmidt needs, never a D×D square.
        Checks.intProduct("Performer projection ω: features m·headDim", m, headDim);
        double[] block = new double[Checks.intProduct("Performer features m·headDim (one block of random features)", Math.min(m, headDim), headDim)];
        this.omega = Tensor.zeros(Arena.ofAuto(), m, headDim);
        SplittableRandom random = new SplittableRandom(seed);
        double scale = Math.pow(headDim, -0.25);
        for (int f0 = 0; f0 < m; f0 += headDim) {
            int rows = Math.min(headDim, m - f0);
            for (int i = 0; i < rows * headDim; i++) block[i] = random.nextGaussian();
            if (orthogonal) orthonormalize(block, rows, headDim);
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
        this.omegaColumns = omega.transpose(0, 1).contiguous(Arena.ofAuto());
        float[] rows = omega.toArray();
        double largest = 0;
        for (int f = 0; f < m; f++) {
            double sq = 0;
            for (int c = 0; c < headDim; c++) { double x = rows[f * headDim + c]; sq += x * x; }
            largest = Math.max(largest, sq);
        }
        this.largestRowNorm = Math.sqrt(largest);
    }

    /** Gram–Schmidt on the first {@code rows} (≤ d) rows of length d, in place. */
    private static void orthonormalize(double[] a, int rows, int d) {
        for (int r = 0; r < rows; r++) {
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

    /** ω, [m, D], pre-multiplied by D^(−1/4). */
    Tensor omega() { return omega; }

    @Override public int features(int d) {
        if (d != headDim) throw new IllegalArgumentException("features were drawn for headDim=" + headDim + ", input has headDim=" + d);
        return m;
    }

    @Override public boolean exponential() { return true; }

    /**
     * dst[r][f] = ωᵢᵀx'_r − ‖x'_r‖²/2: the exponents, so φ(x)_f = exp(dst[r][f])/√m. The constant
     * 1/√m cancels in the attention ratio and is left out.
     */
    @Override
    public void preActivations(Backend backend, Tensor x, Tensor dst) {
        backend.gemm(x, false, omegaColumns, false, dst, 1f, 0f);
        MemorySegment out = dst.segment();
        float[] row = new float[m];   // one row at a time on the heap: a MemorySegment access costs a bounds and liveness check
        int rows = (int) x.size(0);
        double[] norms = squaredNorms(x, rows);
        for (int r = 0; r < rows; r++) {
            float half = halfOf(norms[r]);
            long o = (dst.offset() + r * dst.stride(0)) * Float.BYTES;
            MemorySegment.copy(out, FLOAT, o, row, 0, m);
            for (int f = 0; f < m; f++) row[f] -= half;
            MemorySegment.copy(row, 0, out, FLOAT, o, m);
        }
    }

    /**
     * The same values as {@link #preActivations(Backend, Tensor, Tensor)}, operation for
     * operation: the projection into {@code scratch}, one bulk copy into dst, and each row's
     * ‖x'‖²/2 ({@link FeatureKernels#squaredNorms} of the rows copied to the heap) subtracted there.
     */
    @Override
    public void preActivations(Backend backend, Tensor x, Tensor scratch, float[] dst) {
        backend.gemm(x, false, omegaColumns, false, scratch, 1f, 0f);
        int rows = (int) x.size(0);
        MemorySegment.copy(scratch.segment(), FLOAT, scratch.offset() * Float.BYTES, dst, 0, rows * m);
        double[] norms = squaredNorms(x, rows);
        for (int r = 0; r < rows; r++) {
            float half = halfOf(norms[r]);
            for (int f = r * m, end = f + m; f < end; f++) dst[f] -= half;
        }
    }

    /** Per-thread heap rows and norms of both {@code preActivations}. */
    private static final class NormScratch {
        float[] rows = new float[0];
        double[] norms = new double[0];
    }

    private static final ThreadLocal<NormScratch> NORMS = ThreadLocal.withInitial(NormScratch::new);

    /**
     * ‖x_r‖² of the first {@code rows} rows of x ({@link FeatureKernels#squaredNorms} of the rows
     * copied to the heap), in the calling thread's scratch: valid until its next call on this thread.
     */
    private double[] squaredNorms(Tensor x, int rows) {
        NormScratch w = NORMS.get();
        if (w.rows.length < rows * headDim) w.rows = new float[rows * headDim];
        if (w.norms.length < rows) w.norms = new double[rows];
        FeatureKernels.copyRows(x, rows, headDim, w.rows);
        FeatureKernels.squaredNorms(w.rows, rows, headDim, w.norms);
        return w.norms;
    }

    /**
     * −‖x'_r‖²/2 of the rows of x {@code [rows, D]} into {@code dst[0, rows)}, rounded as in
     * {@link #preActivations}; returns the largest ‖x_r‖² (NaN when a row has a NaN).
     */
    double negativeHalfNorms(Tensor x, int rows, float[] dst) {
        double[] norms = squaredNorms(x, rows);
        for (int r = 0; r < rows; r++) dst[r] = -halfOf(norms[r]);
        return largest(norms, rows);
    }

    /** The largest ‖x_r‖² of the rows of x {@code [rows, D]} (NaN when a row has a NaN). */
    double largestSquaredNorm(Tensor x, int rows) {
        return largest(squaredNorms(x, rows), rows);
    }

    /** The largest of {@code values[0, count)} and 0; NaN when one is NaN (Math.max keeps a NaN). */
    private static double largest(double[] values, int count) {
        double largest = 0;
        for (int i = 0; i < count; i++) largest = Math.max(largest, values[i]);
        return largest;
    }

    /** The largest Euclidean norm of a row of ω (rows pre-scaled by D^(−1/4)). */
    double largestRowNorm() { return largestRowNorm; }

    /** ‖x'‖²/2 = ‖x‖²/(2√D) (x' = x·D^(−1/4)) from the squared norm in double, rounded once. */
    private float halfOf(double squaredNorm) {
        return (float) (0.5 * squaredNorm / Math.sqrt(headDim));
    }

    /**
     * The projections alone: ‖x'‖²/2 is constant over a row, and the forward pass's query weights
     * are normalized per row (see {@link FeatureMap#queryPreActivations}); it was a tenth of the
     * element-wise work of a Performer forward.
     */
    @Override
    public void queryPreActivations(Backend backend, Tensor x, Tensor scratch, float[] dst) {
        backend.gemm(x, false, omegaColumns, false, scratch, 1f, 0f);
        MemorySegment.copy(scratch.segment(), FLOAT, scratch.offset() * Float.BYTES, dst, 0, (int) x.size(0) * m);
    }

    /**
     * u_f = ω_f·x − ‖x‖²/(2√D) (ω pre-multiplied by D^(−1/4)), so ∂u_f/∂x = ω_f − x/√D and
     * dx = du·ω − x·(Σ_f du_f)/√D: one GEMM and a row correction.
     */
    @Override
    public void preActivationsBackward(Backend backend, Tensor x, Tensor du, Tensor dx, boolean accumulate) {
        backend.gemm(du, false, omega, false, dx, 1f, accumulate ? 1f : 0f);
        MemorySegment src = x.segment(), g = du.segment(), out = dx.segment();
        double invSqrtD = 1 / Math.sqrt(headDim);
        for (int r = 0; r < x.size(0); r++) {
            long gr = du.offset() + r * du.stride(0);
            double sum = 0;
            for (int f = 0; f < m; f++) sum += g.getAtIndex(FLOAT, gr + f);
            float factor = (float) (sum * invSqrtD);
            long xr = x.offset() + r * x.stride(0), o = dx.offset() + r * dx.stride(0);
            for (int c = 0; c < headDim; c++) out.setAtIndex(FLOAT, o + c, out.getAtIndex(FLOAT, o + c) - factor * src.getAtIndex(FLOAT, xr + c));
        }
    }

    /** The plain features φ(x)_f = exp(ωᵢᵀx' − ‖x'‖²/2)/√m, unscaled (for tests of the estimator). */
    void features(Backend backend, Tensor x, Tensor dst) {
        preActivations(backend, x, dst);
        float norm = (float) (1 / Math.sqrt(m));
        MemorySegment out = dst.segment();
        for (int r = 0; r < x.size(0); r++) {
            long o = dst.offset() + r * dst.stride(0);
            for (int f = 0; f < m; f++) out.setAtIndex(FLOAT, o + f, norm * (float) Math.exp(out.getAtIndex(FLOAT, o + f)));
        }
    }
}
