package io.tessera.layout;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;

/**
 * Block sparse row structure: the non-empty tiles of a layout as dense blockQ × blockKV blocks,
 * with an element mask per block (all-ones for FULL tiles). The fused kernel works on exactly this
 * structure; this type exposes it for users who bring their own block-sparse data.
 */
public final class BsrMatrix {
    private final BlockLayout layout;
    private final long[] masks;   // [tiles][blockQ·words]

    private BsrMatrix(BlockLayout layout, long[] masks) {
        this.layout = layout;
        this.masks = masks;
    }

    public static BsrMatrix fromLayout(BlockLayout layout) {
        long perLong = (long) layout.blockQ() * layout.maskWordsPerRow();
        long total = perLong > Integer.MAX_VALUE ? Long.MAX_VALUE : perLong * layout.tileCount();   // ≤ 2^62: no long overflow
        if (total > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("BSR masks of " + layout.tileCount() + " tiles exceed int indexing");
        int per = (int) perLong;
        long[] masks = new long[(int) total];
        long[] one = new long[per];
        for (int t = 0; t < layout.tileCount(); t++) {
            layout.fillTileMask(t, one);
            System.arraycopy(one, 0, masks, t * per, per);
        }
        return new BsrMatrix(layout, masks);
    }

    public int blockRows() { return layout.qBlocks(); }
    public int blockCols() { return layout.kvBlocks(); }
    public int blockRowsSize() { return layout.blockQ(); }
    public int blockColsSize() { return layout.blockKV(); }
    public int[] rowOffsets() { return layout.rowOffsets(); }
    public int[] colIndices() { return layout.colIndices(); }
    public int blocks() { return layout.tileCount(); }
    public boolean isFull(int block) { return layout.kind(block) == TileKind.FULL; }

    /** Whether element (r, c) of block {@code block} is stored as allowed. */
    public boolean allows(int block, int r, int c) {
        if (block < 0 || block >= blocks()) throw new IndexOutOfBoundsException("block=" + block + " outside [0, " + blocks() + ")");
        if (r < 0 || r >= layout.blockQ()) throw new IndexOutOfBoundsException("r=" + r + " outside the block's rows [0, " + layout.blockQ() + ")");
        if (c < 0 || c >= layout.blockKV()) throw new IndexOutOfBoundsException("c=" + c + " outside the block's columns [0, " + layout.blockKV() + ")");
        int words = layout.maskWordsPerRow();
        return (masks[(block * layout.blockQ() + r) * words + (c >>> 6)] & (1L << c)) != 0;
    }
}
