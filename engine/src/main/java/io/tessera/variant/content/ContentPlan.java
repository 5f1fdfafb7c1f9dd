package io.tessera.variant.content;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import java.util.Arrays;

/**
 * What the data decided for one (batch, head): the permuted order of the queries ("query slots")
 * and of the keys ("key slots"), the slot pairs that may attend, and the element rule over the
 * original positions that those slot pairs induce. A query may occupy several slots (LSH rounds,
 * several clusters); the slot pairs of one original (query, key) pair are allowed in at most one of
 * them, so the partial results of a query's slots combine exactly by log-sum-exp.
 */
abstract sealed class ContentPlan permits LshPlan, LshCrossPlan, RoutingPlan {
    final int qLen, kvLen;
    /** Original query index of each query slot. */
    final int[] querySlots;
    /** Original key index of each key slot. */
    final int[] keySlots;

    ContentPlan(int qLen, int kvLen, int[] querySlots, int[] keySlots) {
        this.qLen = qLen;
        this.kvLen = kvLen;
        this.querySlots = querySlots;
        this.keySlots = keySlots;
    }

    /** May query slot {@code s} attend key slot {@code t}? */
    abstract boolean slotAllowed(int s, int t);

    /** The induced rule over original indices: may query {@code i} attend key {@code j} (in any slot)? */
    abstract boolean allowed(int i, int j);

    /** Number of slots original query {@code i} occupies (0: it attends nothing). */
    abstract int slotCount(int i);

    /** The {@code k}-th slot of original query {@code i}, in the order their partial results are combined. */
    abstract int slot(int i, int k);

    /** Adds to {@code out} the key-slot intervals that query slots [s0, s1) can reach. */
    abstract void keyIntervals(int s0, int s1, Intervals out);

    /** Whether every pair of query slots [s0, s1) × key slots [t0, t1) is allowed, decided in O(1). */
    abstract boolean fullTile(int s0, int s1, int t0, int t1);

    /** One line saying what was decided, for the layout's description. */
    abstract String describe();

    /**
     * The block-sparse layout over the slots at these block sizes, in O(tiles): tiles the plan
     * proves full are FULL, every other reachable tile is PARTIAL with its mask computed from the
     * plan when the kernel asks for it.
     */
    final BlockLayout layout(int blockQ, int blockKV) {
        int lq = querySlots.length, lk = keySlots.length;
        BlockLayout.checkGeometry(lq, lk, blockQ, blockKV);
        int qBlocks = BlockLayout.ceilDiv(lq, blockQ);
        int[] offsets = new int[qBlocks + 1];
        int[] cols = new int[Math.max(16, qBlocks * 3)];
        byte[] kinds = new byte[cols.length];
        int tiles = 0;
        Intervals ranges = new Intervals();
        for (int qb = 0; qb < qBlocks; qb++) {
            int s0 = qb * blockQ, s1 = Math.min(lq, s0 + blockQ);
            ranges.clear();
            keyIntervals(s0, s1, ranges);
            ranges.normalize();
            int last = -1;
            for (int r = 0; r < ranges.size; r++) {
                for (int kb = Math.max(last + 1, ranges.lo[r] / blockKV); kb <= (ranges.hi[r] - 1) / blockKV; kb++) {
                    last = kb;
                    if (tiles == cols.length) {
                        if (tiles >= Integer.MAX_VALUE - 8) throw new IllegalArgumentException(describe() + ": more than " + (Integer.MAX_VALUE - 8) + " tiles");
                        int grown = (int) Math.min(Integer.MAX_VALUE - 8, 2L * tiles);
                        cols = Arrays.copyOf(cols, grown);
                        kinds = Arrays.copyOf(kinds, grown);
                    }
                    int t0 = kb * blockKV, t1 = Math.min(lk, t0 + blockKV);
                    cols[tiles] = kb;
                    kinds[tiles] = fullTile(s0, s1, t0, t1) ? TileKind.FULL.code() : TileKind.PARTIAL.code();
                    tiles++;
                }
            }
            offsets[qb + 1] = tiles;
        }
        return BlockLayout.fromCsr(describe(), lq, lk, blockQ, blockKV, offsets, Arrays.copyOf(cols, tiles), Arrays.copyOf(kinds, tiles), this::fillMask);
    }

    /** The element mask of slots [q0, q0+rows) × [kv0, kv0+cols), word by word (words past cols zero). */
    private void fillMask(int tile, int q0, int rows, int kv0, int cols, long[] dst, int dstOffset, int wordsPerRow) {
        for (int r = 0; r < rows; r++) fillRow(q0 + r, kv0, cols, dst, dstOffset + r * wordsPerRow, wordsPerRow);
    }

    /** Row of query slot s over key slots [kv0, kv0+cols) as mask words (bit c of word c/64); plans override it to hoist per-query work. */
    void fillRow(int s, int kv0, int cols, long[] dst, int base, int wordsPerRow) {
        for (int w = 0; w < wordsPerRow; w++) {
            long bits = 0;
            for (int c = w * 64, end = Math.min(cols, c + 64); c < end; c++) {
                if (slotAllowed(s, kv0 + c)) bits |= 1L << c;
            }
            dst[base + w] = bits;
        }
    }

    /** A growable list of half-open intervals, sorted and merged by {@link #normalize}. */
    static final class Intervals {
        int[] lo = new int[8], hi = new int[8];
        int size;

        void clear() { size = 0; }

        void add(int from, int to) {
            if (from >= to) return;
            if (size == lo.length) {
                lo = Arrays.copyOf(lo, 2 * size);
                hi = Arrays.copyOf(hi, 2 * size);
            }
            lo[size] = from;
            hi[size] = to;
            size++;
        }

        void normalize() {
            long[] packed = new long[size];
            for (int i = 0; i < size; i++) packed[i] = ((long) lo[i] << 32) | hi[i];
            Arrays.sort(packed);
            int n = 0;
            for (long p : packed) {
                int a = (int) (p >>> 32), b = (int) p;
                if (n > 0 && a <= hi[n - 1]) {
                    hi[n - 1] = Math.max(hi[n - 1], b);
                } else {
                    lo[n] = a;
                    hi[n] = b;
                    n++;
                }
            }
            size = n;
        }
    }
}
