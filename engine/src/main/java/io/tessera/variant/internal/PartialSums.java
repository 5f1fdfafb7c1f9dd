package io.tessera.variant.internal;

/**
 * The variants' width-independent sums: {@link #COUNT} interleaved partials (element j into partial
 * j mod 16; 16 is the most float lanes of any vector width, so a vector twin keeps them in lanes),
 * folded in one fixed halving tree. Row softmax sums ({@link RowSoftmax}) and the feature maps' row
 * dot products use the same fold.
 */
public final class PartialSums {
    private PartialSums() {}

    /** Partials per sum. */
    public static final int COUNT = 16;

    /**
     * The 16 partials folded as a halving tree: p[i] + p[i + 8], then those i &lt; 4 plus i + 4, then
     * i + 2, then i + 1. The order of a vector twin's lanes at every width: pre-adding its vectors
     * of partials lanewise (two at 256 bits, four at 128) takes the first levels, and
     * {@link LaneFolds#sums} the rest for L rows at once.
     */
    public static float fold(float[] p) {
        float a0 = p[0] + p[8], a1 = p[1] + p[9], a2 = p[2] + p[10], a3 = p[3] + p[11];
        float a4 = p[4] + p[12], a5 = p[5] + p[13], a6 = p[6] + p[14], a7 = p[7] + p[15];
        float b0 = a0 + a4, b1 = a1 + a5, b2 = a2 + a6, b3 = a3 + a7;
        return (b0 + b2) + (b1 + b3);
    }
}
