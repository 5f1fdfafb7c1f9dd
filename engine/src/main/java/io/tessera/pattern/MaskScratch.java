package io.tessera.pattern;

/** Per-thread temporary rows for the and/or combinators' {@code fillRow}, one level of nesting each. */
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

    private static final ThreadLocal<MaskScratch> LOCAL = ThreadLocal.withInitial(MaskScratch::new);

    static MaskScratch local() { return LOCAL.get(); }
}
