package io.tessera.pattern;

import io.tessera.layout.TileKind;

import java.util.Arrays;
import java.util.SplittableRandom;

/** The primitive patterns and the two combinators. Built through the factories on {@link Pattern}. */
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

    // ================================================================ full

    record Full() implements Pattern, Node {
        public boolean allows(int i, int j, int qLen, int kvLen) { return true; }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) { return TileKind.FULL; }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { out.add(0, kvLen, kvLen); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) { Node.setBits(dst, off, 0, n); }
        @Override public String toString() { return "full()"; }
    }

    // ================================================================ interval rules

    /** Causal masking (Vaswani et al. 2017, decoder self-attention): key j visible from query i iff j ≤ i + shift. */
    record Causal(CausalAlignment alignment) implements Pattern, Node {
        Causal {
            if (alignment == null) throw new NullPointerException("alignment");
        }
        public boolean allows(int i, int j, int qLen, int kvLen) { return alignment.allows(i, j, qLen, kvLen); }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            long s = alignment.diagonalShift(qLen, kvLen);
            return Node.intervalKind(0, i0 + s + 1, 0, (long) i1 - 1 + s + 1, j0, j1);
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) {
            out.add(0, (long) i1 - 1 + alignment.diagonalShift(qLen, kvLen) + 1, kvLen);
        }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            long hi = i + alignment.diagonalShift(qLen, kvLen) + 1 - j0;
            Node.setBits(dst, off, 0, (int) Math.max(0, Math.min(n, hi)));
        }
        @Override public String toString() { return alignment == CausalAlignment.TOP_LEFT ? "causal()" : "causal(BOTTOM_RIGHT)"; }
    }

    /** Sliding window (Beltagy et al. 2020 Longformer; Jiang et al. 2023 Mistral): i − left ≤ j ≤ i + right. */
    record SlidingWindow(int left, int right) implements Pattern, Node {
        SlidingWindow {
            nonNegative("left", left);
            nonNegative("right", right);
        }
        public boolean allows(int i, int j, int qLen, int kvLen) { return j >= (long) i - left && j <= (long) i + right; }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            return Node.intervalKind((long) i0 - left, (long) i0 + right + 1, (long) i1 - 1 - left, (long) i1 + right, j0, j1);
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { out.add((long) i0 - left, (long) i1 + right, kvLen); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            long lo = (long) i - left - j0, hi = (long) i + right + 1 - j0;
            Node.setBits(dst, off, (int) Math.max(0, Math.min(n, lo)), (int) Math.max(0, Math.min(n, hi)));
        }
        @Override public String toString() { return left == right ? "slidingWindow(" + left + ")" : "slidingWindow(" + left + ", " + right + ")"; }
    }

    /**
     * Block bands: with b(x) = x / size, key j is visible from query i iff
     * b(i) − before ≤ b(j) ≤ b(i) + after, widened by {@code overlap} keys on each side. Covers
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
        private long lo(int i) { return ((long) (i / size) - before) * size - overlap; }
        private long hi(int i) { return ((long) (i / size) + after + 1) * size + overlap; }
        public boolean allows(int i, int j, int qLen, int kvLen) { return j >= lo(i) && j < hi(i); }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            return Node.intervalKind(lo(i0), hi(i0), lo(i1 - 1), hi(i1 - 1), j0, j1);
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { out.add(lo(i0), hi(i1 - 1), kvLen); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            Node.setBits(dst, off, (int) Math.max(0, Math.min(n, lo(i) - j0)), (int) Math.max(0, Math.min(n, hi(i) - j0)));
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
        public boolean allows(int i, int j, int qLen, int kvLen) { return j < length; }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) { return Node.intervalKind(0, length, 0, length, j0, j1); }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { out.add(0, length, kvLen); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            Node.setBits(dst, off, 0, Math.max(0, Math.min(n, length - j0)));
        }
        @Override public String toString() { return "keyPrefix(" + length + ")"; }
    }

    /**
     * Document (segment) masking for packed variable-length sequences: query i sees key j iff both lie
     * in the same document. Lengths are checked against the call's lengths at compile time.
     */
    static final class Documents implements Pattern, Node {
        private final int[] starts;   // starts[d] = first position of document d; starts[last] = total

        Documents(int[] lengths) {
            if (lengths == null || lengths.length == 0) throw new IllegalArgumentException("document lengths must list at least one document");
            starts = new int[lengths.length + 1];
            for (int d = 0; d < lengths.length; d++) {
                positive("document lengths[" + d + "]", lengths[d]);
                starts[d + 1] = Math.addExact(starts[d], lengths[d]);
            }
        }
        private int doc(int x) {
            int pos = Arrays.binarySearch(starts, x);
            return pos >= 0 ? pos : -pos - 2;
        }
        @Override public void checkLengths(int qLen, int kvLen) {
            int total = starts[starts.length - 1];
            if (total != qLen || total != kvLen) {
                throw new IllegalArgumentException("document lengths sum to " + total + " but qLen=" + qLen + " and kvLen=" + kvLen);
            }
        }
        public boolean allows(int i, int j, int qLen, int kvLen) { return doc(i) == doc(j); }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            int a = doc(i0), b = doc(i1 - 1);
            return Node.intervalKind(starts[a], starts[a + 1], starts[b], starts[b + 1], j0, j1);
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { out.add(starts[doc(i0)], starts[doc(i1 - 1) + 1], kvLen); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            int d = doc(i);
            Node.setBits(dst, off, Math.max(0, Math.min(n, starts[d] - j0)), Math.max(0, Math.min(n, starts[d + 1] - j0)));
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
     * Dilated sliding window (Beltagy et al. 2020, Longformer): keys i + k·dilation for |k| ≤ window.
     * With dilation > 1 no two neighbouring pairs are both allowed, so only 1×1 tiles can be FULL.
     */
    record DilatedWindow(int window, int dilation) implements Pattern, Node {
        DilatedWindow {
            nonNegative("window", window);
            positive("dilation", dilation);
        }
        private long reach() { return (long) window * dilation; }
        public boolean allows(int i, int j, int qLen, int kvLen) {
            long diff = (long) i - j;
            return Math.abs(diff) <= reach() && Math.floorMod(diff, dilation) == 0;
        }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            if (dilation == 1) return Node.intervalKind((long) i0 - window, (long) i0 + window + 1, (long) i1 - 1 - window, (long) i1 + window, j0, j1);
            long a = Math.max((long) i0 - (j1 - 1), -reach()), b = Math.min((long) i1 - 1 - j0, reach());
            if (a > b || Math.floorDiv(b, dilation) * dilation < a) return TileKind.EMPTY;
            return i1 - i0 == 1 && j1 - j0 == 1 ? TileKind.FULL : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { out.add((long) i0 - reach(), (long) i1 + reach(), kvLen); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            for (int k = -window; k <= window; k++) {
                long c = (long) i + (long) k * dilation - j0;
                if (c >= 0 && c < n) dst[off + (int) (c >>> 6)] |= 1L << c;
            }
        }
        @Override public String toString() { return "dilatedWindow(" + window + ", " + dilation + ")"; }
    }

    /** Strided attention (Child et al. 2019, Sparse Transformer, head 2 of "strided"): (i − j) mod stride = 0. */
    record Stride(int stride) implements Pattern, Node {
        Stride {
            positive("stride", stride);
        }
        public boolean allows(int i, int j, int qLen, int kvLen) { return Math.floorMod((long) i - j, stride) == 0; }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            if (stride == 1) return TileKind.FULL;
            long a = (long) i0 - (j1 - 1), b = (long) i1 - 1 - j0;
            if (Math.floorDiv(b, stride) * stride < a) return TileKind.EMPTY;
            return i1 - i0 == 1 && j1 - j0 == 1 ? TileKind.FULL : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { out.add(0, kvLen, kvLen); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            for (long c = Math.floorMod((long) i - j0, stride); c < n; c += stride) dst[off + (int) (c >>> 6)] |= 1L << c;
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
        public boolean allows(int i, int j, int qLen, int kvLen) { return j % period >= period - width; }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            long count = countBelow(j1) - countBelow(j0);
            return count == 0 ? TileKind.EMPTY : count == j1 - j0 ? TileKind.FULL : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) {
            for (long p = 0; p < kvLen; p += period) out.add(p + period - width, p + period, kvLen);
        }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            long first = (long) j0 / period * period;
            for (long p = first; p < (long) j0 + n; p += period) {
                Node.setBits(dst, off, (int) Math.max(0, p + period - width - j0), (int) Math.min(n, p + period - j0));
            }
        }
        @Override public String toString() { return "summaryColumns(" + period + ", " + width + ")"; }
    }

    // ================================================================ index sets

    /**
     * Global tokens (Beltagy et al. 2020; Zaheer et al. 2020): listed positions attend to everything
     * (rows) and/or are attended by everything (columns). Indices are checked at compile time.
     */
    static final class GlobalTokens implements Pattern, Node {
        private final int[] indices;   // sorted, distinct
        private final boolean rows, columns;

        GlobalTokens(int[] indices, boolean rows, boolean columns) {
            if (indices == null || indices.length == 0) throw new IllegalArgumentException("global token indices must list at least one index");
            int[] sorted = indices.clone();
            Arrays.sort(sorted);
            for (int k = 0; k < sorted.length; k++) {
                if (sorted[k] < 0) throw new IllegalArgumentException("global token index " + sorted[k] + " is negative");
                if (k > 0 && sorted[k] == sorted[k - 1]) throw new IllegalArgumentException("global token index " + sorted[k] + " is listed twice");
            }
            this.indices = sorted;
            this.rows = rows;
            this.columns = columns;
        }
        @Override public void checkLengths(int qLen, int kvLen) {
            int last = indices[indices.length - 1];
            if (rows && last >= qLen) throw new IllegalArgumentException("global token index " + last + " is out of range for qLen=" + qLen);
            if (columns && last >= kvLen) throw new IllegalArgumentException("global token index " + last + " is out of range for kvLen=" + kvLen);
        }
        private boolean contains(int x) { return Arrays.binarySearch(indices, x) >= 0; }
        private int countIn(int from, int to) {
            int a = Arrays.binarySearch(indices, from), b = Arrays.binarySearch(indices, to);
            return (b >= 0 ? b : -b - 1) - (a >= 0 ? a : -a - 1);
        }
        public boolean allows(int i, int j, int qLen, int kvLen) { return (rows && contains(i)) || (columns && contains(j)); }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            int r = rows ? countIn(i0, i1) : 0, c = columns ? countIn(j0, j1) : 0;
            if (r == i1 - i0 || c == j1 - j0) return TileKind.FULL;
            return r == 0 && c == 0 ? TileKind.EMPTY : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) {
            if (rows && countIn(i0, i1) > 0) {
                out.add(0, kvLen, kvLen);
            } else if (columns) {
                for (int g : indices) out.add(g, (long) g + 1, kvLen);
            }
        }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            if (rows && contains(i)) {
                Node.setBits(dst, off, 0, n);
            } else if (columns) {
                int a = Arrays.binarySearch(indices, j0);
                for (int k = a >= 0 ? a : -a - 1; k < indices.length && indices[k] < j0 + n; k++) {
                    int c = indices[k] - j0;
                    dst[off + (c >>> 6)] |= 1L << c;
                }
            }
        }
        @Override public boolean equals(Object o) {
            return o instanceof GlobalTokens g && g.rows == rows && g.columns == columns && Arrays.equals(g.indices, indices);
        }
        @Override public int hashCode() { return Arrays.hashCode(indices) * 4 + (rows ? 2 : 0) + (columns ? 1 : 0); }
        /** Runs of consecutive indices print as a..b, so BigBird's global blocks stay readable. */
        @Override public String toString() {
            StringBuilder sb = new StringBuilder(rows && columns ? "globalTokens[" : rows ? "globalRows[" : "globalColumns[");
            for (int k = 0; k < indices.length; ) {
                int end = k;
                while (end + 1 < indices.length && indices[end + 1] == indices[end] + 1) end++;
                if (k > 0) sb.append(", ");
                sb.append(indices[k]);
                if (end > k) sb.append(end == k + 1 ? ", " : "..").append(indices[end]);
                k = end + 1;
            }
            return sb.append(']').toString();
        }
    }

    /**
     * Seeded random blocks (Zaheer et al. 2020, BigBird): with b(x) = x / blockSize, each query block
     * attends to {@code count} distinct key blocks drawn from its own seeded stream (from blocks
     * ≤ its own index when causal), so the pattern is reproducible from the seed alone.
     */
    record RandomBlocks(int blockSize, int count, long seed, boolean causal) implements Pattern, Node {
        RandomBlocks {
            positive("block size", blockSize);
            nonNegative("random blocks", count);
        }
        /**
         * The sorted key blocks query block qb attends to. Each thread keeps every block's draw for
         * the pattern and length it last served, so regenerating PARTIAL tile masks on each
         * attention call allocates nothing after the first.
         */
        int[] blocksOf(int qb, int kvLen) {
            Draws draws = DRAWS.get();
            if (draws.owner != this || draws.kvLen != kvLen) {
                draws.owner = this;
                draws.kvLen = kvLen;
                draws.byBlock = new int[0][];
            }
            if (qb >= draws.byBlock.length) draws.byBlock = Arrays.copyOf(draws.byBlock, Math.max(qb + 1, 2 * draws.byBlock.length));
            int[] blocks = draws.byBlock[qb];
            if (blocks == null) blocks = draws.byBlock[qb] = drawBlocks(qb, kvLen);
            return blocks;
        }

        private static final class Draws { RandomBlocks owner; int kvLen; int[][] byBlock; }

        private static final ThreadLocal<Draws> DRAWS = ThreadLocal.withInitial(Draws::new);

        private int[] drawBlocks(int qb, int kvLen) {
            int available = (kvLen + blockSize - 1) / blockSize;
            if (causal) available = Math.min(available, qb + 1);
            int r = Math.min(count, available);
            int[] chosen = new int[r];
            if (r == available) {
                for (int k = 0; k < r; k++) chosen[k] = k;
                return chosen;
            }
            // Floyd's algorithm: r distinct values from [0, available) in O(r) draws.
            SplittableRandom random = new SplittableRandom(seed ^ (0x9E3779B97F4A7C15L * (qb + 1)));
            int n = 0;
            for (int t = available - r; t < available; t++) {
                int x = random.nextInt(t + 1);
                boolean seen = false;
                for (int k = 0; k < n; k++) seen |= chosen[k] == x;
                chosen[n++] = seen ? t : x;
            }
            Arrays.sort(chosen);
            return chosen;
        }
        public boolean allows(int i, int j, int qLen, int kvLen) { return Arrays.binarySearch(blocksOf(i / blockSize, kvLen), j / blockSize) >= 0; }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            boolean any = false, all = true;
            for (int qb = i0 / blockSize; qb <= (i1 - 1) / blockSize; qb++) {
                long covered = 0;
                for (int kb : blocksOf(qb, kvLen)) {
                    covered += Math.max(0, Math.min(j1, (long) (kb + 1) * blockSize) - Math.max(j0, (long) kb * blockSize));
                }
                any |= covered > 0;
                all &= covered == j1 - j0;
            }
            return !any ? TileKind.EMPTY : all ? TileKind.FULL : TileKind.PARTIAL;
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) {
            for (int qb = i0 / blockSize; qb <= (i1 - 1) / blockSize; qb++) {
                for (int kb : blocksOf(qb, kvLen)) out.add((long) kb * blockSize, (long) (kb + 1) * blockSize, kvLen);
            }
        }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            for (int kb : blocksOf(i / blockSize, kvLen)) {
                Node.setBits(dst, off, (int) Math.max(0, (long) kb * blockSize - j0), (int) Math.max(0, Math.min(n, (long) (kb + 1) * blockSize - j0)));
            }
        }
        @Override public String toString() { return "randomBlocks(" + blockSize + ", " + count + ", seed " + seed + (causal ? ", causal" : "") + ")"; }
    }

    /**
     * Axial attention (Ho et al. 2019) over a sequence laid out as rows × cols (row-major): query i
     * sees key j iff they share a row or a column.
     */
    static final class Axial implements Pattern, Node {
        private final int rows, cols;
        private final Node impl;

        Axial(int rows, int cols) {
            this.rows = positive("rows", rows);
            this.cols = positive("cols", cols);
            this.impl = new Or(new Banded(cols, 0, 0, 0), new Stride(cols));
        }
        @Override public void checkLengths(int qLen, int kvLen) {
            long n = (long) rows * cols;
            if (qLen != n || kvLen != n) {
                throw new IllegalArgumentException("axial " + rows + "x" + cols + " needs qLen = kvLen = " + n + ", got qLen=" + qLen + ", kvLen=" + kvLen);
            }
        }
        public boolean allows(int i, int j, int qLen, int kvLen) { return i / cols == j / cols || i % cols == j % cols; }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) { return impl.classify(i0, i1, j0, j1, qLen, kvLen); }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { impl.keyRanges(i0, i1, qLen, kvLen, out); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) { impl.fillRow(i, j0, n, qLen, kvLen, dst, off, s); }
        @Override public boolean equals(Object o) { return o instanceof Axial a && a.rows == rows && a.cols == cols; }
        @Override public int hashCode() { return 31 * rows + cols; }
        @Override public String toString() { return "axial(" + rows + "x" + cols + ")"; }
    }

    // ================================================================ escape hatch

    /** Any predicate (FlexAttention's mask_mod): exact, classified by evaluating elements; PARTIAL masks are stored. */
    record Predicate(String name, ElementPredicate predicate) implements Pattern, Node {
        Predicate {
            if (name == null || name.isBlank()) throw new IllegalArgumentException("predicate name must be non-blank");
            if (predicate == null) throw new NullPointerException("predicate");
        }
        public boolean allows(int i, int j, int qLen, int kvLen) { return predicate.allows(i, j); }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) { return null; }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) { out.add(0, kvLen, kvLen); }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            for (int c = 0; c < n; c++) if (predicate.allows(i, j0 + c)) dst[off + (c >>> 6)] |= 1L << c;
        }
        @Override public boolean cheapMasks() { return false; }
        @Override public String toString() { return "predicate(" + name + ")"; }
    }

    // ================================================================ combinators

    /** Intersection: FULL∧x = x, EMPTY∧x = EMPTY; PARTIAL∧PARTIAL is decided from elements. */
    record And(Pattern left, Pattern right) implements Pattern, Node {
        And {
            if (left == null || right == null) throw new NullPointerException("and() operand");
        }
        private Node l() { return (Node) left; }
        private Node r() { return (Node) right; }
        @Override public void checkLengths(int qLen, int kvLen) { l().checkLengths(qLen, kvLen); r().checkLengths(qLen, kvLen); }
        public boolean allows(int i, int j, int qLen, int kvLen) { return l().allows(i, j, qLen, kvLen) && r().allows(i, j, qLen, kvLen); }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            TileKind a = l().classify(i0, i1, j0, j1, qLen, kvLen);
            if (a == TileKind.EMPTY) return a;
            TileKind b = r().classify(i0, i1, j0, j1, qLen, kvLen);
            if (b == TileKind.EMPTY) return b;
            if (a == TileKind.FULL) return b;
            if (b == TileKind.FULL) return a;
            return null;
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) {
            KeyRanges a = new KeyRanges(), b = new KeyRanges();
            l().keyRanges(i0, i1, qLen, kvLen, a);
            r().keyRanges(i0, i1, qLen, kvLen, b);
            a.normalize();
            b.normalize();
            a.intersect(b);
            out.addAll(a);
        }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            int words = (n + 63) >>> 6;
            long[] a = s.push(words), b = s.push(words);
            l().fillRow(i, j0, n, qLen, kvLen, a, 0, s);
            r().fillRow(i, j0, n, qLen, kvLen, b, 0, s);
            for (int w = 0; w < words; w++) dst[off + w] |= a[w] & b[w];
            s.pop();
            s.pop();
        }
        @Override public boolean cheapMasks() { return l().cheapMasks() && r().cheapMasks(); }
        @Override public String toString() { return left + ".and(" + right + ")"; }
    }

    /** Union: FULL∨x = FULL, EMPTY∨x = x; PARTIAL∨PARTIAL is decided from elements. */
    record Or(Pattern left, Pattern right) implements Pattern, Node {
        Or {
            if (left == null || right == null) throw new NullPointerException("or() operand");
        }
        private Node l() { return (Node) left; }
        private Node r() { return (Node) right; }
        @Override public void checkLengths(int qLen, int kvLen) { l().checkLengths(qLen, kvLen); r().checkLengths(qLen, kvLen); }
        public boolean allows(int i, int j, int qLen, int kvLen) { return l().allows(i, j, qLen, kvLen) || r().allows(i, j, qLen, kvLen); }
        public TileKind classify(int i0, int i1, int j0, int j1, int qLen, int kvLen) {
            TileKind a = l().classify(i0, i1, j0, j1, qLen, kvLen);
            if (a == TileKind.FULL) return a;
            TileKind b = r().classify(i0, i1, j0, j1, qLen, kvLen);
            if (b == TileKind.FULL) return b;
            if (a == TileKind.EMPTY) return b;
            if (b == TileKind.EMPTY) return a;
            return null;
        }
        public void keyRanges(int i0, int i1, int qLen, int kvLen, KeyRanges out) {
            l().keyRanges(i0, i1, qLen, kvLen, out);
            r().keyRanges(i0, i1, qLen, kvLen, out);
        }
        public void fillRow(int i, int j0, int n, int qLen, int kvLen, long[] dst, int off, MaskScratch s) {
            l().fillRow(i, j0, n, qLen, kvLen, dst, off, s);
            r().fillRow(i, j0, n, qLen, kvLen, dst, off, s);
        }
        @Override public boolean cheapMasks() { return l().cheapMasks() && r().cheapMasks(); }
        @Override public String toString() { return left + ".or(" + right + ")"; }
    }
}
