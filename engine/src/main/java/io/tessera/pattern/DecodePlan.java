package io.tessera.pattern;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import java.util.Arrays;

/**
 * A decode step's layout, reused from step to step: for each sequence of a batch, the pages of the
 * paged KV cache its {@code qLen} queries may attend under a pattern, at that sequence's live
 * length. What {@link PatternCompiler} gives a prefill as a {@link BlockLayout} (one query block of
 * {@code qLen} rows, key blocks of {@code pageSize}: one tile per page), without compiling or
 * allocating anything per step: the live lengths are the parameter of {@link #fill}, and the arrays
 * are sized by the largest step seen and overwritten by the next.
 *
 * <p>Positions: the queries are the last {@code qLen} tokens of each sequence, so query {@code i}
 * of sequence {@code b} is at position {@code length(b) − qLen + i} (the pattern, and the score
 * modifier, aligned {@link CausalAlignment#BOTTOM_RIGHT bottom-right}); key {@code j} is at
 * position {@code j}.
 *
 * <p>Tiles: the tiles of sequence {@code b} are {@code [tileStart(b), tileEnd(b))}, one per page
 * that some query may attend, in increasing page order, each {@link TileKind#FULL} or
 * {@link TileKind#PARTIAL}: logical page {@link #pages()}{@code [t]} (keys
 * {@code [page·pageSize, min((page+1)·pageSize, length(b)))}), kind {@link #kinds()}{@code [t]}.
 * Pages without a tile are never read (a sliding window reads only its pages). Classifying costs
 * O(pages the queries reach) for structured patterns; a {@link Pattern#predicate} is evaluated on
 * every element of the pages it reaches (its PARTIAL masks are then kept in the plan).
 *
 * <p>A plan is filled by one thread and then read by any number of threads until the next
 * {@link #fill} ({@link #fillTileMask} is thread-safe): a backend reads it during one
 * {@code PagedAttentionDevice.pagedAttention} call. The arrays returned by {@link #pages()},
 * {@link #kinds()}, {@link #tileOffsets()} and {@link #lengths()} are the plan's own (zero-copy,
 * for kernels and devices), valid until the next fill, and must not be modified.
 */
public final class DecodePlan {
    private final Pattern pattern;
    private final Node node;
    private final boolean storeMasks;
    private final ScoreMod mod;          // aligned bottom-right, or null
    private final boolean modPerLength;  // the modifier keeps length-sized tables: planned again at each length
    private final int heads, qLen, pageSize, words;
    private final KeyRanges ranges;
    private final long[] tileScratch;    // one tile's mask (or one row of it when masks are regenerated)

    private int batch, tiles;
    private int[] lengths = new int[0], tileOffsets = new int[1];
    private int[] pages = new int[0], tileSequence = new int[0], maskStart = new int[0];
    private byte[] kinds = new byte[0];
    private long[] bits = new long[0];   // stored PARTIAL masks (patterns whose rows are expensive to regenerate)
    private int bitCount;
    private Frame[] frames = new Frame[0];
    private ScoreMod.Plan[] modPlans = new ScoreMod.Plan[0];
    private ScoreMod.Plan sharedModPlan;   // a modifier without length-sized tables: planned once

    private DecodePlan(Pattern pattern, ScoreMod mod, int heads, int qLen, int pageSize) {
        this.pattern = pattern;
        this.node = (Node) pattern;
        this.storeMasks = !node.cheapMasks();
        this.mod = mod;
        this.modPerLength = mod != null && mod.hasLengthTables();
        this.heads = heads;
        this.qLen = qLen;
        this.pageSize = pageSize;
        this.words = BlockLayout.ceilDiv(pageSize, 64);
        this.ranges = new KeyRanges(pageSize);
        long tileWords = (long) qLen * words;
        if (tileWords > PatternCompiler.MAX_ARRAY) {
            throw new IllegalArgumentException("a decode tile of qLen=" + qLen + " rows × pageSize=" + pageSize + " keys needs " + tileWords + " mask words, more than one array holds");
        }
        this.tileScratch = new long[(int) (storeMasks ? tileWords : words)];
    }

    /**
     * A plan for {@code qLen} queries per sequence ({@code heads} query heads) against pages of
     * {@code pageSize} tokens under {@code pattern}, with {@code mod} applied to the scores (null:
     * none). Both are placed bottom-right (see Positions); a pattern or modifier that names
     * top-left is rejected.
     */
    public static DecodePlan of(Pattern pattern, ScoreMod mod, int heads, int qLen, int pageSize) {
        if (pattern == null) throw new NullPointerException("pattern");
        if (heads < 1) throw new IllegalArgumentException("heads must be >= 1, got " + heads);
        if (qLen < 1) throw new IllegalArgumentException("qLen must be >= 1, got " + qLen);
        if (pageSize < 1) throw new IllegalArgumentException("pageSize must be >= 1, got " + pageSize);
        Pattern aligned = pattern.alignment() == CausalAlignment.BOTTOM_RIGHT ? pattern : pattern.aligned(CausalAlignment.BOTTOM_RIGHT);
        ScoreMod alignedMod = mod == null || mod.alignment() == CausalAlignment.BOTTOM_RIGHT ? mod : mod.aligned(CausalAlignment.BOTTOM_RIGHT);
        return new DecodePlan(aligned, alignedMod, heads, qLen, pageSize);
    }

    /**
     * Classifies the pages of {@code batch} sequences whose live lengths are
     * {@code lengths[0 … batch)} (each ≥ 1), replacing the previous step's plan. Allocates nothing
     * once the arrays have grown to the step's size (and, with a modifier that keeps per-length
     * tables — a relative-position or per-key bias — its tables). Returns this plan.
     *
     * @throws IllegalArgumentException naming the sequence whose length the pattern rejects
     */
    public DecodePlan fill(int[] lengths, int batch) {
        if (lengths == null) throw new NullPointerException("lengths");
        if (batch < 1 || batch > lengths.length) throw new IllegalArgumentException("batch=" + batch + " must be in [1, lengths.length=" + lengths.length + "]");
        for (int b = 0; b < batch; b++) {
            if (lengths[b] < 1) throw new IllegalArgumentException("lengths[" + b + "]=" + lengths[b] + " must be >= 1");
        }
        ensureBatch(batch);
        this.batch = 0;   // a failure part-way leaves an empty plan, not a half-filled one
        tiles = 0;
        bitCount = 0;
        MaskScratch scratch = MaskScratch.local();
        int depth = scratch.depth();
        try {
            for (int b = 0; b < batch; b++) {
                int length = lengths[b];
                this.lengths[b] = length;
                Frame frame = frames[b];
                frame.reset(qLen, length);
                try {
                    node.checkLengths(frame);
                    if (mod != null) modPlans[b] = modPlan(length);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("sequence " + b + " of the batch (length " + length + "): " + e.getMessage(), e);
                }
                tileOffsets[b] = tiles;
                classify(b, frame, scratch);
            }
        } finally {
            scratch.restore(depth);
        }
        tileOffsets[batch] = tiles;
        this.batch = batch;
        return this;
    }

    /** The pages of one sequence: PatternCompiler's loop for one query block, into the plan's arrays. */
    private void classify(int b, Frame frame, MaskScratch scratch) {
        int kvLen = frame.kvLen;
        ranges.reset(pageSize);
        node.keyRanges(0, qLen, frame, ranges);
        ranges.normalize();
        int lastPage = -1;
        for (int r = 0; r < ranges.size; r++) {
            for (int page = Math.max(lastPage + 1, ranges.lo[r] / pageSize); page <= (ranges.hi[r] - 1) / pageSize; page++) {
                lastPage = page;
                int j0 = page * pageSize, j1 = j0 + Math.min(pageSize, kvLen - j0);
                TileKind kind = node.classify(0, qLen, j0, j1, frame);
                if (kind == null || (storeMasks && kind == TileKind.PARTIAL)) kind = fillTile(frame, j0, j1, scratch);
                if (kind == TileKind.EMPTY) continue;
                if (tiles == pages.length) growTiles();
                pages[tiles] = page;
                kinds[tiles] = kind.code();
                tileSequence[tiles] = b;
                maskStart[tiles] = -1;
                if (storeMasks && kind == TileKind.PARTIAL) {
                    int n = qLen * words;
                    if ((long) bitCount + n > PatternCompiler.MAX_ARRAY) {
                        throw new IllegalArgumentException(pattern + " needs more than " + PatternCompiler.MAX_ARRAY + " words of stored page masks in one decode step");
                    }
                    if (bits.length < bitCount + n) bits = Arrays.copyOf(bits, (int) Math.min(PatternCompiler.MAX_ARRAY, Math.max(2L * bits.length, (long) bitCount + n)));
                    System.arraycopy(tileScratch, 0, bits, bitCount, n);
                    maskStart[tiles] = bitCount;
                    bitCount += n;
                }
                tiles++;
            }
        }
    }

    /** Classifies a page exactly from its rows (kept in tileScratch when masks are stored). */
    private TileKind fillTile(Frame frame, int j0, int j1, MaskScratch scratch) {
        int n = j1 - j0;
        long allowed = 0;
        for (int i = 0; i < qLen; i++) {
            int off = storeMasks ? i * words : 0;
            Arrays.fill(tileScratch, off, off + words, 0L);
            node.fillRow(i, j0, n, frame, tileScratch, off, scratch);
            for (int w = 0; w < words; w++) allowed += Long.bitCount(tileScratch[off + w]);
        }
        return allowed == 0 ? TileKind.EMPTY : allowed == (long) qLen * n ? TileKind.FULL : TileKind.PARTIAL;
    }

    private ScoreMod.Plan modPlan(int length) {
        if (modPerLength) return mod.plan(heads, qLen, length, 0);
        if (sharedModPlan == null) sharedModPlan = mod.plan(heads, qLen, 1, 0);
        return sharedModPlan;
    }

    private void ensureBatch(int batch) {
        if (lengths.length >= batch) return;
        lengths = new int[batch];
        tileOffsets = new int[batch + 1];
        Frame[] grown = Arrays.copyOf(frames, batch);
        for (int b = frames.length; b < batch; b++) grown[b] = new Frame(qLen, 1, CausalAlignment.BOTTOM_RIGHT);
        frames = grown;
        modPlans = new ScoreMod.Plan[batch];
    }

    private void growTiles() {
        if (tiles == PatternCompiler.MAX_ARRAY) throw new IllegalArgumentException("a decode step of more than " + PatternCompiler.MAX_ARRAY + " pages");
        int size = (int) Math.min(PatternCompiler.MAX_ARRAY, Math.max(16L, 2L * pages.length));
        pages = Arrays.copyOf(pages, size);
        kinds = Arrays.copyOf(kinds, size);
        tileSequence = Arrays.copyOf(tileSequence, size);
        maskStart = Arrays.copyOf(maskStart, size);
    }

    /**
     * Presizes the tile arrays for steps reading up to {@code tiles} pages in all (e.g. a cache's
     * page count times the batch), so that no later step grows them. Optional.
     */
    public DecodePlan reserve(int tiles) {
        if (tiles < 0) throw new IllegalArgumentException("tiles must be >= 0, got " + tiles);
        if (pages.length < tiles) {
            pages = Arrays.copyOf(pages, tiles);
            kinds = Arrays.copyOf(kinds, tiles);
            tileSequence = Arrays.copyOf(tileSequence, tiles);
            maskStart = Arrays.copyOf(maskStart, tiles);
        }
        return this;
    }

    // ---------------------------------------------------------------- the plan of the last fill

    /** The pattern, aligned bottom-right. */
    public Pattern pattern() { return pattern; }

    /** The score modifier, aligned bottom-right, or null. */
    public ScoreMod scoreMod() { return mod; }

    /** Query heads the plan (its modifier) was made for. */
    public int heads() { return heads; }

    public int qLen() { return qLen; }

    public int pageSize() { return pageSize; }

    /** Sequences of the last fill. */
    public int batch() { return batch; }

    /** Live length of sequence {@code b}. */
    public int length(int b) { return lengths[checkSequence(b)]; }

    /** Live lengths, {@code [0, batch())} valid. */
    public int[] lengths() { return lengths; }

    /** Tiles of all sequences. */
    public int tileCount() { return tiles; }

    public int tileStart(int b) { return tileOffsets[checkSequence(b)]; }

    public int tileEnd(int b) { return tileOffsets[checkSequence(b) + 1]; }

    /** Tiles of sequence b are {@code [tileOffsets[b], tileOffsets[b + 1])}; {@code [0, batch()]} valid. */
    public int[] tileOffsets() { return tileOffsets; }

    /** The logical page (index into the sequence's page table) of each tile, {@code [0, tileCount())} valid. */
    public int[] pages() { return pages; }

    /** Each tile's {@link TileKind#code()}, FULL or PARTIAL. */
    public byte[] kinds() { return kinds; }

    /** The sequence (index in the batch) tile {@code t} belongs to. */
    public int sequenceOf(int tile) { return tileSequence[checkTile(tile)]; }

    /** Words per query row in a mask written by {@link #fillTileMask}: ⌈pageSize / 64⌉. */
    public int maskWordsPerRow() { return words; }

    /**
     * Writes tile {@code t}'s mask into {@code dst[0, qLen·maskWordsPerRow())}: bit {@code c % 64}
     * of word {@code i·maskWordsPerRow() + c / 64} is set iff query {@code i} may attend key
     * {@code page·pageSize + c} of its sequence; bits past the page's live tokens are zero. A FULL
     * tile's mask has every live key set. Thread-safe; allocates nothing.
     */
    public void fillTileMask(int tile, long[] dst) {
        checkTile(tile);
        int n = qLen * words;
        if (dst == null) throw new NullPointerException("dst");
        if (dst.length < n) throw new IllegalArgumentException("dst holds " + dst.length + " words, a tile needs qLen=" + qLen + " × " + words);
        int b = tileSequence[tile], j0 = pages[tile] * pageSize, cols = Math.min(pageSize, lengths[b] - j0);
        if (maskStart[tile] >= 0) {
            System.arraycopy(bits, maskStart[tile], dst, 0, n);
            return;
        }
        Arrays.fill(dst, 0, n, 0L);
        if (kinds[tile] == TileKind.FULL.code()) {
            for (int i = 0; i < qLen; i++) Node.setBits(dst, i * words, 0, cols);
            return;
        }
        MaskScratch scratch = MaskScratch.local();
        int depth = scratch.depth();
        try {
            for (int i = 0; i < qLen; i++) node.fillRow(i, j0, cols, frames[b], dst, i * words, scratch);
        } finally {
            scratch.restore(depth);
        }
    }

    /**
     * The plan of the last fill as one {@link BlockLayout} per sequence (one query block of qLen
     * rows, key blocks of pageSize, its PARTIAL masks read from this plan): for devices that take
     * layouts. Allocates; valid until the next fill.
     */
    public BlockLayout[] layouts() {
        BlockLayout[] out = new BlockLayout[batch];
        for (int b = 0; b < batch; b++) {
            int from = tileOffsets[b], to = tileOffsets[b + 1], length = lengths[b];
            int[] cols = Arrays.copyOfRange(pages, from, to);
            byte[] tileKinds = Arrays.copyOfRange(kinds, from, to);
            long[] mask = new long[qLen * words];
            out[b] = BlockLayout.fromCsr(pattern.toString(), qLen, length, qLen, pageSize, new int[] {0, to - from}, cols, tileKinds,
                    (tile, q0, rows, kv0, cols2, dst, off, wordsPerRow) -> {
                        synchronized (mask) {
                            fillTileMask(from + tile, mask);
                            for (int r = 0; r < rows; r++) {
                                Arrays.fill(dst, off + r * wordsPerRow, off + (r + 1) * wordsPerRow, 0L);
                                System.arraycopy(mask, (q0 + r) * words, dst, off + r * wordsPerRow, Math.min(words, wordsPerRow));
                            }
                        }
                    });
        }
        return out;
    }

    /** Whether query {@code i} of sequence {@code b} may attend any key (its output is else 0, LSE −∞). Allocates: for rare paths. */
    public boolean rowHasAllowedKey(int b, int i) {
        checkSequence(b);
        if (i < 0 || i >= qLen) throw new IndexOutOfBoundsException("query " + i + " outside [0, " + qLen + ")");
        long[] mask = null;
        for (int t = tileOffsets[b]; t < tileOffsets[b + 1]; t++) {
            if (kinds[t] == TileKind.FULL.code()) return true;
            if (mask == null) mask = new long[qLen * words];
            fillTileMask(t, mask);
            for (int w = 0; w < words; w++) if (mask[i * words + w] != 0) return true;
        }
        return false;
    }

    /**
     * Sequence {@code b}'s modifier at its live length (null without one): its kernels' units and
     * tables, query {@code i} at position {@code length(b) − qLen + i}. A modifier without
     * length-sized tables (ALiBi, soft-capping, a function, a per-head bias) is planned once, so
     * its {@code queryOffset()} is not the sequence's: use {@link #queryOffset}.
     */
    public ScoreMod.Plan scoreModPlan(int b) { return mod == null ? null : modPlans[checkSequence(b)]; }

    /** Position of sequence {@code b}'s query 0: {@code length(b) − qLen} (negative when qLen exceeds the length). */
    public int queryOffset(int b) { return lengths[checkSequence(b)] - qLen; }

    private int checkSequence(int b) {
        if (b < 0 || b >= batch) throw new IndexOutOfBoundsException("sequence " + b + " outside the plan's batch [0, " + batch + ")");
        return b;
    }

    private int checkTile(int t) {
        if (t < 0 || t >= tiles) throw new IndexOutOfBoundsException("tile " + t + " outside [0, " + tiles + ")");
        return t;
    }

    @Override
    public String toString() {
        return "DecodePlan[" + pattern + (mod != null ? ", " + mod : "") + ", heads=" + heads + ", qLen=" + qLen + ", pageSize=" + pageSize
                + ", " + batch + " sequences, " + tiles + " pages]";
    }
}
