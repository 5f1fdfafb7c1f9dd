package io.tessera.layout;

import io.tessera.layout.BlockLayout;
import java.util.Arrays;

/**
 * A sparse matrix in compressed sparse row form: row r holds columns
 * {@code colIndices[rowOffsets[r] … rowOffsets[r+1])}, strictly increasing, with one float value
 * each. The structure is immutable; the values are the mutable payload the SDDMM → softmax → SpMM
 * pipeline writes in place.
 */
public final class CsrMatrix {
    private final int rows, cols;
    private final int[] rowOffsets, colIndices;
    private final float[] values;

    public CsrMatrix(int rows, int cols, int[] rowOffsets, int[] colIndices) {
        if (rows < 1) throw new IllegalArgumentException("rows must be >= 1, got " + rows);
        if (cols < 1) throw new IllegalArgumentException("cols must be >= 1, got " + cols);
        if (rowOffsets == null) throw new NullPointerException("rowOffsets");
        if (colIndices == null) throw new NullPointerException("colIndices");
        if (rowOffsets.length != rows + 1L) {
            throw new IllegalArgumentException("rowOffsets must have rows+1=" + (rows + 1L) + " entries, got " + rowOffsets.length);
        }
        if (rowOffsets[0] != 0 || rowOffsets[rows] != colIndices.length) {
            throw new IllegalArgumentException("rowOffsets must run from 0 to colIndices.length=" + colIndices.length + ", got " + rowOffsets[0] + " … " + rowOffsets[rows]);
        }
        // All offsets first: with 0 at the start, the length at the end and no decrease, every entry index is in range.
        for (int r = 0; r < rows; r++) {
            if (rowOffsets[r + 1] < rowOffsets[r]) throw new IllegalArgumentException("rowOffsets decreases at row " + r + ": " + rowOffsets[r] + " > " + rowOffsets[r + 1]);
        }
        for (int r = 0; r < rows; r++) {
            for (int e = rowOffsets[r]; e < rowOffsets[r + 1]; e++) {
                int c = colIndices[e];
                if (c < 0 || c >= cols) throw new IllegalArgumentException("colIndices[" + e + "]=" + c + " outside [0, " + cols + ") in row " + r);
                if (e > rowOffsets[r] && c <= colIndices[e - 1]) throw new IllegalArgumentException("colIndices of row " + r + " are not strictly increasing at entry " + e);
            }
        }
        this.rows = rows;
        this.cols = cols;
        this.rowOffsets = rowOffsets.clone();
        this.colIndices = colIndices.clone();
        this.values = new float[colIndices.length];
    }

    /** The allowed pairs of a compiled layout, row by row (O(allowed pairs) memory). */
    public static CsrMatrix fromLayout(BlockLayout layout) {
        int qLen = layout.qLen(), words = layout.maskWordsPerRow();
        long pairs = layout.allowedPairs();
        if (pairs > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("layout allows " + pairs + " pairs, more than a CSR matrix indexes with int");
        int[] offsets = new int[qLen + 1], cols = new int[(int) pairs];
        long maskWords = (long) layout.blockQ() * words;
        if (maskWords > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("a tile mask of blockQ=" + layout.blockQ() + " rows of " + words + " words exceeds int indexing");
        long[] mask = new long[(int) maskWords];
        int e = 0;
        for (int r = 0; r < layout.qBlocks(); r++) {
            int q0 = r * layout.blockQ(), rowsHere = Math.min(layout.blockQ(), qLen - q0);
            int t0 = layout.rowOffsets()[r], t1 = layout.rowOffsets()[r + 1];
            long[][] masks = new long[t1 - t0][];
            for (int t = t0; t < t1; t++) {
                layout.fillTileMask(t, mask);
                masks[t - t0] = mask.clone();
            }
            for (int i = 0; i < rowsHere; i++) {
                for (int t = t0; t < t1; t++) {
                    int kv0 = layout.colIndices()[t] * layout.blockKV();
                    for (int w = 0; w < words; w++) {
                        long bits = masks[t - t0][i * words + w];
                        while (bits != 0) {
                            cols[e++] = kv0 + (w << 6) + Long.numberOfTrailingZeros(bits);
                            bits &= bits - 1;
                        }
                    }
                }
                offsets[q0 + i + 1] = e;
            }
        }
        return new CsrMatrix(qLen, layout.kvLen(), offsets, cols);
    }

    public int rows() { return rows; }
    public int cols() { return cols; }
    public int nonZeros() { return colIndices.length; }
    /** Row pointers (shared, do not modify). */
    public int[] rowOffsets() { return rowOffsets; }
    /** Column of each entry (shared, do not modify). */
    public int[] colIndices() { return colIndices; }
    /** The values, written by SDDMM and softmax (shared, mutable). */
    public float[] values() { return values; }

    /** A matrix with the same structure and its own values. */
    public CsrMatrix withFreshValues() { return new CsrMatrix(rows, cols, rowOffsets, colIndices); }

    @Override
    public String toString() {
        return "CsrMatrix[" + rows + "x" + cols + ", nnz " + nonZeros() + ", first rows " + Arrays.toString(Arrays.copyOf(rowOffsets, Math.min(6, rowOffsets.length))) + "…]";
    }
}
