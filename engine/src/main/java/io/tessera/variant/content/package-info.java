/**
 * Content-based sparsity: attention whose sparse pattern the data chooses at every call, run by the
 * same fused block-sparse kernel as every fixed pattern. {@link io.tessera.variant.content.LshAttention}
 * (Reformer) hashes tokens into buckets and attends within sorted chunks (shared-QK, or
 * {@code crossAttention()} for separate query and key sets);
 * {@link io.tessera.variant.content.RoutingAttention} (Routing Transformer) attends within balanced
 * clusters around user-owned {@link io.tessera.variant.content.RoutingCentroids}. The data decides a
 * permutation of queries and keys; q, k and v are gathered into it, an ordinary block-sparse layout
 * over the permuted slots is built in O(tiles), the fused kernel runs it with log-sum-exps, and each
 * query's slots are combined back by log-sum-exp. {@link io.tessera.variant.content.InducedSparsity}
 * exports what was decided: the layout (printable) and the induced element mask (a MaskFunction for
 * the oracle).
 */
package io.tessera.variant.content;
