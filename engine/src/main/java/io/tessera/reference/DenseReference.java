package io.tessera.reference;

import io.tessera.backend.AttentionShape;
import io.tessera.pattern.MaskFunction;
import io.tessera.tensor.Tensor;

/**
 * The float64 oracle every variant and backend is tested against:
 * {@code softmax(scale·QKᵀ + mask)·V} with a max-subtracted softmax, computed row by row in
 * double precision. Slow on purpose (O(B·H·Nq·Nkv·D), no tiling, no tricks): it is the
 * specification, not an implementation to optimise.
 *
 * <p>Fully masked rows produce an output of 0 and a log-sum-exp of −∞, never NaN.
 */
public final class DenseReference {
    private DenseReference() {}

    /** Output {@code [B,H,Nq,Dv]} and log-sum-exp {@code [B,H,Nq]}, row-major, in float64. */
    public record Result(AttentionShape shape, double[] output, double[] logSumExp) {
        public double output(int b, int h, int i, int d) {
            return output[(((b * shape.heads()) + h) * shape.qLen() + i) * shape.valueDim() + d];
        }

        public double logSumExp(int b, int h, int i) {
            return logSumExp[((b * shape.heads()) + h) * shape.qLen() + i];
        }
    }

    /** Unmasked attention with scale 1/√D. */
    public static Result attention(Tensor q, Tensor k, Tensor v) {
        return attention(q, k, v, MaskFunction.all(), Double.NaN);
    }

    /**
     * Masked attention. {@code scale} NaN means 1/√D.
     */
    public static Result attention(Tensor q, Tensor k, Tensor v, MaskFunction mask, double scale) {
        if (mask == null) throw new NullPointerException("mask");
        AttentionShape s = AttentionShape.of(q, k, v);
        if (!Double.isNaN(scale) && !(Double.isFinite(scale))) throw new IllegalArgumentException("scale must be finite, got " + scale);
        double sc = Double.isNaN(scale) ? 1.0 / Math.sqrt(s.headDim()) : scale;
        long outSize = (long) s.batch() * s.heads() * s.qLen();
        if (outSize * Math.max(1, s.valueDim()) > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("the oracle holds its output in one array; shape " + s + " is too large");
        }
        double[] out = new double[(int) outSize * s.valueDim()];
        double[] lse = new double[(int) outSize];
        double[] scores = new double[s.kvLen()];
        double[] qi = new double[s.headDim()];
        double[][] kRows = new double[s.kvLen()][s.headDim()];
        double[][] vRows = new double[s.kvLen()][s.valueDim()];
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0; h < s.heads(); h++) {
                int hk = s.kvHeadOf(h);
                for (int j = 0; j < s.kvLen(); j++) {
                    for (int d = 0; d < s.headDim(); d++) kRows[j][d] = k.get(b, hk, j, d);
                    for (int d = 0; d < s.valueDim(); d++) vRows[j][d] = v.get(b, hk, j, d);
                }
                for (int i = 0; i < s.qLen(); i++) {
                    for (int d = 0; d < s.headDim(); d++) qi[d] = q.get(b, h, i, d);
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < s.kvLen(); j++) {
                        if (!mask.allowed(b, h, i, j)) {
                            scores[j] = Double.NEGATIVE_INFINITY;
                            continue;
                        }
                        double dot = 0;
                        for (int d = 0; d < s.headDim(); d++) dot += qi[d] * kRows[j][d];
                        scores[j] = dot * sc;
                        max = Math.max(max, scores[j]);
                    }
                    int row = (b * s.heads() + h) * s.qLen() + i;
                    if (max == Double.NEGATIVE_INFINITY) {
                        lse[row] = Double.NEGATIVE_INFINITY;   // output row stays 0
                        continue;
                    }
                    double sum = 0;
                    for (int j = 0; j < s.kvLen(); j++) {
                        double p = scores[j] == Double.NEGATIVE_INFINITY ? 0 : Math.exp(scores[j] - max);
                        scores[j] = p;
                        sum += p;
                    }
                    int o = row * s.valueDim();
                    for (int j = 0; j < s.kvLen(); j++) {
                        double p = scores[j] / sum;
                        if (p == 0) continue;
                        for (int d = 0; d < s.valueDim(); d++) out[o + d] += p * vRows[j][d];
                    }
                    lse[row] = max + Math.log(sum);
                }
            }
        }
        return new Result(s, out, lse);
    }

    /**
     * The same computation in float32 with a naive three-pass algorithm: the "error of plain fp32
     * attention" that fp32 kernels are allowed a small multiple of. Same shape of result.
     */
    public static Result naiveFloat32(Tensor q, Tensor k, Tensor v, MaskFunction mask, double scale) {
        AttentionShape s = AttentionShape.of(q, k, v);
        float sc = (float) (Double.isNaN(scale) ? 1.0 / Math.sqrt(s.headDim()) : scale);
        int rows = s.batch() * s.heads() * s.qLen();
        double[] out = new double[rows * s.valueDim()];
        double[] lse = new double[rows];
        float[] scores = new float[s.kvLen()];
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0; h < s.heads(); h++) {
                int hk = s.kvHeadOf(h);
                for (int i = 0; i < s.qLen(); i++) {
                    float max = Float.NEGATIVE_INFINITY;
                    for (int j = 0; j < s.kvLen(); j++) {
                        if (!mask.allowed(b, h, i, j)) { scores[j] = Float.NEGATIVE_INFINITY; continue; }
                        float dot = 0;
                        for (int d = 0; d < s.headDim(); d++) dot += q.get(b, h, i, d) * k.get(b, hk, j, d);
                        scores[j] = dot * sc;
                        max = Math.max(max, scores[j]);
                    }
                    int row = (b * s.heads() + h) * s.qLen() + i;
                    if (max == Float.NEGATIVE_INFINITY) { lse[row] = Double.NEGATIVE_INFINITY; continue; }
                    float sum = 0;
                    for (int j = 0; j < s.kvLen(); j++) {
                        scores[j] = scores[j] == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(scores[j] - max);
                        sum += scores[j];
                    }
                    for (int d = 0; d < s.valueDim(); d++) {
                        float acc = 0;
                        for (int j = 0; j < s.kvLen(); j++) acc += scores[j] * v.get(b, hk, j, d);
                        out[row * s.valueDim() + d] = acc / sum;
                    }
                    lse[row] = max + (float) Math.log(sum);
                }
            }
        }
        return new Result(s, out, lse);
    }

    /**
     * Gradients of {@code L} with respect to q {@code [B,H,Nq,D]}, k {@code [B,Hkv,Nkv,D]} and v
     * {@code [B,Hkv,Nkv,Dv]}, row-major, for a loss whose gradient with respect to the output is
     * {@code dOut}.
     */
    public record Gradients(AttentionShape shape, double[] dq, double[] dk, double[] dv) {}

    /**
     * Analytic gradients of masked attention in float64: with P = softmax(scale·QKᵀ + mask),
     * dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q;
     * grouped-query heads sum dK and dV over the query heads sharing a key/value head. Fully masked
     * rows contribute nothing. The forward pass is recomputed here in float64, independently of any
     * kernel's output. {@code scale} NaN means 1/√D.
     */
    public static Gradients gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, double scale) {
        return gradients(q, k, v, dOut, mask, scale, false);
    }

    /**
     * The same gradients computed naively in float32 (probabilities materialized per row, plain
     * sums): the error budget of an fp32 backward pass, as {@link #naiveFloat32} is the forward's.
     */
    public static Gradients naiveFloat32Gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, double scale) {
        return gradients(q, k, v, dOut, mask, scale, true);
    }

    private static Gradients gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, double scale, boolean float32) {
        if (mask == null) throw new NullPointerException("mask");
        if (dOut == null) throw new NullPointerException("dOut");
        AttentionShape s = AttentionShape.of(q, k, v);
        s.checkOutput("dOut", dOut, s.outputShape());
        if (!Double.isNaN(scale) && !Double.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        double sc = Double.isNaN(scale) ? 1.0 / Math.sqrt(s.headDim()) : scale;
        if (float32) sc = (float) sc;
        int d = s.headDim(), dv = s.valueDim(), nq = s.qLen(), nkv = s.kvLen();
        long qSize = (long) s.batch() * s.heads() * nq * d, kSize = (long) s.batch() * s.kvHeads() * nkv * Math.max(d, dv);
        if (qSize > Integer.MAX_VALUE - 8 || kSize > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("the oracle holds its gradients in arrays; shape " + s + " is too large");
        }
        double[] dq = new double[(int) qSize];
        double[] dk = new double[s.batch() * s.kvHeads() * nkv * d];
        double[] dvOut = new double[s.batch() * s.kvHeads() * nkv * dv];
        double[] p = new double[nkv], dp = new double[nkv], o = new double[dv];
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0; h < s.heads(); h++) {
                int hk = s.kvHeadOf(h);
                for (int i = 0; i < nq; i++) {
                    // Probabilities of row i.
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < nkv; j++) {
                        if (!mask.allowed(b, h, i, j)) { p[j] = Double.NEGATIVE_INFINITY; continue; }
                        double dot = 0;
                        for (int x = 0; x < d; x++) dot = round(float32, dot + round(float32, (double) q.get(b, h, i, x) * k.get(b, hk, j, x)));
                        p[j] = round(float32, dot * sc);
                        max = Math.max(max, p[j]);
                    }
                    if (max == Double.NEGATIVE_INFINITY) continue;   // fully masked: zero gradients
                    double sum = 0;
                    for (int j = 0; j < nkv; j++) {
                        p[j] = p[j] == Double.NEGATIVE_INFINITY ? 0 : round(float32, Math.exp(p[j] - max));
                        sum = round(float32, sum + p[j]);
                    }
                    for (int j = 0; j < nkv; j++) p[j] = round(float32, p[j] / sum);
                    // O_i, delta = dO_i · O_i, dP_ij = dO_i · v_j.
                    java.util.Arrays.fill(o, 0);
                    for (int j = 0; j < nkv; j++) {
                        if (p[j] == 0) continue;
                        for (int x = 0; x < dv; x++) o[x] = round(float32, o[x] + round(float32, p[j] * v.get(b, hk, j, x)));
                    }
                    double delta = 0;
                    for (int x = 0; x < dv; x++) delta = round(float32, delta + round(float32, dOut.get(b, h, i, x) * o[x]));
                    for (int j = 0; j < nkv; j++) {
                        if (p[j] == 0) continue;
                        double dot = 0;
                        for (int x = 0; x < dv; x++) dot = round(float32, dot + round(float32, (double) dOut.get(b, h, i, x) * v.get(b, hk, j, x)));
                        dp[j] = dot;
                    }
                    int qRow = ((b * s.heads() + h) * nq + i) * d;
                    for (int j = 0; j < nkv; j++) {
                        if (p[j] == 0) continue;
                        double ds = round(float32, p[j] * round(float32, dp[j] - delta));
                        int kRow = ((b * s.kvHeads() + hk) * nkv + j) * d, vRow = ((b * s.kvHeads() + hk) * nkv + j) * dv;
                        for (int x = 0; x < d; x++) {
                            dq[qRow + x] = round(float32, dq[qRow + x] + round(float32, round(float32, ds * sc) * k.get(b, hk, j, x)));
                            dk[kRow + x] = round(float32, dk[kRow + x] + round(float32, round(float32, ds * sc) * q.get(b, h, i, x)));
                        }
                        for (int x = 0; x < dv; x++) dvOut[vRow + x] = round(float32, dvOut[vRow + x] + round(float32, p[j] * dOut.get(b, h, i, x)));
                    }
                }
            }
        }
        return new Gradients(s, dq, dk, dvOut);
    }

    private static double round(boolean float32, double x) {
        return float32 ? (float) x : x;
    }
}
