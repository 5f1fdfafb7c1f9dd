package io.tessera.backend;

import io.tessera.layout.BlockLayout;
import io.tessera.tensor.Tensor;

/**
 * A backend with a decode kernel: a few query rows per sequence against keys and values that live
 * in the pages of a pool (a paged KV cache), read in place through a page table. The cache's
 * {@code PagedAttention} hands its calls to the backend it runs on when it implements this (the CPU
 * backends do); other backends get one fused attention call per page and a log-sum-exp merge.
 */
public interface PagedAttentionDevice {

    /**
     * For every sequence {@code b} of the batch: the queries {@code q[b]} ({@code [B, H, qLen, D]})
     * attend the first {@code layouts[b].kvLen()} tokens of that sequence, whose token {@code t} is
     * at row {@code pageTables[b][t / pageSize]·pageSize + t % pageSize} of dimension 2 of the pools
     * {@code keyPool} {@code [1, Hkv, pages·pageSize, D]} and {@code valuePool}
     * {@code [1, Hkv, pages·pageSize, Dv]}; query head {@code h} reads key/value head
     * {@code h / (H / Hkv)}. {@code layouts[b]} says which (query, token) pairs are allowed: one
     * query block of {@code qLen} rows, key blocks of {@code pageSize} (one tile per page; pages
     * without a tile are never read). Writes {@code out} {@code [B, H, qLen, Dv]} and, unless null,
     * {@code lse} {@code [B, H, qLen]}; rows that attend no token get 0 and LSE −∞. Pool slots the
     * layouts do not allow (other sequences' tokens, slots past a sequence's length) never reach an
     * output. Deterministic: bit-identical for any thread count.
     */
    void pagedAttention(Tensor q, Tensor keyPool, Tensor valuePool, int pageSize, int[][] pageTables, BlockLayout[] layouts,
                        float scale, Tensor out, Tensor lse);

    /**
     * The same, with the cache's write record for a device that keeps the pools resident between
     * calls: {@code pageGenerations[p]} changes whenever tokens already written to pool page
     * {@code p} may have changed (the page was handed out again); between two changes the page's
     * tokens are only appended, so the device uploads only the tokens past those it holds. Not
     * modified by the device. By default the record is ignored (the CPU backends read the pools in place).
     */
    default void pagedAttention(Tensor q, Tensor keyPool, Tensor valuePool, int pageSize, int[][] pageTables, BlockLayout[] layouts,
                                long[] pageGenerations, float scale, Tensor out, Tensor lse) {
        pagedAttention(q, keyPool, valuePool, pageSize, pageTables, layouts, scale, out, lse);
    }
}
