package io.tessera.variant.kernelized;

import io.tessera.attention.Attention;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.KeptScratch;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The bidirectional Performer (FAVOR+ positive features) as two softmax attentions through its m
 * random directions, computed by the fused dense kernel. With φ_f(x) = exp(ω_f·x − ‖x‖²/(2√D))/√m,
 * the estimate {@code out_i = Σ_f φ_f(q_i)·S_f / Σ_f φ_f(q_i)·z_f}, where
 * {@code S_f = Σ_j φ_f(k_j)·v_j} and {@code z_f = Σ_j φ_f(k_j)}, is, dropping the factors that cancel
 * (1/√m, the query's own exp(−‖q_i‖²/(2√D))):
 * <ol>
 *   <li>{@code out1_f = S_f / z_f} and {@code lse1_f = log z_f}: softmax attention of the m rows of ω
 *       over the keys, score {@code ω_f·k_j} plus the per-key bias {@code −‖k_j‖²/(2√D)};</li>
 *   <li>{@code out_i = Σ_f e^{ω_f·q_i + lse1_f}·out1_f / Σ_f e^{ω_f·q_i + lse1_f}}: softmax attention
 *       of the queries over the m rows of ω with values out1 and the per-key bias lse1.</li>
 * </ol>
 * The same function, so the same contract; neither the n × m feature matrices nor their
 * exponentials pass through memory, and the fused kernel's running max replaces the feature
 * shifts (z_f lives as its logarithm, so it cannot overflow). Measured on the Intel Xeon (B = 1,
 * H = 8, n = 4096, D = 64, m = 256, two threads, alternating JVMs): see {@link Performer#forward}.
 *
 * <p>The fused kernel throws when a score overflows float32 and the bias must be finite, where the
 * feature path gives NaN or ∞ rows: a (batch, KV head) pair whose norms could do that (non-finite,
 * or the score bound max‖ω_f‖·max‖x‖ + max‖k‖²/(2√D) at or above 10^30) runs {@link FeatureAttention}.
 */
final class FeatureSoftmax {
    private FeatureSoftmax() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Above this score bound the feature path runs instead (float32 reaches 3.4e38). */
    private static final double LARGEST_SCORE = 1e30;
    /** Per thread: one (batch, KV head) item's key biases, out1, lse1 and its query heads' biases. */
    private static final KeptScratch SCRATCH = KeptScratch.create();
    private static final ThreadLocal<float[]> BIASES = ThreadLocal.withInitial(() -> new float[0]);

    /**
     * out = the bidirectional Performer's estimate with random features {@code rf}, each (batch, KV
     * head) pair on one thread: the two attentions, or {@link FeatureAttention} for that pair when its
     * norms are outside what the fused kernel takes (see the class comment).
     */
    static void forward(Backend be, RandomFeatures rf, Attention dense, AttentionShape s, Tensor q, Tensor k, Tensor v, Tensor out) {
        Tensor omega = rf.omega();
        int m = (int) omega.size(0), d = s.headDim(), dv = s.valueDim(), n = s.kvLen(), group = s.queryHeadsPerKvHead();
        double omegaNorm = rf.largestRowNorm();
        int items = s.batch() * s.kvHeads();
        Backend each = items > 1 ? be.withThreads(1) : be;
        long floats = (long) n + (long) m * dv + m + (long) group * m;
        Tensor directions = omega.reshape(1, 1, m, d);
        Attention scores = dense.on(each).withScale(1f);
        java.util.function.IntConsumer item = bh -> SCRATCH.use(floats * Float.BYTES, memory -> {
            int b = bh / s.kvHeads(), hk = bh % s.kvHeads();
            Tensor kh = k.slice(0, b, b + 1).slice(1, hk, hk + 1), vh = v.slice(0, b, b + 1).slice(1, hk, hk + 1);
            Tensor qh = q.slice(0, b, b + 1).slice(1, hk * group, (hk + 1) * group), oh = out.slice(0, b, b + 1).slice(1, hk * group, (hk + 1) * group);
            float[] biases = BIASES.get();
            if (biases.length < n) BIASES.set(biases = new float[n]);
            double keys = rf.negativeHalfNorms(k.select(0, b).select(0, hk), n, biases), queries = 0;
            for (int g = 0; g < group; g++) queries = Math.max(queries, rf.largestSquaredNorm(q.select(0, b).select(0, hk * group + g), s.qLen()));
            double bound = omegaNorm * Math.sqrt(Math.max(keys, queries)) + keys / (2 * Math.sqrt(d));
            if (!(bound < LARGEST_SCORE)) {   // NaN, ∞ or too large: the feature path's NaN and ∞ rows
                FeatureAttention.forward(each, rf, false, qh, kh, vh, oh);
                return;
            }
            long at = 0;
            Tensor keyBias = Tensor.wrap(memory.asSlice(at, (long) n * Float.BYTES), 1, n);
            MemorySegment.copy(biases, 0, keyBias.segment(), FLOAT, 0, n);
            at += (long) n * Float.BYTES;
            Tensor out1 = Tensor.wrap(memory.asSlice(at, (long) m * dv * Float.BYTES), 1, 1, m, dv);
            at += (long) m * dv * Float.BYTES;
            Tensor lse1 = Tensor.wrap(memory.asSlice(at, (long) m * Float.BYTES), 1, 1, m);
            at += (long) m * Float.BYTES;
            Tensor queryBias = Tensor.wrap(memory.asSlice(at, (long) group * m * Float.BYTES), group, m);
            scores.withScoreMod(ScoreMod.bias(keyBias)).forwardWithLse(directions, kh, vh, out1, lse1);
            for (int g = 0; g < group; g++) queryBias.slice(0, g, g + 1).copyFrom(lse1.reshape(1, m));
            scores.withScoreMod(ScoreMod.bias(queryBias)).forward(qh, directions, out1, oh);
        });
        if (items > 1) be.forEachItem(items, item, q.segment(), k.segment(), v.segment(), out.segment());
        else item.accept(0);
    }
}
