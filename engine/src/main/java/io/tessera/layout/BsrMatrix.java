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
        int per = layout.blockQ() * layout.maskWordsPerRow();
        long total = (long) per * layout.tileCount();
        if (total > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("BSR masks of " + layout.tileCount() + " tiles exceed int indexing");
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
        int words = layout.maskWordsPerRow();
        return (masks[block * layout.blockQ() * words + r * words + (c >>> 6)] & (1L << c)) != 0;
    }
}
