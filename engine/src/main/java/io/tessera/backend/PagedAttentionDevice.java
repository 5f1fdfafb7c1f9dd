package io.tessera.backend;

import io.tessera.pattern.DecodePlan;
import io.tessera.tensor.Tensor;

/**
 * A backend with a decode kernel: a few query rows per sequence against keys and values that live
 * in the pages of a pool (a paged KV cache), read in place through a page table. The cache's
 * {@code PagedAttention} hands its calls to the backend it runs on when it implements this (the CPU
 * backends and tornado do); other backends get one fused attention call per page and a
 * log-sum-exp merge.
 *
 * <p>The call takes a {@link DecodePlan}: the live lengths and the pages to read, refilled in place
 * by the caller each step, so nothing depends on a compiled, length-specific layout and one plan
 * (and a device's execution plan built around it) serves every position.
 */
public interface PagedAttentionDevice {

    /**
     * For every sequence {@code b < plan.batch()}: the queries {@code q[b]} ({@code [B, H, qLen, D]},
     * B = {@code plan.batch()}, qLen = {@code plan.qLen()}, H = {@code plan.heads()}) attend the first
     * {@code plan.length(b)} tokens of that sequence, whose token {@code t} is at row
     * {@code pageTables[b][t / pageSize]·pageSize + t % pageSize} (pageSize = {@code plan.pageSize()};
     * {@code pageTables.length} = B) of dimension 2 of the pools {@code keyPool}
     * {@code [1, Hkv, pages·pageSize, D]} and {@code valuePool} {@code [1, Hkv, pages·pageSize, Dv]};
     * query head {@code h} reads key/value head {@code h / (H / Hkv)}. Query {@code i} is at
     * position {@code plan.length(b) − qLen + i}. The plan's tiles
     * {@code [plan.tileStart(b), plan.tileEnd(b))} name the pages that may be read and which
     * (query, token) pairs are allowed (FULL, or PARTIAL with {@code plan.fillTileMask}); pages
     * without a tile are never read. When {@code plan.scoreMod()} is not null, every allowed score
     * goes through it before the softmax ({@code plan.scoreModPlan(b)}; its positions are the ones
     * above: use {@code plan.queryOffset(b)}, not the modifier plan's); a device that cannot run it
     * throws {@link UnsupportedOperationException} naming it. Writes {@code out}
     * {@code [B, H, qLen, Dv]} and, unless null, {@code lse} {@code [B, H, qLen]}; rows that attend
     * no token get 0 and LSE −∞. Pool slots the plan does not allow (other sequences' tokens, slots
     * past a sequence's length) never reach an output. Deterministic: bit-identical for any thread
     * count.
     *
     * <p>{@code pageGenerations} is the cache's write record, for a device that keeps the pools
     * resident between calls: {@code pageGenerations[p]} changes whenever tokens already written to
     * pool page {@code p} may have changed (the page was handed out again, or tokens were cut from
     * it by {@code KvCache.truncate}); between two changes the
     * page's tokens are only appended, so the device uploads only the tokens past those it holds.
     * Not modified by the device; null: no record (a resident device then sends every token the
     * call reaches). A device that reads the pools in place ignores it.
     */
    void pagedAttention(Tensor q, Tensor keyPool, Tensor valuePool, int[][] pageTables, DecodePlan plan,
                        long[] pageGenerations, float scale, Tensor out, Tensor lse);

}
