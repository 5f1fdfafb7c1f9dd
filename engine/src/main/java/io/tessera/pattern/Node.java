package io.tessera.pattern;

import io.tessera.layout.TileKind;

/**
 * What the compiler needs from a pattern, kept off the public {@link Pattern} interface. Each of
 * the four answers is computed independently (the element rule is never derived from the tile
 * rules), which is what lets the property suite cross-check them.
 */
interface Node {
    /**
     * The alignment this pattern names itself ({@code causal(BOTTOM_RIGHT)}, {@code aligned(…)}), or
     * null when it leaves it to the pattern it is combined with (top-left if none names one).
     */
    default CausalAlignment explicitAlignment() { return null; }

    /** Validates parameters that depend on the lengths (e.g. global indices in range). */
    default void checkLengths(Frame f) {}

    /** The exact element rule: may query index i (at position f.pos(i)) attend to key j? */
    boolean allows(int i, int j, Frame f);

    /**
     * Classifies queries [i0,i1) × keys [j0,j1) in closed form: EMPTY, FULL, PARTIAL, or null when
     * that cannot be decided without looking at elements (the compiler then fills the tile's mask).
     */
    TileKind classify(int i0, int i1, int j0, int j1, Frame f);

    /** Adds key intervals covering every key any query in [i0,i1) may attend to (a superset is fine). */
    void keyRanges(int i0, int i1, Frame f, KeyRanges out);

    /**
     * ORs into {@code dst[off …]} the bits of keys [j0, j0+n) that query i may attend to (bit c of
     * word c/64 for key j0+c). Word-at-a-time for structured patterns.
     */
    void fillRow(int i, int j0, int n, Frame f, long[] dst, int off, MaskScratch scratch);

    /** Whether {@link #fillRow} is cheap enough to call again at kernel time (else masks are stored). */
    default boolean cheapMasks() { return true; }

    // ---------------------------------------------------------------- shared helpers

    /** Sets bits [from, to) of the bit string starting at dst[off]. */
    static void setBits(long[] dst, int off, int from, int to) {
        if (from >= to) return;
        int w0 = from >>> 6, w1 = (to - 1) >>> 6;
        long first = -1L << (from & 63), last = -1L >>> (63 - ((to - 1) & 63));
        if (w0 == w1) {
            dst[off + w0] |= first & last;
            return;
        }
        dst[off + w0] |= first;
        for (int w = w0 + 1; w < w1; w++) dst[off + w] = -1L;
        dst[off + w1] |= last;
    }

    /** Clamps a long bit index into [0, n]. */
    static int clamp(long x, int n) { return (int) Math.max(0, Math.min(n, x)); }

    /**
     * Exact classification of an <em>interval rule</em>: query i allows keys [lo(i), hi(i)), both ends
     * non-decreasing in i and consecutive intervals touching (causal, windows, block-local, segments).
     * Then the union over rows is one interval, so the first and last rows decide everything.
     */
    static TileKind intervalKind(long loFirst, long hiFirst, long loLast, long hiLast, int j0, int j1) {
        if (hiLast <= j0 || loFirst >= j1) return TileKind.EMPTY;
        if (loLast <= j0 && hiFirst >= j1) return TileKind.FULL;
        return TileKind.PARTIAL;
    }
}
