package io.tessera.reference;

import io.tessera.backend.AttentionShape;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

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
    /**
     * Rows [0, len) of head {@code head} of batch item {@code b} of a [B, H, len, width] tensor, row
     * after row, as floats: one bulk read instead of an element-by-element {@code get} (its varargs
     * index and bounds checks made reading a 32K-token cache most of the decode oracle's seconds).
     */
    static float[] headRows(Tensor t, int b, int head) {
        return t.slice(0, b, b + 1).slice(1, head, head + 1).toArray();
    }

    public static Result attention(Tensor q, Tensor k, Tensor v) {
        return attention(q, k, v, MaskFunction.all(), Double.NaN);
    }

    /**
     * Masked attention. {@code scale} NaN means 1/√D.
     */
    public static Result attention(Tensor q, Tensor k, Tensor v, MaskFunction mask, double scale) {
        return attention(q, k, v, mask, scale, null);
    }

    /**
     * Masked attention with a score modifier (null: none) applied to each allowed score
     * {@code scale·q·k} in float64, natural units (its float64 specification, {@link ScoreMod.Plan#apply}).
     */
    public static Result attention(Tensor q, Tensor k, Tensor v, MaskFunction mask, double scale, ScoreMod mod) {
        if (mask == null) throw new NullPointerException("mask");
        AttentionShape s = AttentionShape.of(q, k, v);
        ScoreMod.Plan plan = mod == null ? null : mod.plan(s.heads(), s.qLen(), s.kvLen(), 0);
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
        int dk = s.headDim(), dv = s.valueDim();
        float[] kRows = null, vRows = null;   // [kvLen][dk], [kvLen][dv] of the current key/value head
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0, loaded = -1; h < s.heads(); h++) {
                int hk = s.kvHeadOf(h);
                // Query heads that share a key/value head are consecutive: its rows are read once for them.
                if (hk != loaded) {
                    kRows = headRows(k, b, hk);
                    vRows = headRows(v, b, hk);
                }
                loaded = hk;
                for (int i = 0; i < s.qLen(); i++) {
                    for (int d = 0; d < s.headDim(); d++) qi[d] = q.get(b, h, i, d);
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < s.kvLen(); j++) {
                        if (!mask.allowed(b, h, i, j)) {
                            scores[j] = Double.NEGATIVE_INFINITY;
                            continue;
                        }
                        double dot = 0;
                        for (int d = 0; d < dk; d++) dot += qi[d] * kRows[j * dk + d];
                        scores[j] = modified(plan, b, h, i, j, dot * sc);
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
                        for (int d = 0; d < dv; d++) out[o + d] += p * vRows[j * dv + d];
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
        return naiveFloat32(q, k, v, mask, scale, null);
    }

    /** {@link #naiveFloat32} with a score modifier, each step's result rounded to float. */
    public static Result naiveFloat32(Tensor q, Tensor k, Tensor v, MaskFunction mask, double scale, ScoreMod mod) {
        AttentionShape s = AttentionShape.of(q, k, v);
        ScoreMod.Plan plan = mod == null ? null : mod.plan(s.heads(), s.qLen(), s.kvLen(), 0);
        float sc = (float) (Double.isNaN(scale) ? 1.0 / Math.sqrt(s.headDim()) : scale);
        int rows = s.batch() * s.heads() * s.qLen();
        double[] out = new double[rows * s.valueDim()];
        double[] lse = new double[rows];
        float[] scores = new float[s.kvLen()];
        // The inputs' float values read into arrays once per key/value head and query row (the same
        // floats, the same operations in the same order as reading them element by element).
        float[] qRow = new float[s.headDim()];
        int dk = s.headDim(), dv = s.valueDim();
        float[] kRows = null, vRows = null;   // [kvLen][dk], [kvLen][dv] of the current key/value head
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0, loaded = -1; h < s.heads(); h++) {
                int hk = s.kvHeadOf(h);
                if (hk != loaded) {
                    kRows = headRows(k, b, hk);
                    vRows = headRows(v, b, hk);
                }
                loaded = hk;
                for (int i = 0; i < s.qLen(); i++) {
                    for (int d = 0; d < s.headDim(); d++) qRow[d] = q.get(b, h, i, d);
                    float max = Float.NEGATIVE_INFINITY;
                    for (int j = 0; j < s.kvLen(); j++) {
                        if (!mask.allowed(b, h, i, j)) { scores[j] = Float.NEGATIVE_INFINITY; continue; }
                        float dot = 0;
                        for (int d = 0; d < dk; d++) dot += qRow[d] * kRows[j * dk + d];
                        scores[j] = dot * sc;
                        if (plan != null) for (int st = 0; st < plan.steps(); st++) scores[j] = (float) plan.apply(st, b, h, i, j, scores[j]);
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
                        for (int j = 0; j < s.kvLen(); j++) acc += scores[j] * vRows[j * dv + d];
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
    public record Gradients(AttentionShape shape, double[] dq, double[] dk, double[] dv, List<double[]> dParameters) {
        public Gradients(AttentionShape shape, double[] dq, double[] dk, double[] dv) {
            this(shape, dq, dk, dv, List.of());
        }
    }

    /**
     * Analytic gradients of masked attention in float64: with P = softmax(scale·QKᵀ + mask),
     * dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q;
     * grouped-query heads sum dK and dV over the query heads sharing a key/value head. Fully masked
     * rows contribute nothing. The forward pass is recomputed here in float64, independently of any
     * kernel's output. {@code scale} NaN means 1/√D.
     */
    public static Gradients gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, double scale) {
        return gradients(q, k, v, dOut, mask, scale, null, false);
    }

    /**
     * The same gradients through a score modifier (null: none): dS of each score is carried back
     * through the modifier's steps, last first (times each step's derivative), and a learnable
     * table's gradient, {@code dParameters} (row-major, shaped like {@link ScoreMod#parameters}),
     * sums the gradient reaching each of its entries.
     */
    public static Gradients gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, double scale, ScoreMod mod) {
        return gradients(q, k, v, dOut, mask, scale, mod, false);
    }

    /**
     * The same gradients computed naively in float32 (probabilities materialized per row, plain
     * sums): the error budget of an fp32 backward pass, as {@link #naiveFloat32} is the forward's.
     */
    public static Gradients naiveFloat32Gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, double scale) {
        return gradients(q, k, v, dOut, mask, scale, null, true);
    }

    /** {@link #naiveFloat32Gradients} through a score modifier. */
    public static Gradients naiveFloat32Gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, double scale, ScoreMod mod) {
        return gradients(q, k, v, dOut, mask, scale, mod, true);
    }

    private static double modified(ScoreMod.Plan plan, int b, int h, int i, int j, double score) {
        if (plan != null) for (int st = 0; st < plan.steps(); st++) score = plan.apply(st, b, h, i, j, score);
        return score;
    }

    private static Gradients gradients(Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, double scale, ScoreMod mod, boolean float32) {
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
        ScoreMod.Plan plan = mod == null ? null : mod.plan(s.heads(), nq, nkv, 0);
        int steps = plan == null ? 0 : plan.steps();
        double[][] inputs = new double[steps][nkv];   // each step's input score, per key of the row
        List<double[]> dParameters = new ArrayList<>();
        if (mod != null) for (Tensor t : mod.parameters()) dParameters.add(new double[Math.toIntExact(t.elementCount())]);
        // The inputs' floats in row-major arrays, read once (element-wise reads in the loops below cost
        // most of the time at the property tests' sizes); the arithmetic is unchanged.
        float[] qa = q.toArray(), ka = k.toArray(), va = v.toArray(), da = dOut.toArray();
        for (int b = 0; b < s.batch(); b++) {
            for (int h = 0; h < s.heads(); h++) {
                int hk = s.kvHeadOf(h);
                for (int i = 0; i < nq; i++) {
                    int qAt = ((b * s.heads() + h) * nq + i) * d, dAt = ((b * s.heads() + h) * nq + i) * dv;
                    // Probabilities of row i.
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < nkv; j++) {
                        if (!mask.allowed(b, h, i, j)) { p[j] = Double.NEGATIVE_INFINITY; continue; }
                        double dot = 0;
                        int kAt = ((b * s.kvHeads() + hk) * nkv + j) * d;
                        for (int x = 0; x < d; x++) dot = round(float32, dot + round(float32, (double) qa[qAt + x] * ka[kAt + x]));
                        p[j] = round(float32, dot * sc);
                        for (int st = 0; st < steps; st++) {
                            inputs[st][j] = p[j];
                            p[j] = round(float32, plan.apply(st, b, h, i, j, p[j]));
                        }
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
                        int vAt = ((b * s.kvHeads() + hk) * nkv + j) * dv;
                        for (int x = 0; x < dv; x++) o[x] = round(float32, o[x] + round(float32, p[j] * va[vAt + x]));
                    }
                    double delta = 0;
                    for (int x = 0; x < dv; x++) delta = round(float32, delta + round(float32, da[dAt + x] * o[x]));
                    for (int j = 0; j < nkv; j++) {
                        if (p[j] == 0) continue;
                        double dot = 0;
                        int vAt = ((b * s.kvHeads() + hk) * nkv + j) * dv;
                        for (int x = 0; x < dv; x++) dot = round(float32, dot + round(float32, (double) da[dAt + x] * va[vAt + x]));
                        dp[j] = dot;
                    }
                    int qRow = ((b * s.heads() + h) * nq + i) * d;
                    for (int j = 0; j < nkv; j++) {
                        if (p[j] == 0) continue;
                        double ds = round(float32, p[j] * round(float32, dp[j] - delta));
                        for (int st = steps - 1; st >= 0; st--) {
                            int param = plan.parameter(st);
                            if (param >= 0) {
                                int at = h * plan.bucketCount(st) + plan.bucket(st, i, j);
                                dParameters.get(param)[at] = round(float32, dParameters.get(param)[at] + ds);
                            }
                            ds = round(float32, ds * plan.derivative(st, b, h, i, j, inputs[st][j]));
                        }
                        int kRow = ((b * s.kvHeads() + hk) * nkv + j) * d, vRow = ((b * s.kvHeads() + hk) * nkv + j) * dv;
                        for (int x = 0; x < d; x++) {
                            dq[qRow + x] = round(float32, dq[qRow + x] + round(float32, round(float32, ds * sc) * ka[kRow + x]));
                            dk[kRow + x] = round(float32, dk[kRow + x] + round(float32, round(float32, ds * sc) * qa[qAt + x]));
                        }
                        for (int x = 0; x < dv; x++) dvOut[vRow + x] = round(float32, dvOut[vRow + x] + round(float32, p[j] * da[dAt + x]));
                    }
                }
            }
        }
        return new Gradients(s, dq, dk, dvOut, dParameters);
    }

    private static double round(boolean float32, double x) {
        return float32 ? (float) x : x;
    }
}
