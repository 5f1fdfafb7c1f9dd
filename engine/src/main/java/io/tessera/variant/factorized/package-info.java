/**
 * Factorized attention as chained calls of the fused kernel
 * ({@link io.tessera.variant.factorized.ChainedAttention}): Sparse Transformer factorized heads and
 * axial attention.
 */
package io.tessera.variant.factorized;
