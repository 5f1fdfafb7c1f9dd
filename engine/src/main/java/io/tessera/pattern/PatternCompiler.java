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

    /** Largest array the JVM reliably allocates. */
    static final int MAX_ARRAY = Integer.MAX_VALUE - 8;

    /** Compiles without the cache (what the benchmark measures). */
    public static BlockLayout compile(Pattern pattern, int qLen, int kvLen, int blockQ, int blockKV) {
        if (pattern == null) throw new NullPointerException("pattern");
        BlockLayout.checkGeometry(qLen, kvLen, blockQ, blockKV);
        Node node = (Node) pattern;
        Frame frame = Frame.of(node, qLen, kvLen);
        node.checkLengths(frame);
        int qBlocks = BlockLayout.ceilDiv(qLen, blockQ);
        // A tile never has more rows or key columns than the lengths: size scratch by those, not by the block sizes.
        int tileRows = Math.min(blockQ, qLen), words = BlockLayout.ceilDiv(Math.min(blockKV, kvLen), 64);
        boolean storeMasks = !node.cheapMasks();
        long tileWords = (long) tileRows * words;
        if (storeMasks && tileWords > MAX_ARRAY) {
            throw new IllegalArgumentException(pattern + " stores the masks of its PARTIAL tiles, and a " + tileRows + " x " + Math.min(blockKV, kvLen)
                    + " tile (qLen=" + qLen + ", kvLen=" + kvLen + ", blockQ=" + blockQ + ", blockKV=" + blockKV + ") needs " + tileWords
                    + " mask words, more than one array holds; use smaller blocks");
        }
        int[] offsets = new int[qBlocks + 1];
        IntList cols = new IntList();
        ByteList kinds = new ByteList();
        LongList bits = storeMasks ? new LongList() : null;
        IntList maskStart = storeMasks ? new IntList() : null;
        KeyRanges ranges = new KeyRanges(blockKV);
        MaskScratch scratch = MaskScratch.local();
        int scratchDepth = scratch.depth();
        long[] tile = new long[(int) (storeMasks ? tileWords : words)];
        try {
            for (int qb = 0; qb < qBlocks; qb++) {
                int i0 = qb * blockQ, i1 = i0 + Math.min(blockQ, qLen - i0);
                ranges.clear();
                node.keyRanges(i0, i1, frame, ranges);
                ranges.normalize();
                int lastBlock = -1;
                for (int r = 0; r < ranges.size; r++) {
                    for (int kb = Math.max(lastBlock + 1, ranges.lo[r] / blockKV); kb <= (ranges.hi[r] - 1) / blockKV; kb++) {
                        lastBlock = kb;
                        int j0 = kb * blockKV, j1 = j0 + Math.min(blockKV, kvLen - j0);
                        TileKind kind = node.classify(i0, i1, j0, j1, frame);
                        if (kind == null || (storeMasks && kind == TileKind.PARTIAL)) {
                            kind = storeMasks ? fillTile(node, i0, i1, j0, j1, frame, tile, words, scratch)
                                              : countRows(node, i0, i1, j0, j1, frame, tile, words, scratch);
                        }
                        if (kind == TileKind.EMPTY) continue;
                        if (cols.size() == MAX_ARRAY) {
                            throw new IllegalArgumentException(pattern + " at qLen=" + qLen + ", kvLen=" + kvLen + " with blocks " + blockQ + "x" + blockKV
                                    + " has more than " + MAX_ARRAY + " non-empty tiles, more than int indexing allows; use larger blocks");
                        }
                        cols.add(kb);
                        kinds.add(kind.code());
                        if (storeMasks) {
                            if (kind == TileKind.PARTIAL) {
                                int n = (i1 - i0) * words;
                                if ((long) bits.size() + n > MAX_ARRAY) {
                                    throw new IllegalArgumentException(pattern + " at qLen=" + qLen + ", kvLen=" + kvLen + " with blocks " + blockQ + "x" + blockKV
                                            + " needs more than " + MAX_ARRAY + " words of stored tile masks, more than one array holds");
                                }
                                maskStart.add(bits.size());
                                bits.addAll(tile, n);
                            } else {
                                maskStart.add(-1);
                            }
                        }
                    }
                }
                offsets[qb + 1] = cols.size();
            }
        } finally {
            scratch.restore(scratchDepth);   // a predicate that threw part-way leaves no rows in use
        }
        TileMaskSource masks = storeMasks
                ? new StoredMasks(bits.toArray(), maskStart.toArray(), words)
                : new PatternMasks(node, frame);
        return BlockLayout.fromCsr(pattern.toString(), qLen, kvLen, blockQ, blockKV, offsets, cols.toArray(), kinds.toArray(), masks);
    }

    /** Fills a tile's mask (rows of {@code words}) from the pattern's rows and classifies it exactly by counting bits. */
    private static TileKind fillTile(Node node, int i0, int i1, int j0, int j1, Frame frame, long[] tile, int words, MaskScratch scratch) {
        java.util.Arrays.fill(tile, 0, (i1 - i0) * words, 0L);
        int n = j1 - j0;
        long allowed = 0;
        for (int i = i0; i < i1; i++) {
            int off = (i - i0) * words;
            node.fillRow(i, j0, n, frame, tile, off, scratch);
            for (int w = 0; w < words; w++) allowed += Long.bitCount(tile[off + w]);
        }
        return allowed == 0 ? TileKind.EMPTY : allowed == (long) (i1 - i0) * n ? TileKind.FULL : TileKind.PARTIAL;
    }

    /** Classifies a tile exactly from its rows, one row of scratch at a time (nothing is stored). */
    private static TileKind countRows(Node node, int i0, int i1, int j0, int j1, Frame frame, long[] row, int words, MaskScratch scratch) {
        int n = j1 - j0;
        long allowed = 0;
        for (int i = i0; i < i1; i++) {
            java.util.Arrays.fill(row, 0, words, 0L);
            node.fillRow(i, j0, n, frame, row, 0, scratch);
            for (int w = 0; w < words; w++) allowed += Long.bitCount(row[w]);
        }
        return allowed == 0 ? TileKind.EMPTY : allowed == (long) (i1 - i0) * n ? TileKind.FULL : TileKind.PARTIAL;
    }

    /** Regenerates PARTIAL tile masks from the pattern's rows at kernel time (thread-safe: per-thread scratch). */
    private record PatternMasks(Node node, Frame frame) implements TileMaskSource {
        @Override
        public void fill(int tile, int q0, int rows, int kv0, int cols, long[] dst, int dstOffset, int wordsPerRow) {
            MaskScratch scratch = MaskScratch.local();
            for (int r = 0; r < rows; r++) node.fillRow(q0 + r, kv0, cols, frame, dst, dstOffset + r * wordsPerRow, scratch);
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

    /** Next capacity: doubled, capped at {@link #MAX_ARRAY} (callers check their size against it first). */
    private static int grown(int length, long needed) { return (int) Math.min(MAX_ARRAY, Math.max(2L * length, needed)); }

    /** Growable primitive lists: compiling must not box one Integer per tile. */
    static final class IntList {
        int[] a = new int[16]; int n;
        void add(int v) { if (n == a.length) a = Arrays.copyOf(a, grown(n, n + 1L)); a[n++] = v; }
        int size() { return n; }
        int[] toArray() { return Arrays.copyOf(a, n); }
    }

    static final class ByteList {
        byte[] a = new byte[16]; int n;
        void add(byte v) { if (n == a.length) a = Arrays.copyOf(a, grown(n, n + 1L)); a[n++] = v; }
        byte[] toArray() { return Arrays.copyOf(a, n); }
    }

    static final class LongList {
        long[] a = new long[16]; int n;
        int size() { return n; }
        /** Appends v[0, count). */
        void addAll(long[] v, int count) {
            if ((long) n + count > a.length) a = Arrays.copyOf(a, grown(a.length, (long) n + count));
            System.arraycopy(v, 0, a, n, count);
            n += count;
        }
        long[] toArray() { return Arrays.copyOf(a, n); }
    }
}
