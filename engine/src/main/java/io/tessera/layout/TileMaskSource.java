package io.tessera.layout;

/**
 * Produces the element mask of one PARTIAL tile on demand, so a layout never has to store
 * masks for patterns whose predicate is cheap (a window is two comparisons per row).
 */
@FunctionalInterface
public interface TileMaskSource {
    /**
     * Writes the mask of queries [{@code q0}, {@code q0+rows}) × keys [{@code kv0}, {@code kv0+cols})
     * into {@code dst}: bit {@code c % 64} of word {@code dst[dstOffset + r*wordsPerRow + c/64]} is
     * set iff query {@code q0+r} may attend to key {@code kv0+c}. Words past {@code cols} are zero.
     *
     * @param tile the tile's index in the layout's CSR arrays, for sources that stored masks
     */
    void fill(int tile, int q0, int rows, int kv0, int cols, long[] dst, int dstOffset, int wordsPerRow);
}
