/**
 * Block-term multi-linear attention with CP-factored projections
 * ({@link io.tessera.variant.tensorized.TensorizedAttention}, Ma et al. 2019), computed without
 * materializing its third-order tensors.
 */
package io.tessera.variant.tensorized;
