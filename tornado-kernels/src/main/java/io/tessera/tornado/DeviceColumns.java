package io.tessera.tornado;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.HeadLayouts;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The key-major index of one call's layouts (each layout's CSC, as {@link BlockLayout#colOffsets},
 * {@link BlockLayout#rowIndices} and {@link BlockLayout#transposedTiles}) in the arrays
 * {@link AttentionBackwardKernel#keyGradients} reads, pointing into the same mask words as the
 * row-major {@link DeviceLayout}: per head its column pointers, per entry its query block and its
 * tile's first mask word (−1 for a FULL tile).
 */
record DeviceColumns(IntArray colStart, IntArray colRows, IntArray colMask) {

    static DeviceColumns of(HeadLayouts layouts, int heads, DeviceLayout rowMajor) {
        BlockLayout first = layouts.first();
        int qBlocks = first.qBlocks(), kvBlocks = first.kvBlocks();
        IntArray colStart = new IntArray(heads * (kvBlocks + 1));
        int entries = rowMajor.cols().getSize();
        IntArray colRows = new IntArray(entries), colMask = new IntArray(entries);
        for (int h = 0; h < heads; h++) {
            BlockLayout lay = layouts.forHead(h);
            // A layout's tiles start where its row pointers start (its first row pointer is 0).
            int base = rowMajor.rowStart().get(h * (qBlocks + 1));
            int[] offsets = lay.colOffsets(), rows = lay.rowIndices(), tiles = lay.transposedTiles();
            for (int kb = 0; kb <= kvBlocks; kb++) colStart.set(h * (kvBlocks + 1) + kb, base + offsets[kb]);
            for (int e = 0; e < lay.tileCount(); e++) {
                colRows.set(base + e, rows[e]);
                colMask.set(base + e, rowMajor.maskStart().get(base + tiles[e]));
            }
        }
        return new DeviceColumns(colStart, colRows, colMask);
    }
}
