package io.tessera.pattern;

/**
 * The lengths a pattern is evaluated at and where its queries sit: query {@code i} is at position
 * {@code i + offset} of the key sequence, with the offset fixed by the pattern's alignment
 * ({@code 0} top-left, {@code kvLen − qLen} bottom-right). Positions always fit an int: they lie in
 * [min(0, kvLen − qLen), max(qLen, kvLen)).
 */
final class Frame {
    // Not final only for DecodePlan, which moves its frames to each step's live length (reset);
    // every other frame is set once.
    int qLen, kvLen;
    final CausalAlignment alignment;
    long offset;

    Frame(int qLen, int kvLen, CausalAlignment alignment) {
        this.alignment = alignment;
        reset(qLen, kvLen);
    }

    /** The same alignment at other lengths (a decode plan's frame, reused from step to step). */
    void reset(int qLen, int kvLen) {
        this.qLen = qLen;
        this.kvLen = kvLen;
        this.offset = alignment.diagonalShift(qLen, kvLen);
    }

    /** The frame of a whole pattern: its own alignment, top-left when it names none. */
    static Frame of(Node root, int qLen, int kvLen) {
        CausalAlignment a = root.explicitAlignment();
        return new Frame(qLen, kvLen, a == null ? CausalAlignment.TOP_LEFT : a);
    }

    /** The position of query {@code i}. */
    int pos(int i) { return (int) (i + offset); }

    /** Position of the first query. */
    int firstPos() { return (int) offset; }

    /** Position of the last query. */
    int lastPos() { return (int) (qLen - 1 + offset); }

    /** "qLen=1, kvLen=100 (BOTTOM_RIGHT: queries at positions 99..99)", for error messages. */
    String describe() {
        return "qLen=" + qLen + ", kvLen=" + kvLen + " (" + alignment + ": queries at positions " + firstPos() + ".." + lastPos() + ")";
    }
}
