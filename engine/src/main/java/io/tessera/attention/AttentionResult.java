package io.tessera.attention;

import io.tessera.tensor.Tensor;

/** Output {@code [B,H,Nq,Dv]} and per-row log-sum-exp {@code [B,H,Nq]} (−∞ for fully masked rows). */
public record AttentionResult(Tensor output, Tensor logSumExp) {}
