/**
 * Inference against a growing key/value cache: {@link io.tessera.cache.KvCache} (a paged pool of
 * keys and values with a page table per sequence, appended to without copying old tokens) and
 * {@link io.tessera.cache.PagedAttention} (a few new queries attending to a sequence's cache under
 * any pattern, placed bottom-right: the backend's split-KV decode kernel reading pages in place, or
 * one fused call per page with a log-sum-exp merge; a ragged batch of sequences in one call).
 */
package io.tessera.cache;
