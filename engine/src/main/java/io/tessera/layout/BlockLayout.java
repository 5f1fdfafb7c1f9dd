package io.tessera.layout;


import java.util.Arrays;

/**
 * A compiled block-sparse layout: for every query block, the key blocks it must visit, in
 * increasing order, each tagged {@link TileKind#FULL} or {@link TileKind#PARTIAL}. Empty tiles
 * are absent. Stored as CSR int arrays ({@link #rowOffsets()}, {@link #colIndices()},
 * {@link #kinds()}) so it can be shipped to a device as is, with the key-major (transposed) index
 * beside it. Every kernel, dense included (the full layout), runs off one of these.
 *
 * <p>Query block {@code r} covers queries [{@code r·blockQ}, min((r+1)·blockQ, qLen)); the last
 * block of either axis may be ragged. Element masks of PARTIAL tiles come from a
 * {@link TileMaskSource}: recomputed from a cheap pattern predicate or copied from stored bits.
 *
 * <p>Immutable and thread-safe; the array accessors return the internal arrays for zero-copy
 * kernel use and must not be modified.
 */
public final class BlockLayout {
    private final String description;
    private final int qLen, kvLen, blockQ, blockKV, qBlocks, kvBlocks;
    private final int[] rowOffsets, colIndices;
    private final byte[] kinds;
    private final int[] colOffsets, rowIndices, transposedTiles;
    private final TileMaskSource masks;
    private final int fullTiles;
    private volatile long allowedPairs = -1;

    private BlockLayout(String description, int qLen, int kvLen, int blockQ, int blockKV,
                        int[] rowOffsets, int[] colIndices, byte[] kinds, TileMaskSource masks) {
        this.description = description;
        this.qLen = qLen;
        this.kvLen = kvLen;
        this.blockQ = blockQ;
        this.blockKV = blockKV;
        this.qBlocks = ceilDiv(qLen, blockQ);
        this.kvBlocks = ceilDiv(kvLen, blockKV);
        this.rowOffsets = rowOffsets;
        this.colIndices = colIndices;
        this.kinds = kinds;
        this.masks = masks;
        int full = 0;
        for (byte k : kinds) if (k == TileKind.FULL.code()) full++;
        this.fullTiles = full;
        // Key-major index by counting sort: O(tiles), no per-tile allocation.
        int tiles = colIndices.length;
        colOffsets = new int[kvBlocks + 1];
        for (int c : colIndices) colOffsets[c + 1]++;
        for (int c = 0; c < kvBlocks; c++) colOffsets[c + 1] += colOffsets[c];
        rowIndices = new int[tiles];
        transposedTiles = new int[tiles];
        int[] cursor = Arrays.copyOf(colOffsets, kvBlocks);
        for (int r = 0; r < qBlocks; r++) {
            for (int t = rowOffsets[r]; t < rowOffsets[r + 1]; t++) {
                int slot = cursor[colIndices[t]]++;
                rowIndices[slot] = r;
                transposedTiles[slot] = t;
            }
        }
    }

    /**
     * Wraps CSR arrays produced by a compiler, validating them: offsets monotone, columns strictly
     * increasing within a row and in range, kinds FULL or PARTIAL.
     */
    public static BlockLayout fromCsr(String description, int qLen, int kvLen, int blockQ, int blockKV,
                                      int[] rowOffsets, int[] colIndices, byte[] kinds, TileMaskSource masks) {
        checkGeometry(qLen, kvLen, blockQ, blockKV);
        int qb = ceilDiv(qLen, blockQ), kb = ceilDiv(kvLen, blockKV);
        if (rowOffsets.length != qb + 1) throw new IllegalArgumentException("rowOffsets.length=" + rowOffsets.length + ", expected qBlocks+1=" + (qb + 1));
        if (rowOffsets[0] != 0 || rowOffsets[qb] != colIndices.length || kinds.length != colIndices.length) {
            throw new IllegalArgumentException("CSR arrays disagree: rowOffsets ends at " + rowOffsets[qb] + ", colIndices.length=" + colIndices.length + ", kinds.length=" + kinds.length);
        }
        for (int r = 0; r < qb; r++) {
            if (rowOffsets[r + 1] < rowOffsets[r]) throw new IllegalArgumentException("rowOffsets decreases at query block " + r);
            for (int t = rowOffsets[r]; t < rowOffsets[r + 1]; t++) {
                int c = colIndices[t];
                if (c < 0 || c >= kb) throw new IllegalArgumentException("colIndices[" + t + "]=" + c + " outside [0, " + kb + ")");
                if (t > rowOffsets[r] && c <= colIndices[t - 1]) throw new IllegalArgumentException("colIndices not strictly increasing in query block " + r);
                if (kinds[t] != TileKind.FULL.code() && kinds[t] != TileKind.PARTIAL.code()) throw new IllegalArgumentException("kinds[" + t + "]=" + kinds[t] + " is neither FULL nor PARTIAL");
            }
        }
        return new BlockLayout(description, qLen, kvLen, blockQ, blockKV, rowOffsets, colIndices, kinds,
                masks == null ? (tile, q0, rows, kv0, cols, dst, off, words) -> { throw new IllegalStateException("layout " + description + " has no mask source for PARTIAL tile " + tile); } : masks);
    }

    /** The layout in which every tile is FULL: dense attention. O(tiles) to build. */
    public static BlockLayout dense(int qLen, int kvLen, int blockQ, int blockKV) {
        checkGeometry(qLen, kvLen, blockQ, blockKV);
        int qb = ceilDiv(qLen, blockQ), kb = ceilDiv(kvLen, blockKV);
        long tiles = (long) qb * kb;
        if (tiles > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("dense layout of " + qLen + "x" + kvLen + " with blocks " + blockQ + "x" + blockKV + " has " + tiles + " tiles, more than int indexing allows");
        int[] offsets = new int[qb + 1], cols = new int[(int) tiles];
        byte[] kinds = new byte[(int) tiles];
        Arrays.fill(kinds, TileKind.FULL.code());
        for (int r = 0, t = 0; r < qb; r++) {
            for (int c = 0; c < kb; c++) cols[t++] = c;
            offsets[r + 1] = t;
        }
        return new BlockLayout("full", qLen, kvLen, blockQ, blockKV, offsets, cols, kinds, null);
    }

    // ---------------------------------------------------------------- geometry

    public String description() { return description; }
    public int qLen() { return qLen; }
    public int kvLen() { return kvLen; }
    public int blockQ() { return blockQ; }
    public int blockKV() { return blockKV; }
    public int qBlocks() { return qBlocks; }
    public int kvBlocks() { return kvBlocks; }
    /** Words per tile row in a mask written by {@link #fillTileMask}. */
    public int maskWordsPerRow() { return ceilDiv(keysPerBlock(), 64); }

    /** The most query rows a block holds: blockQ, or qLen when that is smaller (scratch sizes use this, not blockQ). */
    public int rowsPerBlock() { return Math.min(blockQ, qLen); }

    /** The most keys a block holds: blockKV, or kvLen when that is smaller. */
    public int keysPerBlock() { return Math.min(blockKV, kvLen); }

    /** CSR row pointers, length {@code qBlocks()+1}: tiles of query block r are [rowOffsets[r], rowOffsets[r+1]). */
    public int[] rowOffsets() { return rowOffsets; }
    /** Key block of each tile, increasing within a query block. */
    public int[] colIndices() { return colIndices; }
    /** {@link TileKind#code()} of each tile. */
    public byte[] kinds() { return kinds; }
    /** Key-major pointers, length {@code kvBlocks()+1}, into {@link #rowIndices()} and {@link #transposedTiles()}. */
    public int[] colOffsets() { return colOffsets; }
    /** Query block of each entry of the key-major index, increasing within a key block. */
    public int[] rowIndices() { return rowIndices; }
    /** For each entry of the key-major index, the tile's position in the row-major CSR arrays. */
    public int[] transposedTiles() { return transposedTiles; }

    public int tileCount() { return colIndices.length; }
    public int fullTiles() { return fullTiles; }
    public int partialTiles() { return colIndices.length - fullTiles; }
    public TileKind kind(int tile) { return TileKind.ofCode(kinds[tile]); }
    public int tilesInRow(int qBlock) { return rowOffsets[qBlock + 1] - rowOffsets[qBlock]; }
    public int tilesInColumn(int kvBlock) { return colOffsets[kvBlock + 1] - colOffsets[kvBlock]; }

    /** Query block of a tile (binary search over the row pointers). */
    public int rowOf(int tile) {
        int lo = 0, hi = qBlocks - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (rowOffsets[mid] <= tile) lo = mid; else hi = mid - 1;
        }
        return lo;
    }

    /**
     * Writes the element mask of {@code tile} (see {@link TileMaskSource#fill}) into {@code dst}, which
     * needs {@code maskWordsPerRow()} words for each of the tile's query rows (at most
     * {@link #rowsPerBlock()} rows); words up to {@code blockQ() * maskWordsPerRow()} that dst has
     * beyond them are cleared. FULL tiles get every valid bit set.
     */
    public void fillTileMask(int tile, long[] dst) {
        int r = rowOf(tile), c = colIndices[tile];
        int q0 = r * blockQ, rows = Math.min(blockQ, qLen - q0);
        int kv0 = c * blockKV, cols = Math.min(blockKV, kvLen - kv0);
        int words = maskWordsPerRow();
        if (dst.length < (long) rows * words) {
            throw new IllegalArgumentException("dst holds " + dst.length + " words, tile " + tile + " needs " + rows + " rows × " + words + " words");
        }
        Arrays.fill(dst, 0, (int) Math.min(dst.length, (long) blockQ * words), 0L);
        if (kinds[tile] == TileKind.FULL.code()) {
            for (int i = 0; i < rows; i++) {
                for (int w = 0; w < words; w++) {
                    int bitsHere = Math.min(64, cols - w * 64);
                    dst[i * words + w] = bitsHere >= 64 ? -1L : bitsHere <= 0 ? 0L : (1L << bitsHere) - 1;
                }
            }
        } else {
            masks.fill(tile, q0, rows, kv0, cols, dst, 0, words);
        }
    }

    // ---------------------------------------------------------------- statistics

    /**
     * Whether query row {@code row} may attend any key: a FULL tile in its block row, or a PARTIAL
     * one whose mask has a bit in the row. Walks the row's tiles (allocates a mask word array for
     * PARTIAL tiles): for rare checks, not for kernels' inner loops.
     */
    public boolean rowHasAllowedKey(int row) {
        if (row < 0 || row >= qLen) throw new IndexOutOfBoundsException("row " + row + " outside [0, " + qLen + ")");
        int qBlock = row / blockQ, r = row % blockQ, words = maskWordsPerRow();
        long[] mask = null;
        for (int t = rowOffsets[qBlock]; t < rowOffsets[qBlock + 1]; t++) {
            if (kinds[t] != TileKind.PARTIAL.code()) return true;
            if (mask == null) mask = new long[rowsPerBlock() * words];
            fillTileMask(t, mask);
            for (int w = 0; w < words; w++) if (mask[r * words + w] != 0) return true;
        }
        return false;
    }

    /** Number of (query, key) pairs the layout allows, exactly (masks of PARTIAL tiles are counted). */
    public long allowedPairs() {
        long cached = allowedPairs;
        if (cached >= 0) return cached;
        long total = 0;
        long[] scratch = new long[rowsPerBlock() * maskWordsPerRow()];
        for (int t = 0; t < colIndices.length; t++) {
            if (kinds[t] == TileKind.FULL.code()) {
                total += tileArea(t);
            } else {
                fillTileMask(t, scratch);
                for (long w : scratch) total += Long.bitCount(w);
            }
        }
        allowedPairs = total;
        return total;
    }

    /** Pairs inside non-empty tiles: the work a tiled kernel actually does. */
    public long computedPairs() {
        long total = 0;
        for (int t = 0; t < colIndices.length; t++) total += tileArea(t);
        return total;
    }

    /** Allowed pairs over all pairs. */
    public double density() { return (double) allowedPairs() / ((double) qLen * kvLen); }

    /** Floating-point operations of attention restricted to the allowed pairs: 4·pairs·headDim (QKᵀ and PV, multiply-add = 2). */
    public double flops(int headDim) { return 4.0 * allowedPairs() * headDim; }

    private long tileArea(int t) {
        int r = rowOf(t), c = colIndices[t];
        return (long) Math.min(blockQ, qLen - r * blockQ) * Math.min(blockKV, kvLen - c * blockKV);
    }

    /** A one-line summary followed by the block map: '█' FULL, '▒' PARTIAL, '·' empty (downsampled past 64 blocks). */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("BlockLayout[%s, q=%d kv=%d, blocks %dx%d -> %dx%d, tiles %d (full %d, partial %d), density %.4f]%n",
                description, qLen, kvLen, blockQ, blockKV, qBlocks, kvBlocks, tileCount(), fullTiles(), partialTiles(), density()));
        int maxCells = 64;
        int rowStep = ceilDiv(qBlocks, maxCells), colStep = ceilDiv(kvBlocks, maxCells);
        int rowsShown = ceilDiv(qBlocks, rowStep), colsShown = ceilDiv(kvBlocks, colStep);
        if (rowStep > 1 || colStep > 1) sb.append(String.format("(each cell = %dx%d blocks)%n", rowStep, colStep));
        byte[] cell = new byte[colsShown];
        for (int rs = 0; rs < rowsShown; rs++) {
            Arrays.fill(cell, TileKind.EMPTY.code());
            for (int r = rs * rowStep; r < Math.min(qBlocks, (rs + 1) * rowStep); r++) {
                for (int t = rowOffsets[r]; t < rowOffsets[r + 1]; t++) {
                    int cs = colIndices[t] / colStep;
                    cell[cs] = (byte) Math.max(cell[cs], kinds[t] == TileKind.FULL.code() && cell[cs] != TileKind.PARTIAL.code() ? TileKind.FULL.code() : TileKind.PARTIAL.code());
                }
            }
            for (byte k : cell) sb.append(k == TileKind.FULL.code() ? '█' : k == TileKind.PARTIAL.code() ? '▒' : '·');
            sb.append('\n');
        }
        return sb.toString();
    }

    // ---------------------------------------------------------------- helpers

    /** Validates the lengths and block sizes of a layout, naming the offending one. */
    public static void checkGeometry(int qLen, int kvLen, int blockQ, int blockKV) {
        if (qLen < 1) throw new IllegalArgumentException("qLen must be >= 1, got " + qLen);
        if (kvLen < 1) throw new IllegalArgumentException("kvLen must be >= 1, got " + kvLen);
        if (blockQ < 1) throw new IllegalArgumentException("blockQ must be >= 1, got " + blockQ);
        if (blockKV < 1) throw new IllegalArgumentException("blockKV must be >= 1, got " + blockKV);
    }

    /** ⌈a/b⌉ for positive ints, without overflow. */
    public static int ceilDiv(int a, int b) { return (int) (((long) a + b - 1) / b); }
}
