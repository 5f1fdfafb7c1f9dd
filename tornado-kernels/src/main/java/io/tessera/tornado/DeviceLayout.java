package io.tessera.tornado;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.HeadLayouts;
import io.tessera.layout.TileKind;
import java.util.IdentityHashMap;
import java.util.Map;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The compiled layouts of one call in the arrays {@link AttentionKernel} reads: every distinct head
 * layout's CSR appended once, row pointers per head, and the PARTIAL tiles' masks materialized as
 * 32-bit words (the device cannot call back into the pattern that regenerates them on the CPU).
 * Built once per {@link HeadLayouts} and sent to the device on a plan's first execution only.
 */
record DeviceLayout(IntArray rowStart, IntArray cols, IntArray maskStart, IntArray maskBits, int maskWordsPerRow) {

    /** 32-bit mask words per query row of a PARTIAL tile. */
    static int maskWordsPerRow(int blockKV) { return (blockKV + 31) / 32; }

    static DeviceLayout of(HeadLayouts layouts, int heads) {
        BlockLayout first = layouts.first();
        int qBlocks = first.qBlocks(), blockQ = first.blockQ(), blockKV = first.blockKV();
        int words = maskWordsPerRow(blockKV);
        Map<BlockLayout, Integer> tileBase = new IdentityHashMap<>();
        long tiles = 0, maskWords = 0;
        for (int h = 0; h < heads; h++) {
            BlockLayout lay = layouts.forHead(h);
            if (tileBase.putIfAbsent(lay, (int) tiles) == null) {
                tiles += lay.tileCount();
                maskWords += (long) lay.partialTiles() * blockQ * words;
            }
        }
        if (maskWords > Integer.MAX_VALUE - 1) {
            throw new IllegalArgumentException("layout masks need " + maskWords + " words, more than int indexing allows on the device");
        }
        // TornadoVM arrays cannot be empty: a layout without PARTIAL tiles still gets one word.
        IntArray rowStart = new IntArray(heads * (qBlocks + 1));
        IntArray cols = new IntArray((int) Math.max(1, tiles));
        IntArray maskStart = new IntArray((int) Math.max(1, tiles));
        IntArray maskBits = new IntArray((int) Math.max(1, maskWords));
        // fillTileMask writes maskWordsPerRow() 64-bit words per row, which covers min(blockKV, kvLen)
        // keys: the device's 32-bit words past them stay 0.
        long[] rowMask = new long[blockQ * first.maskWordsPerRow()];
        int nextWord = 0;
        Map<BlockLayout, Boolean> written = new IdentityHashMap<>();
        for (int h = 0; h < heads; h++) {
            BlockLayout lay = layouts.forHead(h);
            int base = tileBase.get(lay);
            int[] offsets = lay.rowOffsets();
            for (int qb = 0; qb <= qBlocks; qb++) rowStart.set(h * (qBlocks + 1) + qb, base + offsets[qb]);
            if (written.put(lay, Boolean.TRUE) != null) continue;
            int[] layCols = lay.colIndices();
            for (int t = 0; t < lay.tileCount(); t++) {
                cols.set(base + t, layCols[t]);
                if (lay.kind(t) != TileKind.PARTIAL) {
                    maskStart.set(base + t, -1);
                    continue;
                }
                maskStart.set(base + t, nextWord);
                lay.fillTileMask(t, rowMask);
                int longsPerRow = lay.maskWordsPerRow();
                for (int r = 0; r < blockQ; r++) {
                    for (int w = 0; w < words; w++) {
                        long bits = (w >> 1) < longsPerRow ? rowMask[r * longsPerRow + (w >> 1)] : 0L;
                        maskBits.set(nextWord++, (int) ((w & 1) == 0 ? bits : bits >>> 32));
                    }
                }
            }
        }
        return new DeviceLayout(rowStart, cols, maskStart, maskBits, words);
    }
}
