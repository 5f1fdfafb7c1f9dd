package io.tessera.variant.internal;

/**
 * The variants' width-independent sums: {@link #COUNT} interleaved partials (element j into partial
 * j mod 16; 16 is the most float lanes of any vector width, so a vector twin keeps them in lanes),
 * folded in one fixed pairwise tree. Row softmax sums ({@link RowSoftmax}) and the feature maps' row
 * dot products use the same fold.
 */
public final class PartialSums {
    private PartialSums() {}

    /** Partials per sum. */
    public static final int COUNT = 16;

    /** ((p0 + p1) + (p2 + p3)) + … : the 16 partials summed pairwise, in one fixed tree. */
    public static float fold(float[] p) {
        float a0 = p[0] + p[1], a1 = p[2] + p[3], a2 = p[4] + p[5], a3 = p[6] + p[7];
        float a4 = p[8] + p[9], a5 = p[10] + p[11], a6 = p[12] + p[13], a7 = p[14] + p[15];
        return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    }
}
