/**
 * Low-rank attention: {@link io.tessera.variant.lowrank.Linformer} (keys and values projected along
 * the sequence, then the fused dense kernel) and {@link io.tessera.variant.lowrank.Nystromformer}
 * (landmarks and an iterative pseudo-inverse).
 */
package io.tessera.variant.lowrank;
