/**
 * The backend SPI and what crosses it: {@link io.tessera.backend.Backend} (fused attention over
 * layouts, GEMM; discovered through {@link java.util.ServiceLoader}, chosen by {@code Backend.best()}
 * or {@code Backend.named}), the validated call geometry ({@link io.tessera.backend.AttentionShape},
 * {@link io.tessera.backend.AttentionGeometry}) that every backend checks its arguments with, and
 * device capabilities such as {@link io.tessera.backend.SparseAttentionDevice}. The engine's own
 * backends ({@code scalar}, {@code simd}) live in the internal {@code io.tessera.cpu} package;
 * nothing else knows them. Depends on {@code tensor}, {@code layout} and {@code pattern}.
 */
package io.tessera.backend;
