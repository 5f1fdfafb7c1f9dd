package io.tessera.layout;

/** How a (query block, key block) tile of the score matrix is covered by a pattern. */
public enum TileKind {
    /** No pair allowed: the tile is skipped and never stored in a layout. */
    EMPTY,
    /** Every pair allowed: kernels do no mask work at all. */
    FULL,
    /** Some pairs allowed: kernels apply the tile's element mask. */
    PARTIAL;

    /** The code stored in {@link BlockLayout#kinds()}. */
    public byte code() { return (byte) ordinal(); }

    public static TileKind ofCode(byte code) { return values()[code]; }
}
