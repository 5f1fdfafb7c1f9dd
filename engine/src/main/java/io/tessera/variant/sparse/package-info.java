/**
 * Attention on explicit sparse patterns: {@link io.tessera.variant.sparse.SparseAttention} (SDDMM →
 * row softmax → SpMM over a CSR pattern, run by the backend's
 * {@link io.tessera.backend.SparseAttentionDevice}) and exact per-query
 * {@link io.tessera.variant.sparse.TopKAttention}.
 */
package io.tessera.variant.sparse;
