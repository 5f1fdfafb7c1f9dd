package io.tessera.attention;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AccuracyContract;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.lang.foreign.Arena;
import java.util.List;

/** Registers dense and block-sparse attention, both run by the fused block-sparse kernel. */
public final class FusedAttentionVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public FusedAttentionVariants() {}

    static final String EXACT = "max-abs error vs the float64 masked oracle within Tolerance.exact (the larger of 10× the naive fp32 error"
            + " on the same input and the score-rounding bound, + 1e-5); LSE likewise; fully masked rows give 0 and LSE −∞";

    static final VariantInfo.Gradients BACKWARD = VariantInfo.Gradients.backward(
            "Attention.backward: FlashAttention-2 recomputation through the same fused kernel and layouts; EXACT against float64 gradients");

    @Override
    public List<VariantInfo> variants() {
        return List.of(
                new VariantInfo("dense", "fused block-sparse", "Vaswani et al. 2017; schedule: Dao et al. 2022 (FlashAttention)",
                        "O(n²·d) time, O(threads·tile) extra memory", AccuracyContract.exact(EXACT),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(new Operator(Attention.dense()), batch, heads, n, d), BACKWARD),
                new VariantInfo("block-sparse", "fused block-sparse", "Child et al. 2019; Zaheer et al. 2020; FlexAttention block masks (Dong et al. 2024)",
                        "O(allowed tiles·tile²·d) time, O(threads·tile) extra memory", AccuracyContract.exact(EXACT),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(
                                new Operator(Attention.sparse(Pattern.slidingWindow(Math.max(1, n / 8)).or(Pattern.globalTokens(0)))), batch, heads, n, d), BACKWARD));
    }

    /** {@link Attention} as an {@link AttentionOperator}: every method is Attention's own. */
    record Operator(Attention attention) implements AttentionOperator.Scaled, AttentionOperator.WithLse, AttentionOperator.Differentiable {
        @Override public void forward(Tensor q, Tensor k, Tensor v, Tensor out) { attention.forward(q, k, v, out); }
        @Override public Tensor forward(Arena arena, Tensor q, Tensor k, Tensor v) { return attention.forward(arena, q, k, v); }
        @Override public void forwardWithLse(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) { attention.forwardWithLse(q, k, v, out, lse); }
        @Override public Operator on(Backend backend) { return new Operator(attention.on(backend)); }

        /** Recomputes the output and log-sum-exp, then {@link Attention#backward}. */
        @Override
        public void backward(Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
            AttentionShape s = AttentionShape.of(q, k, v);
            try (Arena arena = Arena.ofShared()) {
                Tensor out = Tensor.zeros(arena, s.outputShape()), lse = Tensor.zeros(arena, s.lseShape());
                attention.forwardWithLse(q, k, v, out, lse);
                attention.backward(q, k, v, out, lse, dOut, dq, dk, dv);
            }
        }
        @Override public Operator withScale(float scale) { return new Operator(attention.withScale(scale)); }
        @Override public String toString() { return attention.toString(); }
    }
}
