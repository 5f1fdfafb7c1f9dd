package io.tessera.pattern;

import io.tessera.layout.TileKind;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The primitive patterns and the combinators. Built through the factories on {@link Pattern}.
 * Every positional rule reads the query's position {@code f.pos(i)}, never the raw index, so one
 * alignment (the {@link Frame}) places all of them; key-only rules and {@code predicate} do not
 * depend on it. All arithmetic on positions and parameters is in long, so no parameter value can
 * overflow it.
 */
final class Patterns {
    private Patterns() {}

    static int positive(String name, int value) {
        if (value < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + value);
        return value;
    }

    static int nonNegative(String name, int value) {
        if (value < 0) throw new IllegalArgumentException(name + " must be >= 0, got " + value);
        return value;
    }

    /** The single alignment two operands agree on, or a clear rejection when they name different ones. */
    static CausalAlignment combine(String op, Pattern left, Pattern right) {
        CausalAlignment a = ((Node) left).explicitAlignment(), b = ((Node) right).explicitAlignment();
        if (a != null && b != null && a != b) {
            throw new IllegalArgumentException(op + "() mixes alignments: " + left + " is " + a + " but " + right + " is " + b
                    + " (a pattern places its queries one way; name the alignment once)");
        }
        return a != null ? a : b;
    }

    // ================================================================ full

    record Full() implements Pattern, Node {
        public boolean allows(int i, int j, Frame f) { return true; }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) { return TileKind.FULL; }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { out.add(0, f.kvLen, f.kvLen); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) { Node.setBits(dst, off, 0, n); }
        @Override public String toString() { return "full()"; }
    }

    // ================================================================ interval rules

    /**
     * Causal masking (Vaswani et al. 2017, decoder self-attention): key j visible from the query at
     * position p iff j ≤ p. A null alignment takes the one of the pattern it is combined with.
     */
    record Causal(CausalAlignment alignment) implements Pattern, Node {
        @Override public CausalAlignment explicitAlignment() { return alignment; }
        public boolean allows(int i, int j, Frame f) { return j <= (long) f.pos(i); }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            return Node.intervalKind(0, (long) f.pos(i0) + 1, 0, (long) f.pos(i1 - 1) + 1, j0, j1);
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { out.add(0, (long) f.pos(i1 - 1) + 1, f.kvLen); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            Node.setBits(dst, off, 0, Node.clamp((long) f.pos(i) + 1 - j0, n));
        }
        @Override public String toString() { return alignment == null ? "causal()" : "causal(" + alignment + ")"; }
    }

    /** Sliding window (Beltagy et al. 2020 Longformer; Jiang et al. 2023 Mistral): p − left ≤ j ≤ p + right. */
    record SlidingWindow(int left, int right) implements Pattern, Node {
        SlidingWindow {
            nonNegative("left", left);
            nonNegative("right", right);
        }
        public boolean allows(int i, int j, Frame f) { long p = f.pos(i); return j >= p - left && j <= p + right; }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            long p0 = f.pos(i0), p1 = f.pos(i1 - 1);
            return Node.intervalKind(p0 - left, p0 + right + 1, p1 - left, p1 + right + 1, j0, j1);
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) {
            out.add((long) f.pos(i0) - left, (long) f.pos(i1 - 1) + right + 1, f.kvLen);
        }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            long p = f.pos(i);
            Node.setBits(dst, off, Node.clamp(p - left - j0, n), Node.clamp(p + right + 1 - j0, n));
        }
        @Override public String toString() { return left == right ? "slidingWindow(" + left + ")" : "slidingWindow(" + left + ", " + right + ")"; }
    }

    /**
     * Block bands: with b(x) = ⌊x / size⌋, key j is visible from the query at position p iff
     * b(p) − before ≤ b(j) ≤ b(p) + after, widened by {@code overlap} keys on each side. Covers
     * block-local attention (Parmar et al. 2018, Image Transformer), block-diagonal with overlap, and
     * BigBird's sliding window of blocks (Zaheer et al. 2020).
     */
    record Banded(int size, int before, int after, int overlap) implements Pattern, Node {
        Banded {
            positive("block size", size);
            nonNegative("before", before);
            nonNegative("after", after);
            nonNegative("overlap", overlap);
        }
        // |p| < 2^31 and every parameter < 2^31: each product below stays under 2^63.
        private long lo(long p) { return (Math.floorDiv(p, size) - before) * size - overlap; }
        private long hi(long p) { return (Math.floorDiv(p, size) + after + 1) * size + overlap; }
        public boolean allows(int i, int j, Frame f) { long p = f.pos(i); return j >= lo(p) && j < hi(p); }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            long p0 = f.pos(i0), p1 = f.pos(i1 - 1);
            return Node.intervalKind(lo(p0), hi(p0), lo(p1), hi(p1), j0, j1);
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { out.add(lo(f.pos(i0)), hi(f.pos(i1 - 1)), f.kvLen); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            long p = f.pos(i);
            Node.setBits(dst, off, Node.clamp(lo(p) - j0, n), Node.clamp(hi(p) - j0, n));
        }
        @Override public String toString() {
            if (before == 0 && after == 0 && overlap == 0) return "blockLocal(" + size + ")";
            if (before == 0 && after == 0) return "blockDiagonal(" + size + ", overlap " + overlap + ")";
            return "blockWindow(" + size + ", " + before + ", " + after + (overlap == 0 ? "" : ", overlap " + overlap) + ")";
        }
    }

    /** Key prefix: every query sees keys j < length (the bidirectional part of a prefix LM, Raffel et al. 2020). */
    record KeyPrefix(int length) implements Pattern, Node {
        KeyPrefix {
            nonNegative("prefix length", length);
        }
        public boolean allows(int i, int j, Frame f) { return j < length; }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) { return Node.intervalKind(0, length, 0, length, j0, j1); }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { out.add(0, length, f.kvLen); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            Node.setBits(dst, off, 0, Node.clamp((long) length - j0, n));
        }
        @Override public String toString() { return "keyPrefix(" + length + ")"; }
    }

    /**
     * Document (segment) masking for packed variable-length sequences: the query at position p sees
     * key j iff both lie in the same document. The documents must cover the kvLen keys exactly, and
     * every query position must fall inside them (checked at compile time).
     */
    static final class Documents implements Pattern, Node {
        private final int[] starts;   // starts[d] = first position of document d; starts[last] = total

        Documents(int[] lengths) {
            if (lengths == null || lengths.length == 0) throw new IllegalArgumentException("document lengths must list at least one document");
            starts = new int[lengths.length + 1];
            long total = 0;
            for (int d = 0; d < lengths.length; d++) {
                positive("document lengths[" + d + "]", lengths[d]);
                total += lengths[d];
                if (total > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("document lengths[0.." + d + "] sum to " + total + ", more than the largest sequence length " + Integer.MAX_VALUE);
                }
                starts[d + 1] = (int) total;
            }
        }
        private int doc(int x) {
            int pos = Arrays.binarySearch(starts, x);
            return pos >= 0 ? pos : -pos - 2;
        }
        @Override public void checkLengths(Frame f) {
            int total = starts[starts.length - 1];
            if (total != f.kvLen) {
                throw new IllegalArgumentException("document lengths sum to " + total + " but qLen=" + f.qLen + " and kvLen=" + f.kvLen
                        + ": the documents must cover the kvLen keys");
            }
            if (f.firstPos() < 0 || f.lastPos() >= total) {
                throw new IllegalArgumentException(this + " covers positions 0.." + (total - 1) + " but " + f.describe());
            }
        }
        public boolean allows(int i, int j, Frame f) { return doc(f.pos(i)) == doc(j); }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            int a = doc(f.pos(i0)), b = doc(f.pos(i1 - 1));
            return Node.intervalKind(starts[a], starts[a + 1], starts[b], starts[b + 1], j0, j1);
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { out.add(starts[doc(f.pos(i0))], starts[doc(f.pos(i1 - 1)) + 1], f.kvLen); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            int d = doc(f.pos(i));
            Node.setBits(dst, off, Node.clamp((long) starts[d] - j0, n), Node.clamp((long) starts[d + 1] - j0, n));
        }
        @Override public boolean equals(Object o) { return o instanceof Documents other && Arrays.equals(starts, other.starts); }
        @Override public int hashCode() { return Arrays.hashCode(starts); }
        @Override public String toString() {
            int[] lengths = new int[starts.length - 1];
            for (int d = 0; d < lengths.length; d++) lengths[d] = starts[d + 1] - starts[d];
            return "documents" + Arrays.toString(lengths);
        }
    }

    // ================================================================ modular rules

    /**
     * Dilated sliding window (Beltagy et al. 2020, Longformer): keys p + k·dilation for |k| ≤ window.
     * With dilation > 1 no two neighbouring pairs are both allowed, so only 1×1 tiles can be FULL.
     */
    record DilatedWindow(int window, int dilation) implements Pattern, Node {
        DilatedWindow {
            nonNegative("window", window);
            positive("dilation", dilation);
        }
        private long reach() { return (long) window * dilation; }
        public boolean allows(int i, int j, Frame f) {
            long diff = (long) f.pos(i) - j;
            return Math.abs(diff) <= reach() && Math.floorMod(diff, dilation) == 0;
        }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            long p0 = f.pos(i0), p1 = f.pos(i1 - 1);
            if (dilation == 1) return Node.intervalKind(p0 - window, p0 + window + 1, p1 - window, p1 + window + 1, j0, j1);
            long a = Math.max(p0 - (j1 - 1), -reach()), b = Math.min(p1 - j0, reach());
            if (a > b || Math.floorDiv(b, dilation) * dilation < a) return TileKind.EMPTY;
            return i1 - i0 == 1 && j1 - j0 == 1 ? TileKind.FULL : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { out.add((long) f.pos(i0) - reach(), (long) f.pos(i1 - 1) + reach() + 1, f.kvLen); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            // Only the steps k whose key p + k·dilation lands in [j0, j0 + n): O(n / dilation + 1), whatever the window.
            long p = f.pos(i);
            long kFrom = Math.max(-window, Math.ceilDiv((long) j0 - p, dilation));
            long kTo = Math.min(window, Math.floorDiv((long) j0 + n - 1 - p, dilation));
            for (long k = kFrom; k <= kTo; k++) {
                long c = p + k * dilation - j0;
                dst[off + (int) (c >>> 6)] |= 1L << c;
            }
        }
        @Override public String toString() { return "dilatedWindow(" + window + ", " + dilation + ")"; }
    }

    /** Strided attention (Child et al. 2019, Sparse Transformer, head 2 of "strided"): (p − j) mod stride = 0. */
    record Stride(int stride) implements Pattern, Node {
        Stride {
            positive("stride", stride);
        }
        public boolean allows(int i, int j, Frame f) { return Math.floorMod((long) f.pos(i) - j, stride) == 0; }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            if (stride == 1) return TileKind.FULL;
            long a = (long) f.pos(i0) - (j1 - 1), b = (long) f.pos(i1 - 1) - j0;
            if (Math.floorDiv(b, stride) * stride < a) return TileKind.EMPTY;
            return i1 - i0 == 1 && j1 - j0 == 1 ? TileKind.FULL : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { out.add(0, f.kvLen, f.kvLen); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            for (long c = Math.floorMod((long) f.pos(i) - j0, stride); c < n; c += stride) dst[off + (int) (c >>> 6)] |= 1L << c;
        }
        @Override public String toString() { return "stride(" + stride + ")"; }
    }

    /** Summary columns (Child et al. 2019, Sparse Transformer "fixed", head 2): j mod period ≥ period − width. */
    record SummaryColumns(int period, int width) implements Pattern, Node {
        SummaryColumns {
            positive("period", period);
            positive("summary width", width);
            if (width > period) throw new IllegalArgumentException("summary width=" + width + " must be <= period=" + period);
        }
        /** Allowed columns in [0, x). */
        private long countBelow(long x) { return (x / period) * width + Math.max(0, x % period - (period - width)); }
        public boolean allows(int i, int j, Frame f) { return j % period >= period - width; }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            long count = countBelow(j1) - countBelow(j0);
            return count == 0 ? TileKind.EMPTY : count == j1 - j0 ? TileKind.FULL : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) {
            // Gaps narrower than a key block leave no key block empty: one range then, not kvLen / period of them.
            if (period - width < out.grain) {
                out.add(0, f.kvLen, f.kvLen);
                return;
            }
            for (long p = 0; p < f.kvLen; p += period) out.add(p + period - width, p + period, f.kvLen);
        }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            long first = (long) j0 / period * period;
            for (long p = first; p < (long) j0 + n; p += period) {
                Node.setBits(dst, off, Node.clamp(p + period - width - j0, n), Node.clamp(p + period - j0, n));
            }
        }
        @Override public String toString() { return "summaryColumns(" + period + ", " + width + ")"; }
    }

    // ================================================================ index sets

    /**
     * Global tokens (Beltagy et al. 2020; Zaheer et al. 2020): the queries at the listed positions
     * attend to everything (rows) and/or the keys at the listed positions are attended by everything
     * (columns). Stored as runs of consecutive positions, so a block of global tokens costs O(1).
     * Checked at compile time: a column must be a key (&lt; kvLen) and a row must not lie past the
     * last query position (rows before the first query belong to earlier calls and match nothing).
     */
    static final class GlobalTokens implements Pattern, Node {
        private final int[] first, last;   // runs [first[r], last[r]], sorted, disjoint, not touching
        private final long[] before;       // before[r] = positions in runs 0..r-1
        private final boolean rows, columns;

        GlobalTokens(int[] indices, boolean rows, boolean columns) {
            if (indices == null || indices.length == 0) throw new IllegalArgumentException("global token indices must list at least one index");
            int[] sorted = indices.clone();
            Arrays.sort(sorted);
            int runs = 0;
            for (int k = 0; k < sorted.length; k++) {
                if (sorted[k] < 0) throw new IllegalArgumentException("global token index " + sorted[k] + " is negative");
                if (k > 0 && sorted[k] == sorted[k - 1]) throw new IllegalArgumentException("global token index " + sorted[k] + " is listed twice");
                if (k == 0 || sorted[k] != sorted[k - 1] + 1) runs++;
            }
            first = new int[runs];
            last = new int[runs];
            for (int k = 0, r = -1; k < sorted.length; k++) {
                if (k == 0 || sorted[k] != sorted[k - 1] + 1) first[++r] = sorted[k];
                last[r] = sorted[k];
            }
            before = prefixCounts(first, last);
            this.rows = rows;
            this.columns = columns;
        }

        /** The positions [from, from + count) as one run (BigBird's global blocks). */
        GlobalTokens(int from, int count, boolean rows, boolean columns) {
            nonNegative("global token index", from);
            positive("global token count", count);
            if ((long) from + count - 1 > Integer.MAX_VALUE) throw new IllegalArgumentException("global tokens " + from + ".." + ((long) from + count - 1) + " run past the largest position " + Integer.MAX_VALUE);
            first = new int[] {from};
            last = new int[] {from + count - 1};
            before = prefixCounts(first, last);
            this.rows = rows;
            this.columns = columns;
        }

        private static long[] prefixCounts(int[] first, int[] last) {
            long[] before = new long[first.length + 1];
            for (int r = 0; r < first.length; r++) before[r + 1] = before[r] + ((long) last[r] - first[r] + 1);
            return before;
        }

        private int lastIndex() { return last[last.length - 1]; }

        @Override public void checkLengths(Frame f) {
            if (rows && lastIndex() > f.lastPos()) {
                throw new IllegalArgumentException(f.offset == 0
                        ? "global token index " + lastIndex() + " is out of range for qLen=" + f.qLen
                        : "global token index " + lastIndex() + " is past the last query position " + f.lastPos() + " for " + f.describe());
            }
            if (columns && lastIndex() >= f.kvLen) throw new IllegalArgumentException("global token index " + lastIndex() + " is out of range for kvLen=" + f.kvLen);
        }
        /** Listed positions below x. */
        private long countBelow(long x) {
            int runsStarted;   // runs with first < x
            if (x > Integer.MAX_VALUE) {
                runsStarted = first.length;
            } else if (x <= 0) {
                return 0;
            } else {
                int r = Arrays.binarySearch(first, (int) x);
                runsStarted = r >= 0 ? r : -r - 1;
            }
            if (runsStarted == 0) return 0;
            int k = runsStarted - 1;
            return before[k] + Math.min((long) last[k] + 1, x) - first[k];
        }
        private boolean contains(int x) {
            int r = Arrays.binarySearch(first, x);
            if (r >= 0) return true;
            int k = -r - 2;   // the last run starting before x
            return k >= 0 && x <= last[k];
        }
        private long countIn(long from, long to) { return countBelow(to) - countBelow(from); }
        public boolean allows(int i, int j, Frame f) { return (rows && contains(f.pos(i))) || (columns && contains(j)); }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            long r = rows ? countIn(f.pos(i0), (long) f.pos(i1 - 1) + 1) : 0, c = columns ? countIn(j0, j1) : 0;
            if (r == i1 - i0 || c == j1 - j0) return TileKind.FULL;
            return r == 0 && c == 0 ? TileKind.EMPTY : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) {
            if (rows && countIn(f.pos(i0), (long) f.pos(i1 - 1) + 1) > 0) {
                out.add(0, f.kvLen, f.kvLen);
            } else if (columns) {
                for (int r = 0; r < first.length; r++) out.add(first[r], (long) last[r] + 1, f.kvLen);
            }
        }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            if (rows && contains(f.pos(i))) {
                Node.setBits(dst, off, 0, n);
            } else if (columns) {
                int a = Arrays.binarySearch(last, j0);
                for (int r = a >= 0 ? a : -a - 1; r < first.length && first[r] < (long) j0 + n; r++) {
                    Node.setBits(dst, off, Node.clamp((long) first[r] - j0, n), Node.clamp((long) last[r] + 1 - j0, n));
                }
            }
        }
        @Override public boolean equals(Object o) {
            return o instanceof GlobalTokens g && g.rows == rows && g.columns == columns && Arrays.equals(g.first, first) && Arrays.equals(g.last, last);
        }
        @Override public int hashCode() { return (Arrays.hashCode(first) * 31 + Arrays.hashCode(last)) * 4 + (rows ? 2 : 0) + (columns ? 1 : 0); }
        /** Runs of consecutive indices print as a..b, so BigBird's global blocks stay readable. */
        @Override public String toString() {
            StringBuilder sb = new StringBuilder(rows && columns ? "globalTokens[" : rows ? "globalRows[" : "globalColumns[");
            for (int r = 0; r < first.length; r++) {
                if (r > 0) sb.append(", ");
                sb.append(first[r]);
                if (last[r] > first[r]) sb.append(last[r] == first[r] + 1 ? ", " : "..").append(last[r]);
            }
            return sb.append(']').toString();
        }
    }

    /**
     * Seeded random blocks (Zaheer et al. 2020, BigBird): with b(x) = ⌊x / blockSize⌋, the queries of
     * position block b(p) attend to {@code count} distinct key blocks drawn from that block's own
     * seeded stream (from key blocks ≤ b(p) when causal), so the pattern is reproducible from the
     * seed alone and a decoding step sees the blocks its position saw in the prefill.
     */
    record RandomBlocks(int blockSize, int count, long seed, boolean causal) implements Pattern, Node {
        RandomBlocks {
            positive("block size", blockSize);
            nonNegative("random blocks", count);
        }
        private static final int[] NONE = new int[0];

        /**
         * The sorted key blocks position block qb attends to. Each thread keeps every block's draw for
         * the pattern and length it last served, so regenerating PARTIAL tile masks on each
         * attention call allocates nothing after the first.
         */
        int[] blocksOf(int qb, int kvLen) {
            Draws draws = DRAWS.get();
            if (draws.owner != this || draws.kvLen != kvLen) {
                draws.owner = this;
                draws.kvLen = kvLen;
                draws.byBlock = new int[0][];
                draws.byNegativeBlock = new int[0][];
            }
            // Blocks before position 0 (bottom-right with qLen > kvLen) have their own table.
            boolean negative = qb < 0;
            int slot = negative ? -(qb + 1) : qb;
            int[][] table = negative ? draws.byNegativeBlock : draws.byBlock;
            if (slot >= table.length) {
                table = Arrays.copyOf(table, (int) Math.min(Integer.MAX_VALUE - 8, Math.max(slot + 1L, 2L * table.length)));
                if (negative) draws.byNegativeBlock = table; else draws.byBlock = table;
            }
            int[] blocks = table[slot];
            if (blocks == null) blocks = table[slot] = drawBlocks(qb, kvLen);
            return blocks;
        }

        private static final class Draws { RandomBlocks owner; int kvLen; int[][] byBlock, byNegativeBlock; }

        private static final ThreadLocal<Draws> DRAWS = ThreadLocal.withInitial(Draws::new);

        private int[] drawBlocks(int qb, int kvLen) {
            long available = Math.ceilDiv((long) kvLen, blockSize);
            if (causal) available = Math.min(available, (long) qb + 1);
            if (available <= 0) return NONE;
            int r = (int) Math.min(count, available);
            int[] chosen = new int[r];
            if (r == available) {
                for (int k = 0; k < r; k++) chosen[k] = k;
                return chosen;
            }
            // Floyd's algorithm: r distinct values from [0, available) in O(r) draws; a hash set
            // answers "drawn already?" so the cost stays O(r) however large r is.
            SplittableRandom random = new SplittableRandom(seed ^ (0x9E3779B97F4A7C15L * (qb + 1)));
            Drawn seen = r >= available / 64 ? new BitDrawn(available) : new HashDrawn(r);
            int n = 0;
            for (long t = available - r; t < available; t++) {
                int x = random.nextInt((int) t + 1);
                int pick = seen.add(x) ? x : (int) t;
                if (pick != x) seen.add(pick);
                chosen[n++] = pick;
            }
            Arrays.sort(chosen);
            return chosen;
        }
        private int block(int position) { return Math.floorDiv(position, blockSize); }
        public boolean allows(int i, int j, Frame f) { return Arrays.binarySearch(blocksOf(block(f.pos(i)), f.kvLen), j / blockSize) >= 0; }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            boolean any = false, all = true;
            int kbFirst = j0 / blockSize, kbLast = (j1 - 1) / blockSize;
            for (int qb = block(f.pos(i0)); qb <= block(f.pos(i1 - 1)); qb++) {
                int[] blocks = blocksOf(qb, f.kvLen);
                // Blocks are sorted and distinct: the tile is covered iff every key block it touches is drawn.
                int from = Arrays.binarySearch(blocks, kbFirst), to = Arrays.binarySearch(blocks, kbLast);
                int a = from >= 0 ? from : -from - 1, b = to >= 0 ? to + 1 : -to - 1;
                any |= b > a;
                all &= b - a == kbLast - kbFirst + 1;
            }
            return !any ? TileKind.EMPTY : all ? TileKind.FULL : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) {
            for (int qb = block(f.pos(i0)); qb <= block(f.pos(i1 - 1)); qb++) {
                for (int kb : blocksOf(qb, f.kvLen)) out.add((long) kb * blockSize, (long) (kb + 1) * blockSize, f.kvLen);
            }
        }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            int[] blocks = blocksOf(block(f.pos(i)), f.kvLen);
            int k = Arrays.binarySearch(blocks, j0 / blockSize);
            for (k = k >= 0 ? k : -k - 1; k < blocks.length && (long) blocks[k] * blockSize < (long) j0 + n; k++) {
                Node.setBits(dst, off, Node.clamp((long) blocks[k] * blockSize - j0, n), Node.clamp((long) (blocks[k] + 1) * blockSize - j0, n));
            }
        }
        @Override public String toString() { return "randomBlocks(" + blockSize + ", " + count + ", seed " + seed + (causal ? ", causal" : "") + ")"; }

        /** The blocks drawn so far: {@code add} is false if x was drawn already. */
        private interface Drawn { boolean add(int x); }

        /** One bit per available block: used when r ≥ available / 64, so its size is O(r). */
        private static final class BitDrawn implements Drawn {
            private final long[] bits;
            BitDrawn(long available) { bits = new long[(int) ((available + 63) >>> 6)]; }
            public boolean add(int x) {
                long old = bits[x >>> 6];
                bits[x >>> 6] = old | (1L << x);
                return (old & (1L << x)) == 0;
            }
        }

        /** Open addressing, at most half full: used when r < available / 64 (so r < 2^25). */
        private static final class HashDrawn implements Drawn {
            private final int[] slots;   // value + 1, 0 = empty
            private final int mask;
            HashDrawn(int expected) {
                int capacity = Integer.highestOneBit(Math.max(4, expected) * 2 - 1) << 1;
                slots = new int[capacity];
                mask = capacity - 1;
            }
            public boolean add(int x) {
                for (int h = (x * 0x9E3779B9) & mask; ; h = (h + 1) & mask) {
                    if (slots[h] == 0) { slots[h] = x + 1; return true; }
                    if (slots[h] == x + 1) return false;
                }
            }
        }
    }

    /**
     * Axial attention (Ho et al. 2019) over a sequence laid out as rows × cols (row-major): the query
     * at position p sees key j iff they share a row or a column. The keys must be the whole grid and
     * every query position must lie on it.
     */
    static final class Axial implements Pattern, Node {
        private final int rows, cols;
        private final Node impl;

        Axial(int rows, int cols) {
            this.rows = positive("rows", rows);
            this.cols = positive("cols", cols);
            this.impl = new Or(new Banded(cols, 0, 0, 0), new Stride(cols));
        }
        @Override public void checkLengths(Frame f) {
            long n = (long) rows * cols;
            if (f.kvLen != n) {
                throw new IllegalArgumentException("axial " + rows + "x" + cols + " needs qLen = kvLen = " + n + " (or kvLen = " + n
                        + " with the queries on the grid), got qLen=" + f.qLen + ", kvLen=" + f.kvLen);
            }
            if (f.firstPos() < 0 || f.lastPos() >= n) {
                throw new IllegalArgumentException("axial " + rows + "x" + cols + " covers positions 0.." + (n - 1) + " but " + f.describe());
            }
        }
        public boolean allows(int i, int j, Frame f) { int p = f.pos(i); return p / cols == j / cols || p % cols == j % cols; }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) { return impl.classify(i0, i1, j0, j1, f); }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { impl.keyRanges(i0, i1, f, out); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) { impl.fillRow(i, j0, n, f, dst, off, s); }
        @Override public boolean equals(Object o) { return o instanceof Axial a && a.rows == rows && a.cols == cols; }
        @Override public int hashCode() { return 31 * rows + cols; }
        @Override public String toString() { return "axial(" + rows + "x" + cols + ")"; }
    }

    // ================================================================ escape hatch

    /**
     * Any predicate (FlexAttention's mask_mod): exact, classified by evaluating elements; PARTIAL
     * masks are stored. It is called with the raw (query index, key index), as FlexAttention calls
     * mask_mod, so {@code predicate(name, p.predicate(qLen, kvLen))} reproduces {@code p}.
     */
    record Predicate(String name, ElementPredicate predicate) implements Pattern, Node {
        Predicate {
            if (name == null || name.isBlank()) throw new IllegalArgumentException("predicate name must be non-blank");
            if (predicate == null) throw new NullPointerException("predicate");
        }
        public boolean allows(int i, int j, Frame f) { return predicate.allows(i, j); }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) { return null; }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { out.add(0, f.kvLen, f.kvLen); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            for (int c = 0; c < n; c++) if (predicate.allows(i, j0 + c)) dst[off + (c >>> 6)] |= 1L << c;
        }
        @Override public boolean cheapMasks() { return false; }
        @Override public String toString() { return "predicate(" + name + ")"; }
    }

    // ================================================================ alignment and combinators

    /** A pattern with its alignment named: {@code p.aligned(BOTTOM_RIGHT)}. */
    record Aligned(Pattern pattern, CausalAlignment alignment) implements Pattern, Node {
        Aligned {
            if (pattern == null) throw new NullPointerException("pattern");
            if (alignment == null) throw new NullPointerException("alignment");
            CausalAlignment own = ((Node) pattern).explicitAlignment();
            if (own != null && own != alignment) {
                throw new IllegalArgumentException("aligned(" + alignment + ") contradicts " + pattern + ", which is " + own);
            }
        }
        private Node p() { return (Node) pattern; }
        @Override public CausalAlignment explicitAlignment() { return alignment; }
        @Override public void checkLengths(Frame f) { p().checkLengths(f); }
        public boolean allows(int i, int j, Frame f) { return p().allows(i, j, f); }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) { return p().classify(i0, i1, j0, j1, f); }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) { p().keyRanges(i0, i1, f, out); }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) { p().fillRow(i, j0, n, f, dst, off, s); }
        @Override public boolean cheapMasks() { return p().cheapMasks(); }
        @Override public String toString() { return pattern + ".aligned(" + alignment + ")"; }
    }

    /** Intersection: FULL∧x = x, EMPTY∧x = EMPTY; PARTIAL∧PARTIAL is decided from elements. */
    record And(Pattern left, Pattern right) implements Pattern, Node {
        And {
            if (left == null || right == null) throw new NullPointerException("and() operand");
            combine("and", left, right);
        }
        private Node l() { return (Node) left; }
        private Node r() { return (Node) right; }
        @Override public CausalAlignment explicitAlignment() { return combine("and", left, right); }
        @Override public void checkLengths(Frame f) { l().checkLengths(f); r().checkLengths(f); }
        public boolean allows(int i, int j, Frame f) { return l().allows(i, j, f) && r().allows(i, j, f); }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            TileKind a = l().classify(i0, i1, j0, j1, f);
            if (a == TileKind.EMPTY) return a;
            TileKind b = r().classify(i0, i1, j0, j1, f);
            if (b == TileKind.EMPTY) return b;
            if (a == TileKind.FULL) return b;
            if (b == TileKind.FULL) return a;
            return null;
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) {
            MaskScratch scratch = MaskScratch.local();   // per-thread operands: a decode step classifies without allocating
            KeyRanges a = scratch.pushRanges(out.grain);
            try {
                KeyRanges b = scratch.pushRanges(out.grain);
                try {
                    l().keyRanges(i0, i1, f, a);
                    r().keyRanges(i0, i1, f, b);
                    a.normalize();
                    b.normalize();
                    a.intersect(b);
                    out.addAll(a);
                } finally {
                    scratch.popRanges();
                }
            } finally {
                scratch.popRanges();
            }
        }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            int words = (n + 63) >>> 6;
            long[] a = s.push(words);
            try {
                long[] b = s.push(words);
                try {
                    l().fillRow(i, j0, n, f, a, 0, s);
                    r().fillRow(i, j0, n, f, b, 0, s);
                    for (int w = 0; w < words; w++) dst[off + w] |= a[w] & b[w];
                } finally {
                    s.pop();
                }
            } finally {
                s.pop();
            }
        }
        @Override public boolean cheapMasks() { return l().cheapMasks() && r().cheapMasks(); }
        @Override public String toString() { return left + ".and(" + right + ")"; }
    }

    /** Union: FULL∨x = FULL, EMPTY∨x = x; PARTIAL∨PARTIAL is decided from elements. */
    record Or(Pattern left, Pattern right) implements Pattern, Node {
        Or {
            if (left == null || right == null) throw new NullPointerException("or() operand");
            combine("or", left, right);
        }
        private Node l() { return (Node) left; }
        private Node r() { return (Node) right; }
        @Override public CausalAlignment explicitAlignment() { return combine("or", left, right); }
        @Override public void checkLengths(Frame f) { l().checkLengths(f); r().checkLengths(f); }
        public boolean allows(int i, int j, Frame f) { return l().allows(i, j, f) || r().allows(i, j, f); }
        public TileKind classify(int i0, int i1, int j0, int j1, Frame f) {
            TileKind a = l().classify(i0, i1, j0, j1, f);
            if (a == TileKind.FULL) return a;
            TileKind b = r().classify(i0, i1, j0, j1, f);
            if (b == TileKind.FULL) return b;
            if (a == TileKind.EMPTY) return b;
            if (b == TileKind.EMPTY) return a;
            return null;
        }
        public void keyRanges(int i0, int i1, Frame f, KeyRanges out) {
            l().keyRanges(i0, i1, f, out);
            r().keyRanges(i0, i1, f, out);
        }
        public void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch s) {
            l().fillRow(i, j0, n, f, dst, off, s);
            r().fillRow(i, j0, n, f, dst, off, s);
        }
        @Override public boolean cheapMasks() { return l().cheapMasks() && r().cheapMasks(); }
        @Override public String toString() { return left + ".or(" + right + ")"; }
    }
}
