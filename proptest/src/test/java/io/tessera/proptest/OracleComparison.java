package io.tessera.proptest;

import io.tessera.reference.DenseReference;
import io.tessera.tensor.Tensor;

/**
 * Error measures between an fp32 result and the float64 oracle, and the tolerance every
 * EXACT-contract variant is held to: 10× the error of the naive fp32 computation on the same
 * input, plus a floor for inputs where the naive computation happens to be (nearly) exact.
 */
final class OracleComparison {
    private OracleComparison() {}

    /** Absolute floor: a few fp32 ulps of values of order one. */
    static final double FLOOR = 1e-5;

    /** max |out − ref| over all elements; NaN anywhere counts as infinite error. */
    static double maxAbsError(Tensor out, double[] ref) {
        float[] o = out.contiguous(java.lang.foreign.Arena.ofAuto()).toArray();
        double worst = 0;
        for (int i = 0; i < o.length; i++) worst = Math.max(worst, diff(o[i], ref[i]));
        return worst;
    }

    static double maxAbsError(double[] approx, double[] ref) {
        double worst = 0;
        for (int i = 0; i < approx.length; i++) worst = Math.max(worst, diff(approx[i], ref[i]));
        return worst;
    }

    /** Equal infinities (a fully masked row's −∞ LSE) differ by 0; NaN or a finite/infinite mix by ∞. */
    private static double diff(double a, double b) {
        if (Double.isNaN(a) || Double.isNaN(b)) return Double.POSITIVE_INFINITY;
        if (Double.isInfinite(a) || Double.isInfinite(b)) return a == b ? 0 : Double.POSITIVE_INFINITY;
        return Math.abs(a - b);
    }

    /**
     * A priori bound on the output error of any fp32 schedule of attention: each score
     * {@code scale·q·k} rounded in fp32 is off by at most γ = (D+2)·2⁻²⁴·scale·Σ|q_d k_d|; scores off by
     * ≤ γ move each softmax weight by a factor within e^{±2γ}, so the output moves by at most
     * (e^{2γ}−1)·max|v|. The naive computation can be luckily exact on large logits, so EXACT
     * contracts allow the larger of 10× its error and this bound.
     */
    static double scoreRoundingBound(Tensor q, Tensor k, Tensor v, double scale) {
        int d = (int) q.size(3), group = (int) (q.size(1) / k.size(1));
        double maxV = 0;
        for (float x : v.toArray()) maxV = Math.max(maxV, Math.abs(x));
        double worstGamma = 0;
        for (int b = 0; b < q.size(0); b++) for (int h = 0; h < q.size(1); h++) for (int i = 0; i < q.size(2); i++) {
            for (int j = 0; j < k.size(2); j++) {
                double abs = 0;
                for (int x = 0; x < d; x++) abs += Math.abs((double) q.get(b, h, i, x) * k.get(b, h / group, j, x));
                worstGamma = Math.max(worstGamma, (d + 2) * 0x1p-24 * Math.abs(scale) * abs);
            }
        }
        return Math.expm1(2 * worstGamma) * maxV;
    }

    /** The output tolerance of an EXACT contract on this input. */
    static double outputTolerance(DenseReference.Result naive, DenseReference.Result oracle) {
        return 10 * maxAbsError(naive.output(), oracle.output()) + FLOOR;
    }

    /** The LSE tolerance of an EXACT contract; the floor is relative to the LSE's size (it grows with the logits). */
    static double lseTolerance(DenseReference.Result naive, DenseReference.Result oracle) {
        double scaleOfLse = 1;
        for (double x : oracle.logSumExp()) if (Double.isFinite(x)) scaleOfLse = Math.max(scaleOfLse, Math.abs(x));
        return 10 * maxAbsError(naive.logSumExp(), oracle.logSumExp()) + FLOOR * scaleOfLse;
    }

    /**
     * The tolerance of an EXACT-contract gradient: 10× the naive fp32 backward's error on the same
     * input, plus the floor relative to the gradient's size (gradients sum many terms and are not
     * of order one).
     */
    static double gradientTolerance(double[] naive, double[] oracle) {
        double size = 1;
        for (double x : oracle) size = Math.max(size, Math.abs(x));
        return 10 * maxAbsError(naive, oracle) + FLOOR * size;
    }
}
