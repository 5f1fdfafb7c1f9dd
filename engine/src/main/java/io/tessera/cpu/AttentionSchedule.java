package io.tessera.cpu;

import io.tessera.layout.BlockLayout;
import java.util.Arrays;

/**
 * The work items of an attention call, ordered heaviest first by the number of tiles each visits:
 * causal and BigBird rows are uneven, and handing out big items first keeps both cores busy to the
 * end (longest-processing-time-first scheduling). Block items stay grouped by (batch, head), heaviest
 * first within each head, the heads in order: a thread keeps a head's widened keys and values (the
 * forward pass's panels, with their norms for soft-capping) while its next item has the same head,
 * and sorting every head's blocks together alternated the heads item by item in causal attention,
 * which refilled them for every item (Zen 5, causal n = 4096, H = 8, one thread: the soft-capped call
 * spent 18 % of its time recomputing key norms). The smallest items still come last: the last head's.
 * Query-major items, (batch, head, query block),
 * serve the forward pass and the backward pass's dq; key-major items, (batch, key/value head, key
 * block), serve dk and dv, summing over the query heads that share the key/value head. Each item
 * writes only its own rows, so no gradient is ever accumulated by two threads.
 */
final class AttentionSchedule {
    private AttentionSchedule() {}

    /** Query-major items {@code ((b * heads + h) * qBlocks + qBlock)}, by (b, h), each head's by descending tile count. */
    static int[] heavyFirst(AttentionCall c) {
        int heads = c.g.shape().heads(), batch = c.g.shape().batch();
        int qBlocks = c.layouts.first().qBlocks();
        long[] keyed = new long[itemCount(batch, heads, qBlocks)];
        for (int b = 0, i = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                BlockLayout lay = c.layouts.forHead(h);
                for (int r = 0; r < qBlocks; r++, i++) keyed[i] = weighted(lay.tilesInRow(r), i);
            }
        }
        return sortedItems(keyed, qBlocks);
    }

    /**
     * Key-major items {@code ((b * kvHeads + hk) * kvBlocks + kvBlock)}, by (b, hk), each one's by the
     * descending number of tiles in the key block's column, summed over the query heads of {@code hk}.
     */
    static int[] heavyFirstKeyMajor(AttentionCall c) {
        int kvHeads = c.g.shape().kvHeads(), batch = c.g.shape().batch(), perKv = c.g.shape().queryHeadsPerKvHead();
        int kvBlocks = c.layouts.first().kvBlocks();
        long[] keyed = new long[itemCount(batch, kvHeads, kvBlocks)];
        for (int b = 0, i = 0; b < batch; b++) {
            for (int hk = 0; hk < kvHeads; hk++) {
                for (int col = 0; col < kvBlocks; col++, i++) {
                    long tiles = 0;
                    for (int h = hk * perKv; h < (hk + 1) * perKv; h++) tiles += c.layouts.forHead(h).tilesInColumn(col);
                    keyed[i] = weighted((int) Math.min(Integer.MAX_VALUE, tiles), i);
                }
            }
        }
        return sortedItems(keyed, kvBlocks);
    }

    /**
     * (batch, key/value head) items {@code b * kvHeads + hk}, sorted by the descending number of
     * tiles of their query heads.
     */
    static int[] heavyFirstHeads(AttentionCall c) {
        int kvHeads = c.g.shape().kvHeads(), batch = c.g.shape().batch(), perKv = c.g.shape().queryHeadsPerKvHead();
        long[] keyed = new long[itemCount(batch, kvHeads, 1)];
        for (int b = 0, i = 0; b < batch; b++) {
            for (int hk = 0; hk < kvHeads; hk++, i++) {
                long tiles = 0;
                for (int h = hk * perKv; h < (hk + 1) * perKv; h++) tiles += c.layouts.forHead(h).tileCount();
                keyed[i] = weighted((int) Math.min(Integer.MAX_VALUE, tiles), i);
            }
        }
        return sortedItems(keyed, keyed.length);
    }

    private static int itemCount(int batch, int heads, int blocks) {
        long total = (long) batch * heads * blocks;
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("too many work items: batch " + batch + " x heads " + heads + " x blocks " + blocks + " = " + total);
        }
        return (int) total;
    }

    /** Sort key: tiles in the upper bits (descending), item in the lower bits (stable, deterministic). */
    private static long weighted(int tiles, int item) {
        return ((long) (Integer.MAX_VALUE - tiles) << 32) | item;
    }

    /** The items of {@code keyed}, sorted within each run of {@code run} (a head's items), the runs in order. */
    private static int[] sortedItems(long[] keyed, int run) {
        int step = Math.max(1, run);   // no blocks: no items either
        for (int from = 0; from < keyed.length; from += step) Arrays.sort(keyed, from, Math.min(keyed.length, from + step));
        int[] items = new int[keyed.length];
        for (int i = 0; i < keyed.length; i++) items[i] = (int) keyed[i];
        return items;
    }
}
