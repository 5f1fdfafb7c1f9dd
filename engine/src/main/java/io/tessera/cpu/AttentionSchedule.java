package io.tessera.cpu;

import io.tessera.layout.BlockLayout;
import java.util.Arrays;

/**
 * The work items of an attention call, (batch, head, query block), ordered heaviest first by the
 * number of tiles in the block's row: causal and BigBird rows are uneven, and handing out big
 * items first keeps both cores busy to the end (longest-processing-time-first scheduling).
 */
final class AttentionSchedule {
    private AttentionSchedule() {}

    /** Item encodings: {@code ((b * heads + h) * qBlocks + qBlock)}, sorted by descending tile count. */
    static int[] heavyFirst(AttentionCall c) {
        int heads = c.g.shape().heads(), batch = c.g.shape().batch();
        int qBlocks = c.layouts.first().qBlocks();
        long total = (long) batch * heads * qBlocks;
        if (total > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("too many work items: " + total);
        int n = (int) total;
        // Sort keys: tiles in the upper bits, item in the lower bits (stable, deterministic).
        long[] keyed = new long[n];
        for (int b = 0, i = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                BlockLayout lay = c.layouts.forHead(h);
                for (int r = 0; r < qBlocks; r++, i++) {
                    keyed[i] = ((long) (Integer.MAX_VALUE - lay.tilesInRow(r)) << 32) | i;
                }
            }
        }
        Arrays.sort(keyed);
        int[] items = new int[n];
        for (int i = 0; i < n; i++) items[i] = (int) keyed[i];
        return items;
    }
}
