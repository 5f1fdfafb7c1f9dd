package io.tessera.attention;

import io.tessera.tensor.Tensor;
import java.util.List;

/**
 * The gradients of attention with respect to its inputs: {@code dq} {@code [B,H,Nq,D]},
 * {@code dk} {@code [B,Hkv,Nkv,D]}, {@code dv} {@code [B,Hkv,Nkv,Dv]} (with grouped-query heads,
 * dk and dv are summed over the query heads that share a key/value head), and one gradient per
 * learnable tensor of the score modifier, in {@link io.tessera.pattern.ScoreMod#parameters} order
 * (empty without one).
 */
public record AttentionGradients(Tensor dq, Tensor dk, Tensor dv, List<Tensor> scoreModGradients) {
    public AttentionGradients {
        if (scoreModGradients == null) throw new NullPointerException("scoreModGradients");
        scoreModGradients = List.copyOf(scoreModGradients);
    }

    /** Gradients of attention without a learnable score modifier. */
    public AttentionGradients(Tensor dq, Tensor dk, Tensor dv) {
        this(dq, dk, dv, List.of());
    }
}
