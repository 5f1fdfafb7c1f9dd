package io.tessera.reference;

import io.tessera.pattern.MaskFunction;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * The error an fp32 result may have against the float64 oracle ({@link DenseReference}) under an
 * EXACT accuracy contract, and the one error measure every test, benchmark check and document uses.
 *
 * <p>The EXACT rule: output error ≤ max(10 × the error of the naive fp32 computation on the same
 * input, the score-rounding bound) + {@link #FLOOR}; LSE error ≤ 10 × the naive LSE error +
 * {@link #FLOOR} × max(1, max|LSE|). Ten times the naive error leaves room for a different
 * summation order and the kernels' exp approximations; the score-rounding bound covers inputs on
 * which the naive computation happens to be exact (large logits); the floor covers outputs whose
 * naive error is zero.
 *
 * @param output    tolerance for max |out − oracle|
 * @param logSumExp tolerance for max |lse − oracle lse|
 */
public record Tolerance(double output, double logSumExp) {

    /** Absolute floor: a few fp32 ulps of values of order one. */
    public static final double FLOOR = 1e-5;

    /** The EXACT tolerance for this input; computes the naive fp32 result itself. {@code scale} NaN means 1/√D. */
    public static Tolerance exact(Tensor q, Tensor k, Tensor v, MaskFunction mask, double scale, DenseReference.Result oracle) {
        return exact(q, k, v, scale, DenseReference.naiveFloat32(q, k, v, mask, scale), oracle);
    }

    /** The EXACT tolerance for this input, given the naive fp32 result and the oracle on it. {@code scale} NaN means 1/√D. */
    public static Tolerance exact(Tensor q, Tensor k, Tensor v, double scale, DenseReference.Result naive, DenseReference.Result oracle) {
        double output = Math.max(10 * maxError(naive.output(), oracle.output()), scoreRoundingBound(q, k, v, scale)) + FLOOR;
        double lseSize = 1;
        for (double x : oracle.logSumExp()) if (Double.isFinite(x)) lseSize = Math.max(lseSize, Math.abs(x));
        return new Tolerance(output, 10 * maxError(naive.logSumExp(), oracle.logSumExp()) + FLOOR * lseSize);
    }

    /**
     * The tolerance of an EXACT-contract gradient (dq, dk or dv): 10× the naive fp32 backward's error
     * on the same input, plus the floor relative to the gradient's size (gradients sum many terms and
     * are not of order one).
     */
    public static double gradient(double[] naive, double[] oracle) {
        double size = 1;
        for (double x : oracle) size = Math.max(size, Math.abs(x));
        return 10 * maxError(naive, oracle) + FLOOR * size;
    }

    /**
     * A priori bound on the output error of any fp32 schedule of attention: each score
     * {@code scale·q·k} rounded in fp32 is off by at most γ = (D+2)·2⁻²⁴·scale·Σ|q_d k_d|; scores off by
     * ≤ γ move each softmax weight by a factor within e^{±2γ}, so the output moves by at most
     * (e^{2γ}−1)·max|v|. {@code scale} NaN means 1/√D.
     */
    public static double scoreRoundingBound(Tensor q, Tensor k, Tensor v, double scale) {
        int d = (int) q.size(3), queryHeadsPerKvHead = (int) (q.size(1) / k.size(1));
        double sc = Double.isNaN(scale) ? 1 / Math.sqrt(d) : scale;
        double maxV = 0;
        for (float x : v.contiguous(Arena.ofAuto()).toArray()) maxV = Math.max(maxV, Math.abs(x));
        double worstGamma = 0;
        int kvLen = Math.toIntExact(k.size(2));
        float[] qRow = new float[d];
        float[] kRows = null;   // [kvLen][d]: a key/value head's rows, read once for the query heads that share it
        for (int b = 0; b < q.size(0); b++) for (int h = 0, loaded = -1; h < q.size(1); h++) {
            int hk = h / queryHeadsPerKvHead;
            if (hk != loaded) kRows = DenseReference.headRows(k, b, hk);
            loaded = hk;
            for (int i = 0; i < q.size(2); i++) {
                for (int x = 0; x < d; x++) qRow[x] = q.get(b, h, i, x);
                for (int j = 0; j < kvLen; j++) {
                    double abs = 0;
                    for (int x = 0; x < d; x++) abs += Math.abs((double) qRow[x] * kRows[j * d + x]);
                    worstGamma = Math.max(worstGamma, (d + 2) * 0x1p-24 * Math.abs(sc) * abs);
                }
            }
        }
        return Math.expm1(2 * worstGamma) * maxV;
    }

    /**
     * The EXACT contract of one output element stored in {@code type}: the float32 result is within
     * {@code tolerance} of the oracle {@code reference} (the kernels accumulate in float32 whatever the
     * storage), and rounding it to the type once moves it by at most half an ulp: the unit roundoff
     * times its magnitude (≤ |reference| + tolerance), or half the smallest subnormal spacing of the
     * type below its normal range (float16: 2^−25). Inputs are compared on the same (rounded) values.
     */
    public static double stored(ElementType type, double tolerance, double reference) {
        if (type == ElementType.F32) return tolerance;
        double halfSubnormalSpacing = type == ElementType.F16 ? 0x1p-25 : 0x1p-134;
        return tolerance + type.unitRoundoff() * (Math.abs(reference) + tolerance) + halfSubnormalSpacing;
    }

    /** Whether an output error and an LSE error (NaN when not measured) are within this tolerance. */
    public boolean admits(double outputError, double lseError) {
        return outputError <= output && (Double.isNaN(lseError) || lseError <= logSumExp);
    }

    /** max |got − ref| over all elements of {@code got} (any strides, row-major order). */
    public static double maxError(Tensor got, double[] ref) {
        return maxError(got.contiguous(Arena.ofAuto()).toArray(), ref);
    }

    /** max |got − ref|; NaN anywhere counts as infinite error, equal infinities (a masked row's −∞ LSE) as 0. */
    public static double maxError(float[] got, double[] ref) {
        checkLengths(got.length, ref.length);
        double worst = 0;
        for (int i = 0; i < got.length; i++) worst = Math.max(worst, diff(got[i], ref[i]));
        return worst;
    }

    /** max |got − ref|, as {@link #maxError(float[], double[])}. */
    public static double maxError(double[] got, double[] ref) {
        checkLengths(got.length, ref.length);
        double worst = 0;
        for (int i = 0; i < got.length; i++) worst = Math.max(worst, diff(got[i], ref[i]));
        return worst;
    }

    private static void checkLengths(int got, int ref) {
        if (got != ref) throw new IllegalArgumentException("got has " + got + " elements, the reference " + ref);
    }

    private static double diff(double a, double b) {
        if (Double.isNaN(a) || Double.isNaN(b)) return Double.POSITIVE_INFINITY;
        if (Double.isInfinite(a) || Double.isInfinite(b)) return a == b ? 0 : Double.POSITIVE_INFINITY;
        return Math.abs(a - b);
    }
}
