/**
 * Chooses how to run a pattern — the fused block kernel at which block sizes, or the explicit CSR
 * path — from a cost model whose constants are measured on the machine at hand, and explains the
 * choice ({@link io.tessera.planner.Planner}). A plan is itself an attention operator.
 */
package io.tessera.planner;
