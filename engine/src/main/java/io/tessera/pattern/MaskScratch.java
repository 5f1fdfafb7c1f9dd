package io.tessera.pattern;

/**
 * Per-thread temporary rows for the and/or combinators' {@code fillRow}, one level of nesting each.
 * Pushes and pops pair up in try/finally, and the compiler restores the depth it started at, so a
 * predicate that throws leaves the scratch as it found it.
 */
final class MaskScratch {
    private long[][] rows = new long[4][];
    private int depth;

    long[] push(int words) {
        if (depth == rows.length) rows = java.util.Arrays.copyOf(rows, depth * 2);
        long[] r = rows[depth];
        if (r == null || r.length < words) rows[depth] = r = new long[Math.max(words, 4)];
        java.util.Arrays.fill(r, 0, words, 0L);
        depth++;
        return r;
    }

    void pop() { depth--; }

    /** Rows in use (0 outside a fillRow). */
    int depth() { return depth; }

    /** Back to an earlier depth, after a failure part-way through nested rows. */
    void restore(int depth) { this.depth = depth; }

    private KeyRanges[] ranges = new KeyRanges[4];
    private int rangesDepth;

    /** Empty key ranges of block size {@code grain} for an and's operand, until the matching {@link #popRanges}. */
    KeyRanges pushRanges(int grain) {
        if (rangesDepth == ranges.length) ranges = java.util.Arrays.copyOf(ranges, rangesDepth * 2);
        KeyRanges r = ranges[rangesDepth];
        if (r == null) ranges[rangesDepth] = r = new KeyRanges(grain);
        rangesDepth++;
        return r.reset(grain);
    }

    void popRanges() { rangesDepth--; }

    private static final ThreadLocal<MaskScratch> LOCAL = ThreadLocal.withInitial(MaskScratch::new);

    static MaskScratch local() { return LOCAL.get(); }
}
