package io.tessera.pattern;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.HeadLayouts;
import io.tessera.layout.LayoutSpec;

import java.util.List;

/**
 * Which (query i, key j) pairs may attend: an immutable, printable value with an exact element
 * rule and a closed-form tile classifier, compiled into a {@link BlockLayout} that every kernel
 * runs off. Combine with {@link #and} and {@link #or}:
 *
 * <pre>{@code
 * Pattern p = Pattern.causal().and(Pattern.slidingWindow(256)).or(Pattern.globalTokens(0));
 * BlockLayout layout = p.compile(4096, 4096, 64, 64);   // cached; prints as a block map
 * Attention.sparse(p).forward(arena, q, k, v);
 * }</pre>
 *
 * Patterns are compiled for concrete lengths, so length-dependent rules (documents, axial, global
 * indices) are checked and resolved at compile time.
 *
 * <h2>Positions</h2>
 * Every rule speaks of <em>positions</em> in the key sequence: key {@code j} is at position
 * {@code j}, and query {@code i} is at position {@code i} when the pattern is aligned
 * {@link CausalAlignment#TOP_LEFT top-left}, or at {@code kvLen − qLen + i} when it is aligned
 * {@link CausalAlignment#BOTTOM_RIGHT bottom-right} (the last query is the last key: decoding or
 * chunked prefill against a KV cache). Windows, dilated windows, block bands, strides, global rows,
 * documents, axial grids, random blocks and causal all read the query's position, so with one query
 * at kvLen = 100, {@code causal(BOTTOM_RIGHT).and(slidingWindow(4, 0))} sees keys 95..99 — the keys
 * that query saw in the full 100 × 100 prefill. Key-only rules ({@code keyPrefix},
 * {@code summaryColumns}, {@code globalColumns}) do not depend on it, and {@code predicate} is called
 * with raw indices, as FlexAttention calls a mask_mod.
 *
 * <p>A pattern has one alignment. {@code causal(alignment)} and {@link #aligned} name it;
 * every other primitive, and {@code causal()}, leaves it open and takes the one of the pattern it is
 * combined with; a pattern that names none is top-left (PyTorch's {@code is_causal=True}).
 * Combining two patterns that name different alignments is rejected. Under bottom-right with
 * qLen &gt; kvLen the first queries sit at negative positions (they see no key under causal);
 * documents and axial, defined only on their grid of positions, reject query positions off it.
 */
public sealed interface Pattern extends LayoutSpec permits Patterns.Full, Patterns.Causal, Patterns.SlidingWindow,
        Patterns.Banded, Patterns.KeyPrefix, Patterns.Documents, Patterns.DilatedWindow, Patterns.Stride,
        Patterns.SummaryColumns, Patterns.GlobalTokens, Patterns.RandomBlocks, Patterns.Axial, Patterns.Predicate,
        Patterns.Aligned, Patterns.And, Patterns.Or {

    // ---------------------------------------------------------------- primitives

    /** Every pair. */
    static Pattern full() { return new Patterns.Full(); }

    /** Causal: j ≤ p, the query's position; takes the alignment of what it is combined with (top-left alone). */
    static Pattern causal() { return new Patterns.Causal(null); }

    /** Causal with an explicit alignment for qLen ≠ kvLen (see {@link CausalAlignment}); the whole pattern takes it. */
    static Pattern causal(CausalAlignment alignment) {
        if (alignment == null) throw new NullPointerException("alignment");
        return new Patterns.Causal(alignment);
    }

    /** Symmetric sliding window: |p − j| ≤ radius (Longformer, Beltagy et al. 2020). */
    static Pattern slidingWindow(int radius) { return new Patterns.SlidingWindow(radius, radius); }

    /**
     * Sliding window p − left ≤ j ≤ p + right; {@code causal(BOTTOM_RIGHT).and(slidingWindow(w, 0))}
     * is Mistral's (Jiang et al. 2023), also when decoding against a cache.
     */
    static Pattern slidingWindow(int left, int right) { return new Patterns.SlidingWindow(left, right); }

    /** Dilated window: keys p + k·dilation for |k| ≤ window (Longformer's dilated heads). */
    static Pattern dilatedWindow(int window, int dilation) { return new Patterns.DilatedWindow(window, dilation); }

    /** Block-local: p and j in the same block of {@code size} (Parmar et al. 2018, Image Transformer). */
    static Pattern blockLocal(int size) { return new Patterns.Banded(size, 0, 0, 0); }

    /** Block-diagonal widened by {@code overlap} keys on each side of each block. */
    static Pattern blockDiagonal(int size, int overlap) { return new Patterns.Banded(size, 0, 0, overlap); }

    /** Sliding window of blocks: key block within [qb − before, qb + after] (BigBird's window). */
    static Pattern blockWindow(int size, int before, int after) { return new Patterns.Banded(size, before, after, 0); }

    /** (p − j) mod stride = 0: the strided head of the Sparse Transformer (Child et al. 2019). */
    static Pattern stride(int stride) { return new Patterns.Stride(stride); }

    /** Columns j with j mod period ≥ period − width: the "fixed" summary head of the Sparse Transformer. */
    static Pattern summaryColumns(int period, int width) { return new Patterns.SummaryColumns(period, width); }

    /** Keys {@code j < length}, for every query. */
    static Pattern keyPrefix(int length) { return new Patterns.KeyPrefix(length); }

    /** Listed positions attend everywhere and are attended by everyone (Longformer, BigBird). */
    static Pattern globalTokens(int... indices) { return new Patterns.GlobalTokens(indices, true, true); }

    /** Listed query positions attend everywhere (rows only). */
    static Pattern globalRows(int... indices) { return new Patterns.GlobalTokens(indices, true, false); }

    /** Listed key positions are attended by everyone (columns only). */
    static Pattern globalColumns(int... indices) { return new Patterns.GlobalTokens(indices, false, true); }

    /** BigBird's random attention: each query block of {@code blockSize} sees {@code count} seeded random key blocks. */
    static Pattern randomBlocks(int blockSize, int count, long seed, boolean causal) {
        return new Patterns.RandomBlocks(blockSize, count, seed, causal);
    }

    /** Packed variable-length documents: attention stays inside each document. */
    static Pattern documents(int... lengths) { return new Patterns.Documents(lengths); }

    /** Axial attention over a rows × cols layout of the sequence: same row or same column (Ho et al. 2019). */
    static Pattern axial(int rows, int cols) { return new Patterns.Axial(rows, cols); }

    /**
     * Any element rule (FlexAttention's mask_mod), called with the raw query index and key index (not
     * shifted by the alignment). Exact; compiling costs O(qLen·kvLen) evaluations.
     */
    static Pattern predicate(String name, ElementPredicate predicate) { return new Patterns.Predicate(name, predicate); }

    // ---------------------------------------------------------------- presets

    /**
     * BigBird (Zaheer et al. 2020, ITC variant): a window of {@code windowBlocks} blocks (odd, centred),
     * the first {@code globalBlocks} blocks global, and {@code randomBlocks} random blocks per query block.
     */
    static Pattern bigBird(int blockSize, int windowBlocks, int globalBlocks, int randomBlocks, long seed) {
        Patterns.positive("block size", blockSize);
        if (windowBlocks < 1 || windowBlocks % 2 == 0) throw new IllegalArgumentException("windowBlocks must be odd and >= 1, got " + windowBlocks);
        Patterns.nonNegative("globalBlocks", globalBlocks);
        Patterns.nonNegative("randomBlocks", randomBlocks);
        Pattern p = blockWindow(blockSize, windowBlocks / 2, windowBlocks / 2);
        if (globalBlocks > 0) {
            long global = (long) globalBlocks * blockSize;
            if (global > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("globalBlocks=" + globalBlocks + " of block size " + blockSize + " make " + global
                        + " global tokens, more than the largest sequence length " + Integer.MAX_VALUE);
            }
            p = p.or(new Patterns.GlobalTokens(0, (int) global, true, true));
        }
        return randomBlocks > 0 ? p.or(randomBlocks(blockSize, randomBlocks, seed, false)) : p;
    }

    /** Longformer (Beltagy et al. 2020): a (dilated) window of {@code window} keys in total, plus global tokens. */
    static Pattern longformer(int window, int dilation, int... globalIndices) {
        if (window < 2 || window % 2 != 0) throw new IllegalArgumentException("window must be even and >= 2 (w/2 keys each side), got " + window);
        Pattern local = dilation == 1 ? slidingWindow(window / 2) : dilatedWindow(window / 2, dilation);
        return globalIndices.length == 0 ? local : local.or(globalTokens(globalIndices));
    }

    /** Sparse Transformer "strided" (Child et al. 2019) as one mask: a local band of {@code stride} keys or the strided keys. */
    static Pattern sparseTransformerStrided(int stride, boolean causal) {
        Patterns.positive("stride", stride);
        Pattern p = slidingWindow(stride - 1, causal ? 0 : stride - 1).or(stride(stride));
        return causal ? p.and(causal()) : p;
    }

    /** Sparse Transformer "fixed" (Child et al. 2019): same block of {@code block}, or a summary column of width {@code summary}. */
    static Pattern sparseTransformerFixed(int block, int summary, boolean causal) {
        Pattern p = blockLocal(block).or(summaryColumns(block, summary));
        return causal ? p.and(causal()) : p;
    }

    /** The factorized pair of Sparse Transformer heads: local, then strided (for chained attention steps). */
    static List<Pattern> sparseTransformerFactorized(int stride, boolean causal) {
        Patterns.positive("stride", stride);
        Pattern local = slidingWindow(stride - 1, causal ? 0 : stride - 1);
        Pattern strided = stride(stride);
        return causal ? List.of(local.and(causal()), strided.and(causal())) : List.of(local, strided);
    }

    /** Prefix LM (Raffel et al. 2020): bidirectional over the first {@code prefix} keys, causal after. */
    static Pattern prefixLM(int prefix) { return keyPrefix(prefix).or(causal()); }

    /** A different pattern for each query head. */
    static LayoutSpec perHead(Pattern... patterns) {
        if (patterns == null || patterns.length == 0) throw new IllegalArgumentException("patterns must list at least one pattern");
        Pattern[] copy = patterns.clone();
        for (int h = 0; h < copy.length; h++) if (copy[h] == null) throw new NullPointerException("patterns[" + h + "]");
        return (heads, qLen, kvLen, bq, bkv) -> {
            if (heads != copy.length) throw new IllegalArgumentException("perHead has " + copy.length + " patterns but the call has " + heads + " heads");
            BlockLayout[] layouts = new BlockLayout[heads];
            for (int h = 0; h < heads; h++) layouts[h] = copy[h].compile(qLen, kvLen, bq, bkv);
            return HeadLayouts.perHead(layouts);
        };
    }

    // ---------------------------------------------------------------- algebra and use

    default Pattern and(Pattern other) { return new Patterns.And(this, other); }

    default Pattern or(Pattern other) { return new Patterns.Or(this, other); }

    /**
     * This pattern with its queries placed by {@code alignment} (see Positions above), e.g.
     * {@code prefixLM(64).aligned(BOTTOM_RIGHT)} to decode against a cache. Rejected if the pattern
     * already names the other alignment.
     */
    default Pattern aligned(CausalAlignment alignment) { return new Patterns.Aligned(this, alignment); }

    /** The alignment this pattern names ({@code causal(alignment)}, {@link #aligned}), or null: top-left. */
    default CausalAlignment alignment() { return ((Node) this).explicitAlignment(); }

    /** The exact element rule at these lengths: may query index i attend to key index j? */
    default ElementPredicate predicate(int qLen, int kvLen) {
        if (qLen < 1) throw new IllegalArgumentException("qLen must be >= 1, got " + qLen);
        if (kvLen < 1) throw new IllegalArgumentException("kvLen must be >= 1, got " + kvLen);
        Node node = (Node) this;
        Frame frame = Frame.of(node, qLen, kvLen);
        node.checkLengths(frame);
        return (i, j) -> node.allows(i, j, frame);
    }

    /** The element rule as a mask function for the dense oracle (same for every batch and head). */
    default MaskFunction asMask(int qLen, int kvLen) {
        ElementPredicate p = predicate(qLen, kvLen);
        return (b, h, i, j) -> p.allows(i, j);
    }

    /** The block layout at these lengths and block sizes (compiled once, then cached). */
    default BlockLayout compile(int qLen, int kvLen, int blockQ, int blockKV) {
        return PatternCompiler.compileCached(this, qLen, kvLen, blockQ, blockKV);
    }

    @Override
    default HeadLayouts layouts(int heads, int qLen, int kvLen, int blockQ, int blockKV) {
        return HeadLayouts.shared(compile(qLen, kvLen, blockQ, blockKV));
    }
}
