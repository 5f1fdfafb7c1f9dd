package io.tessera.attention;

import io.tessera.tensor.Tensor;

/**
 * The gradients of attention with respect to its inputs: {@code dq} {@code [B,H,Nq,D]},
 * {@code dk} {@code [B,Hkv,Nkv,D]}, {@code dv} {@code [B,Hkv,Nkv,Dv]} (with grouped-query heads,
 * dk and dv are summed over the query heads that share a key/value head).
 */
public record AttentionGradients(Tensor dq, Tensor dk, Tensor dv) {}
