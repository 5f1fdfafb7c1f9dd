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

    private static final ThreadLocal<MaskScratch> LOCAL = ThreadLocal.withInitial(MaskScratch::new);

    static MaskScratch local() { return LOCAL.get(); }
}
