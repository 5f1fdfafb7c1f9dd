/**
 * Kernelized attention in linear time: {@link io.tessera.variant.kernelized.LinearAttention}
 * (φ = elu + 1) and the {@link io.tessera.variant.kernelized.Performer} (FAVOR+ random features),
 * bidirectional or causal, on one chunked feature-map core built from {@code Backend.gemm}.
 */
package io.tessera.variant.kernelized;
