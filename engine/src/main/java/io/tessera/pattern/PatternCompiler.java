package io.tessera.pattern;

import java.util.Arrays;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import io.tessera.layout.TileMaskSource;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Compiles a {@link Pattern} into a {@link BlockLayout} in O(non-empty tiles): for each query
 * block the pattern names the key intervals it can reach, only tiles overlapping those are
 * classified (in closed form), and only tiles the closed form cannot decide have their elements
 * looked at. Nothing proportional to qLen·kvLen is allocated for structured patterns.
 */
public final class PatternCompiler {
    private PatternCompiler() {}

    private static final int CACHE_ENTRIES = 64;

    private record Key(Pattern pattern, int qLen, int kvLen, int blockQ, int blockKV) {}

    private static final Map<Key, BlockLayout> CACHE = Collections.synchronizedMap(new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Key, BlockLayout> eldest) {
            return size() > CACHE_ENTRIES;
        }
    });

    static BlockLayout compileCached(Pattern pattern, int qLen, int kvLen, int blockQ, int blockKV) {
        Key key = new Key(pattern, qLen, kvLen, blockQ, blockKV);
        BlockLayout layout = CACHE.get(key);
        if (layout == null) {
            layout = compile(pattern, qLen, kvLen, blockQ, blockKV);
            CACHE.put(key, layout);
        }
        return layout;
    }

    /** Compiles without the cache (what the benchmark measures). */
    public static BlockLayout compile(Pattern pattern, int qLen, int kvLen, int blockQ, int blockKV) {
        if (pattern == null) throw new NullPointerException("pattern");
        BlockLayout.checkGeometry(qLen, kvLen, blockQ, blockKV);
        Node node = (Node) pattern;
        node.checkLengths(qLen, kvLen);
        int qBlocks = BlockLayout.ceilDiv(qLen, blockQ);
        int words = BlockLayout.ceilDiv(blockKV, 64);
        int[] offsets = new int[qBlocks + 1];
        IntList cols = new IntList();
        ByteList kinds = new ByteList();
        boolean storeMasks = !node.cheapMasks();
        LongList bits = storeMasks ? new LongList() : null;
        IntList maskStart = storeMasks ? new IntList() : null;
        KeyRanges ranges = new KeyRanges();
        MaskScratch scratch = MaskScratch.local();
        long[] tile = new long[blockQ * words];
        for (int qb = 0; qb < qBlocks; qb++) {
            int i0 = qb * blockQ, i1 = Math.min(qLen, i0 + blockQ);
            ranges.clear();
            node.keyRanges(i0, i1, qLen, kvLen, ranges);
            ranges.normalize();
            int lastBlock = -1;
            for (int r = 0; r < ranges.size; r++) {
                for (int kb = Math.max(lastBlock + 1, ranges.lo[r] / blockKV); kb <= (ranges.hi[r] - 1) / blockKV; kb++) {
                    lastBlock = kb;
                    int j0 = kb * blockKV, j1 = Math.min(kvLen, j0 + blockKV);
                    TileKind kind = node.classify(i0, i1, j0, j1, qLen, kvLen);
                    if (kind == null || (storeMasks && kind == TileKind.PARTIAL)) {
                        kind = fillTile(node, i0, i1, j0, j1, qLen, kvLen, tile, words, scratch);
                    }
                    if (kind == TileKind.EMPTY) continue;
                    cols.add(kb);
                    kinds.add(kind.code());
                    if (storeMasks) {
                        if (kind == TileKind.PARTIAL) {
                            maskStart.add(bits.size());
                            bits.addAll(tile);
                        } else {
                            maskStart.add(-1);
                        }
                    }
                }
            }
            offsets[qb + 1] = cols.size();
        }
        TileMaskSource masks = storeMasks
                ? new StoredMasks(bits.toArray(), maskStart.toArray(), words)
                : new PatternMasks(node, qLen, kvLen);
        return BlockLayout.fromCsr(pattern.toString(), qLen, kvLen, blockQ, blockKV, offsets, cols.toArray(), kinds.toArray(), masks);
    }

    /** Fills a tile's mask from the pattern's rows and classifies it exactly by counting bits. */
    private static TileKind fillTile(Node node, int i0, int i1, int j0, int j1, int qLen, int kvLen, long[] tile, int words, MaskScratch scratch) {
        java.util.Arrays.fill(tile, 0L);
        int n = j1 - j0;
        long allowed = 0;
        for (int i = i0; i < i1; i++) {
            int off = (i - i0) * words;
            node.fillRow(i, j0, n, qLen, kvLen, tile, off, scratch);
            for (int w = 0; w < words; w++) allowed += Long.bitCount(tile[off + w]);
        }
        return allowed == 0 ? TileKind.EMPTY : allowed == (long) (i1 - i0) * n ? TileKind.FULL : TileKind.PARTIAL;
    }

    /** Regenerates PARTIAL tile masks from the pattern's rows at kernel time (thread-safe: per-thread scratch). */
    private record PatternMasks(Node node, int qLen, int kvLen) implements TileMaskSource {
        @Override
        public void fill(int tile, int q0, int rows, int kv0, int cols, long[] dst, int dstOffset, int wordsPerRow) {
            MaskScratch scratch = MaskScratch.local();
            for (int r = 0; r < rows; r++) node.fillRow(q0 + r, kv0, cols, qLen, kvLen, dst, dstOffset + r * wordsPerRow, scratch);
        }
    }

    /** Masks kept from compile time for patterns whose rows are expensive to regenerate. */
    private record StoredMasks(long[] bits, int[] start, int words) implements TileMaskSource {
        @Override
        public void fill(int tile, int q0, int rows, int kv0, int cols, long[] dst, int dstOffset, int wordsPerRow) {
            int from = start[tile];
            for (int r = 0; r < rows; r++) System.arraycopy(bits, from + r * words, dst, dstOffset + r * wordsPerRow, words);
        }
    }

    /** Growable primitive lists: compiling must not box one Integer per tile. */
    static final class IntList {
        int[] a = new int[16]; int n;
        void add(int v) { if (n == a.length) a = Arrays.copyOf(a, n * 2); a[n++] = v; }
        int size() { return n; }
        int[] toArray() { return Arrays.copyOf(a, n); }
    }

    static final class ByteList {
        byte[] a = new byte[16]; int n;
        void add(byte v) { if (n == a.length) a = Arrays.copyOf(a, n * 2); a[n++] = v; }
        byte[] toArray() { return Arrays.copyOf(a, n); }
    }

    static final class LongList {
        long[] a = new long[16]; int n;
        int size() { return n; }
        void addAll(long[] v) {
            if (n + v.length > a.length) a = Arrays.copyOf(a, Math.max(a.length * 2, n + v.length));
            System.arraycopy(v, 0, a, n, v.length);
            n += v.length;
        }
        long[] toArray() { return Arrays.copyOf(a, n); }
    }
}
