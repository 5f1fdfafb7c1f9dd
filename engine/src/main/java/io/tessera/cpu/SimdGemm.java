package io.tessera.cpu;

import io.tessera.tensor.ElementType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * GEMM on the Vector API. op(b) is packed, {@link #KC} rows at a time, into a panel of
 * {@link #PANEL} = 2 vectors of columns (zero-padded), so the micro-kernel is the same for every
 * transpose and stride: broadcast 6 elements of op(a), FMA into 6×2 accumulators — 15 registers,
 * because AVX2 has 16 (a 4×4 blocking spills there). With AVX-512's 32 registers two panels are
 * multiplied at once, 6×4 accumulators ({@link #block6RowsPair}). op(a) is read from a heap copy of the item's
 * rows, made once per depth slice and shared by all the item's panels; half-precision operands are
 * widened to float32 while copied (a) and packed (b), so the micro-kernel only ever sees floats.
 */
final class SimdGemm {
    private SimdGemm() {}

    static final VectorSpecies<Float> F = VectorConfig.FLOATS;
    static final int L = F.length();
    static final int PANEL = 2 * L;
    /** Rows of op(a) per micro-kernel step. */
    static final int ROWS = 6;
    /**
     * Depth of a packed panel, and of the slices c is accumulated over: the panels a micro-kernel
     * reads stay in L1 while every row block reuses them (256 × 2 vectors of 8 lanes; with AVX-512's
     * pairs, 128 × 4 vectors of 16 lanes, 32 KB of a 48 KB L1). The pairs at a depth of 256 (64 KB
     * of panels, read from L2) gained on depth-64 products only; measured on the Intel Xeon (one
     * thread, GFLOP/s of the old kernel, pairs at 256, pairs at 128; FMA peak 212): 960³ 111–113,
     * 112–115, 118–119; 480×256×64 122–123, 138–143, 138–143; 256×64×4096 101–103, 102–104, 108.
     * The slices are where c's partial sums are rounded, so a product deeper than 128 rounds
     * differently at 512 bits than at 256 or 128; at one width the bits do not depend on the
     * thread count, the panel pairing or the JIT tier.
     */
    static final int KC = VectorConfig.WIDE_REGISTER_FILE ? 128 : 256;
    /** Rows of c per work item: big enough that re-packing op(b) per item is amortized. */
    static final int ROWS_PER_ITEM = 120;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /**
     * Two panels at once on AVX-512 ({@link VectorConfig#WIDE_REGISTER_FILE}): 6 rows × 4 vectors,
     * 24 accumulators, each broadcast serving 4 FMAs instead of 2 ({@link #block6RowsPair}).
     */
    private static final boolean PAIRS = VectorConfig.WIDE_REGISTER_FILE;
    /** Where the second panel of a pair starts in the packed buffer (and its tile in the tile buffer). */
    private static final int SECOND = KC * PANEL, SECOND_TILE = ROWS * PANEL;
    /**
     * A thread's packed panel pair and c tile, each with a cache line of floats to spare (both are
     * read and written in full vectors from their first line on: see {@link LineAlignedArrays}),
     * and each array's segment, made once, for the address query.
     */
    private static final class Buffers {
        final float[] packed = new float[2 * KC * PANEL + LineAlignedArrays.SLACK_FLOATS];
        final float[] tile = new float[2 * ROWS * PANEL + LineAlignedArrays.SLACK_FLOATS];
        final MemorySegment packedBytes = MemorySegment.ofArray(packed), tileBytes = MemorySegment.ofArray(tile);
    }
    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);
    /**
     * Depth of the runs in which an item copies its rows of a row-major op(a) to the heap: several
     * slices at once, because a copy per slice reads runs of only KC floats, each from a different
     * page, and a stream read once from memory (Linformer's E, 4 MB per head, in E·K) is then read
     * at a fraction of the bandwidth longer runs get. Measured on the Intel Xeon, B = 1, 8 heads,
     * n = 4096, k = 256, D = 64, the 16 projections on two threads, alternating JVMs: 13.3–14.4 ms
     * copying per slice, 10.9–12.9 ms in runs of 512 (1024: 12.6–13.2). Only the copy's runs: the
     * slices, and so the bits, are the same.
     */
    static final int A_RUN = 512;
    /**
     * Rows of c per item for a product of at most two panels on one thread: all the rows of
     * Linformer's E·K (256), so the panel pair of op(b) is packed once per slice, not once per
     * 120-row chunk (three times there: 120, 120 and 16 rows). On several threads the chunks are the
     * work items, so they stay at {@link #ROWS_PER_ITEM}.
     */
    static final int NARROW_ROWS = 256;
    private static final ThreadLocal<float[]> A_ROWS = ThreadLocal.withInitial(() -> new float[Math.max(NARROW_ROWS * Math.max(KC, A_RUN), 4 * ROWS_PER_ITEM * SimdGemm.THIN_DEPTH)]);   // SimdGemm.THIN_DEPTH: a forward reference otherwise

    static int panels(GemmCall g) { return (g.n() + PANEL - 1) / PANEL; }

    static int rowChunks(GemmCall g, int threads) { return (g.m() + rowsPerItem(g, threads) - 1) / rowsPerItem(g, threads); }

    /**
     * Rows of c per work item: {@link #ROWS_PER_ITEM}; four times as many for a product of depth
     * at most {@link #THIN_DEPTH}; {@link #NARROW_ROWS} for a product of at most two panels on one
     * thread. A thin product packs its panel of op(b) per item as often
     * as a deep one but reuses it over only depth·rows multiply-adds: at depth 64 (the Performer's
     * projections) packing was 8 % of the product's time. An item's heap rows of op(a) fit
     * {@link #A_ROWS}: 4·120 rows × 64, or 256 rows × {@link #A_RUN}.
     */
    static int rowsPerItem(GemmCall g, int threads) {
        if (g.k() <= THIN_DEPTH) return 4 * ROWS_PER_ITEM;
        if (threads == 1 && panels(g) <= 2) return NARROW_ROWS;
        return ROWS_PER_ITEM;
    }

    static final int THIN_DEPTH = 64;

    /**
     * Panel groups per row chunk on {@code threads} threads: 1 (an item owns every panel of its
     * chunk, so its rows of op(a) are copied to the heap once per depth slice, not once per panel)
     * when whole chunks, handed out in order to whichever thread is free, keep the busiest thread
     * within 1/8 of an even share; otherwise enough groups for 4 items per thread. Which item
     * computes an element of c does not change its bits (each element is the same fma chain per
     * depth slice in any row block), so the result is the same for any thread count.
     */
    static int panelGroups(GemmCall g, int threads) {
        int chunks = rowChunks(g, threads);
        if (threads == 1 || chunks == 0) return 1;   // no rows: no items
        int rows = rowsPerItem(g, threads), last = g.m() - (chunks - 1) * rows;
        // the full chunks go round the threads; the last (shorter) one to a thread with fewest
        int perThread = (chunks - 1) / threads, left = (chunks - 1) % threads;
        long busiest = left > 0 ? (long) (perThread + 1) * rows : (long) perThread * rows + last;
        if (busiest * threads <= 1.125 * g.m()) return 1;
        return Math.min(panels(g), (4 * threads + chunks - 1) / chunks);
    }

    static int items(GemmCall g, int threads) { return rowChunks(g, threads) * panelGroups(g, threads); }

    /**
     * Work item {@code item} of {@link #items}: a row chunk and a group of its column panels. The
     * chunk's rows of op(a) are copied to the heap once per {@link #A_RUN} of depth (a row-major
     * a, {@link #copyRowsOfA}) or per depth slice (a transposed one, {@link #copyTransposedRows});
     * per slice every panel of the group is packed and multiplied by them. The heap micro-kernels read
     * op(a) from there: each element read from a segment costs a bounds and liveness check, and
     * six of them per step of twelve FMAs (a row-major a from its segment ran at 165 GFLOP/s on
     * one thread, from a heap copy at 208).
     */
    static void item(GemmCall g, int item, int threads) {
        int groups = panelGroups(g, threads), panels = panels(g);
        int chunk = item / groups, group = item % groups;
        int panel0 = (int) ((long) group * panels / groups), panel1 = (int) ((long) (group + 1) * panels / groups);
        int rowsPerItem = rowsPerItem(g, threads), i0 = chunk * rowsPerItem, i1 = Math.min(g.m(), i0 + rowsPerItem), span = i1 - i0;
        Buffers buffers = BUFFERS.get();
        float[] packed = buffers.packed, tile = buffers.tile, ap = A_ROWS.get();
        int pb = LineAlignedArrays.floatsToLine(buffers.packedBytes), tb = LineAlignedArrays.floatsToLine(buffers.tileBytes);   // their first lines, now
        boolean transposed = g.aType() == ElementType.F32 && g.aRow() == 1 && g.aCol() != 1;
        int run0 = 0, run = 0;   // the depth range [run0, run0 + run) of op(a) in ap, row t at t·run (row-major copies)
        for (int k0 = 0; k0 < g.k(); k0 += KC) {
            int kc = Math.min(KC, g.k() - k0);
            boolean first = k0 == 0;
            // Two sets of micro-kernels, one per layout of the copy, rather than one with the row
            // and depth steps as variables: the row-major kernels index ap by the depth counter
            // plus a loop invariant, the form C2's range-check elimination takes (the variable
            // steps measured slower in the variants, though not separately from the per-row copies).
            if (transposed) copyTransposedRows(g, ap, i0, span, k0, kc);
            else if (k0 - run0 >= run) {
                run0 = k0;
                run = Math.min(A_RUN, g.k() - k0);
                copyRowsOfA(g, ap, i0, span, k0, run);
            }
            for (int panel = panel0; panel < panel1; ) {
                int j0 = panel * PANEL, cols = Math.min(PANEL, g.n() - j0);
                // Two panels at a time where the register file holds their 24 accumulators; an odd
                // last panel, and the 2- and 1-row blocks, panel by panel.
                boolean pair = PAIRS && panel + 1 < panel1;
                int j1 = j0 + PANEL, cols1 = pair ? Math.min(PANEL, g.n() - j1) : 0;
                pack(g, k0, kc, j0, cols, packed, pb);
                if (pair) pack(g, k0, kc, j1, cols1, packed, pb + SECOND);
                int i = i0;
                if (transposed) {
                    if (pair) for (; i + ROWS <= i1; i += ROWS) block6HeapPair(g, ap, span, i - i0, packed, pb, tile, tb, kc, i, j0, first, cols, cols1);
                    else for (; i + ROWS <= i1; i += ROWS) block6Heap(g, ap, span, i - i0, packed, pb, tile, tb, kc, i, j0, first, cols);
                    if (pair && i + 4 <= i1) {
                        block4HeapPair(g, ap, span, i - i0, packed, pb, tile, tb, kc, i, j0, first, cols, cols1);
                        i += 4;
                    }
                    for (; i + 2 <= i1; i += 2) {
                        block2Heap(g, ap, span, i - i0, packed, pb, tile, tb, kc, i, j0, first, cols);
                        if (pair) block2Heap(g, ap, span, i - i0, packed, pb + SECOND, tile, tb, kc, i, j1, first, cols1);
                    }
                    for (; i < i1; i++) {
                        block1Heap(g, ap, span, i - i0, packed, pb, tile, tb, kc, i, j0, first, cols);
                        if (pair) block1Heap(g, ap, span, i - i0, packed, pb + SECOND, tile, tb, kc, i, j1, first, cols1);
                    }
                } else {
                    if (pair) for (; i + ROWS <= i1; i += ROWS) block6RowsPair(g, ap, (i - i0) * run + (k0 - run0), run, packed, pb, tile, tb, kc, i, j0, first, cols, cols1);
                    else for (; i + ROWS <= i1; i += ROWS) block6Rows(g, ap, (i - i0) * run + (k0 - run0), run, packed, pb, tile, tb, kc, i, j0, first, cols);
                    if (pair && i + 4 <= i1) {
                        block4RowsPair(g, ap, (i - i0) * run + (k0 - run0), run, packed, pb, tile, tb, kc, i, j0, first, cols, cols1);
                        i += 4;
                    }
                    for (; i + 2 <= i1; i += 2) {
                        block2Rows(g, ap, (i - i0) * run + (k0 - run0), run, packed, pb, tile, tb, kc, i, j0, first, cols);
                        if (pair) block2Rows(g, ap, (i - i0) * run + (k0 - run0), run, packed, pb + SECOND, tile, tb, kc, i, j1, first, cols1);
                    }
                    for (; i < i1; i++) {
                        block1Rows(g, ap, (i - i0) * run + (k0 - run0), run, packed, pb, tile, tb, kc, i, j0, first, cols);
                        if (pair) block1Rows(g, ap, (i - i0) * run + (k0 - run0), run, packed, pb + SECOND, tile, tb, kc, i, j1, first, cols1);
                    }
                }
                panel += pair ? 2 : 1;
            }
        }
    }

    /**
     * op(a)[i0 + r][k0 + p] for r &lt; span, p &lt; kc, into {@code rows} at [p·span + r] (a
     * transposed float32 a: those span floats are contiguous at each depth).
     */
    private static void copyTransposedRows(GemmCall g, float[] rows, int i0, int span, int k0, int kc) {
        MemorySegment a = g.a();
        if (g.aCol() == span) {   // whole rows of a's storage (Fᵀ·V with m ≤ the rows of an item): one run
            MemorySegment.copy(a, FLOAT, (g.aOff() + i0 + (long) k0 * span) * Float.BYTES, rows, 0, kc * span);
            return;
        }
        for (int p = 0; p < kc; p++) MemorySegment.copy(a, FLOAT, (g.aOff() + i0 + (k0 + p) * g.aCol()) * Float.BYTES, rows, p * span, span);
    }

    /**
     * op(a)[i0 + r][k0 + p] for r &lt; span, p &lt; kc, into {@code rows} at [r·kc + p], widened
     * exactly from half precision: a bulk copy per row when a float32 a has unit-stride rows
     * (transposing it here, element by element, cost more than it saved), else element by element.
     */
    private static void copyRowsOfA(GemmCall g, float[] rows, int i0, int span, int k0, int kc) {
        MemorySegment a = g.a();
        ElementType type = g.aType();
        if (type == ElementType.F32 && g.aCol() == 1 && g.aRow() == kc) {
            // whole rows of a's storage (the variants' W·S and projections): one run. A copy per row
            // of 64 floats cost more than the heap reads saved (each copy checks bounds and liveness).
            MemorySegment.copy(a, FLOAT, (g.aOff() + i0 * (long) kc + k0) * Float.BYTES, rows, 0, span * kc);
            return;
        }
        for (int r = 0; r < span; r++) {
            long from = g.aOff() + (i0 + r) * g.aRow() + k0 * g.aCol();
            int to = r * kc;
            if (type == ElementType.F32 && g.aCol() == 1) {
                MemorySegment.copy(a, FLOAT, from * Float.BYTES, rows, to, kc);
            } else if (type == ElementType.F32) {
                for (int p = 0; p < kc; p++) rows[to + p] = a.getAtIndex(FLOAT, from + p * g.aCol());
            } else {
                for (int p = 0; p < kc; p++) rows[to + p] = type.get(a, from + p * g.aCol());
            }
        }
    }

    /**
     * Six rows of c times one packed panel, op(a) from the heap copy of a transposed a
     * ({@link #copyTransposedRows}, [p][r]): broadcast 6 elements of op(a), FMA into 6×2
     * accumulators — 15 registers, because AVX2 has 16 (a 4×4 blocking spills there).
     */
    private static void block6Heap(GemmCall g, float[] ap, int span, int r, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL, q = p * span + r;
            FloatVector b0 = FloatVector.fromArray(F, bp, o), b1 = FloatVector.fromArray(F, bp, o + L);
            FloatVector x = FloatVector.broadcast(F, ap[q]);
            c00 = b0.fma(x, c00); c01 = b1.fma(x, c01);
            x = FloatVector.broadcast(F, ap[q + 1]);
            c10 = b0.fma(x, c10); c11 = b1.fma(x, c11);
            x = FloatVector.broadcast(F, ap[q + 2]);
            c20 = b0.fma(x, c20); c21 = b1.fma(x, c21);
            x = FloatVector.broadcast(F, ap[q + 3]);
            c30 = b0.fma(x, c30); c31 = b1.fma(x, c31);
            x = FloatVector.broadcast(F, ap[q + 4]);
            c40 = b0.fma(x, c40); c41 = b1.fma(x, c41);
            x = FloatVector.broadcast(F, ap[q + 5]);
            c50 = b0.fma(x, c50); c51 = b1.fma(x, c51);
        }
        // Through a per-thread tile rather than six inlined stores: inlining all six exceeds C2's
        // node budget (NodeCountInliningCutoff), and the accumulators of the stores left out are
        // then kept boxed across the loop, which measured 5-10x slower on thin shapes.
        c00.intoArray(tile, tb); c01.intoArray(tile, tb + L);
        c10.intoArray(tile, tb + 2 * L); c11.intoArray(tile, tb + 3 * L);
        c20.intoArray(tile, tb + 4 * L); c21.intoArray(tile, tb + 5 * L);
        c30.intoArray(tile, tb + 6 * L); c31.intoArray(tile, tb + 7 * L);
        c40.intoArray(tile, tb + 8 * L); c41.intoArray(tile, tb + 9 * L);
        c50.intoArray(tile, tb + 10 * L); c51.intoArray(tile, tb + 11 * L);
        storeTile(g, tile, tb, i, ROWS, j0, first, cols);
    }

    /**
     * {@link #block6Heap} on two panels at once (the second at {@link #SECOND} in bp): 6 rows × 4
     * vectors, 24 accumulators, each broadcast of op(a) serving 4 FMAs. Every element is the same
     * fma chain as in block6Heap, so the bits are the same.
     */
    private static void block6HeapPair(GemmCall g, float[] ap, int span, int r, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols, int cols1) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        FloatVector c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL, q = p * span + r;
            FloatVector b0 = FloatVector.fromArray(F, bp, o), b1 = FloatVector.fromArray(F, bp, o + L);
            FloatVector b2 = FloatVector.fromArray(F, bp, SECOND + o), b3 = FloatVector.fromArray(F, bp, SECOND + o + L);
            FloatVector x = FloatVector.broadcast(F, ap[q]);
            c00 = b0.fma(x, c00); c01 = b1.fma(x, c01); c02 = b2.fma(x, c02); c03 = b3.fma(x, c03);
            x = FloatVector.broadcast(F, ap[q + 1]);
            c10 = b0.fma(x, c10); c11 = b1.fma(x, c11); c12 = b2.fma(x, c12); c13 = b3.fma(x, c13);
            x = FloatVector.broadcast(F, ap[q + 2]);
            c20 = b0.fma(x, c20); c21 = b1.fma(x, c21); c22 = b2.fma(x, c22); c23 = b3.fma(x, c23);
            x = FloatVector.broadcast(F, ap[q + 3]);
            c30 = b0.fma(x, c30); c31 = b1.fma(x, c31); c32 = b2.fma(x, c32); c33 = b3.fma(x, c33);
            x = FloatVector.broadcast(F, ap[q + 4]);
            c40 = b0.fma(x, c40); c41 = b1.fma(x, c41); c42 = b2.fma(x, c42); c43 = b3.fma(x, c43);
            x = FloatVector.broadcast(F, ap[q + 5]);
            c50 = b0.fma(x, c50); c51 = b1.fma(x, c51); c52 = b2.fma(x, c52); c53 = b3.fma(x, c53);
        }
        c00.intoArray(tile, tb); c01.intoArray(tile, tb + L); c02.intoArray(tile, tb + SECOND_TILE); c03.intoArray(tile, tb + SECOND_TILE + L);
        c10.intoArray(tile, tb + 2 * L); c11.intoArray(tile, tb + 3 * L); c12.intoArray(tile, tb + SECOND_TILE + 2 * L); c13.intoArray(tile, tb + SECOND_TILE + 3 * L);
        c20.intoArray(tile, tb + 4 * L); c21.intoArray(tile, tb + 5 * L); c22.intoArray(tile, tb + SECOND_TILE + 4 * L); c23.intoArray(tile, tb + SECOND_TILE + 5 * L);
        c30.intoArray(tile, tb + 6 * L); c31.intoArray(tile, tb + 7 * L); c32.intoArray(tile, tb + SECOND_TILE + 6 * L); c33.intoArray(tile, tb + SECOND_TILE + 7 * L);
        c40.intoArray(tile, tb + 8 * L); c41.intoArray(tile, tb + 9 * L); c42.intoArray(tile, tb + SECOND_TILE + 8 * L); c43.intoArray(tile, tb + SECOND_TILE + 9 * L);
        c50.intoArray(tile, tb + 10 * L); c51.intoArray(tile, tb + 11 * L); c52.intoArray(tile, tb + SECOND_TILE + 10 * L); c53.intoArray(tile, tb + SECOND_TILE + 11 * L);
        storeTile(g, tile, tb, i, ROWS, j0, first, cols);
        storeTile(g, tile, tb + SECOND_TILE, i, ROWS, j0 + PANEL, first, cols1);
    }

    /** Four rows, two panels: what a row chunk leaves after the 6-row pairs (M = 64 leaves 4; as two 2-row blocks per panel they were 6 % of Nyström's forward). */
    private static void block4HeapPair(GemmCall g, float[] ap, int span, int r, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols, int cols1) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL, q = p * span + r;
            FloatVector b0 = FloatVector.fromArray(F, bp, o), b1 = FloatVector.fromArray(F, bp, o + L);
            FloatVector b2 = FloatVector.fromArray(F, bp, SECOND + o), b3 = FloatVector.fromArray(F, bp, SECOND + o + L);
            FloatVector x = FloatVector.broadcast(F, ap[q]);
            c00 = b0.fma(x, c00); c01 = b1.fma(x, c01); c02 = b2.fma(x, c02); c03 = b3.fma(x, c03);
            x = FloatVector.broadcast(F, ap[q + 1]);
            c10 = b0.fma(x, c10); c11 = b1.fma(x, c11); c12 = b2.fma(x, c12); c13 = b3.fma(x, c13);
            x = FloatVector.broadcast(F, ap[q + 2]);
            c20 = b0.fma(x, c20); c21 = b1.fma(x, c21); c22 = b2.fma(x, c22); c23 = b3.fma(x, c23);
            x = FloatVector.broadcast(F, ap[q + 3]);
            c30 = b0.fma(x, c30); c31 = b1.fma(x, c31); c32 = b2.fma(x, c32); c33 = b3.fma(x, c33);
        }
        c00.intoArray(tile, tb); c01.intoArray(tile, tb + L); c02.intoArray(tile, tb + SECOND_TILE); c03.intoArray(tile, tb + SECOND_TILE + L);
        c10.intoArray(tile, tb + 2 * L); c11.intoArray(tile, tb + 3 * L); c12.intoArray(tile, tb + SECOND_TILE + 2 * L); c13.intoArray(tile, tb + SECOND_TILE + 3 * L);
        c20.intoArray(tile, tb + 4 * L); c21.intoArray(tile, tb + 5 * L); c22.intoArray(tile, tb + SECOND_TILE + 4 * L); c23.intoArray(tile, tb + SECOND_TILE + 5 * L);
        c30.intoArray(tile, tb + 6 * L); c31.intoArray(tile, tb + 7 * L); c32.intoArray(tile, tb + SECOND_TILE + 6 * L); c33.intoArray(tile, tb + SECOND_TILE + 7 * L);
        storeTile(g, tile, tb, i, 4, j0, first, cols);
        storeTile(g, tile, tb + SECOND_TILE, i, 4, j0 + PANEL, first, cols1);
    }

    /** Two rows: what is left of a row chunk after {@link #block6Heap} (half the loads per FMA of {@link #block1Heap}). */
    private static void block2Heap(GemmCall g, float[] ap, int span, int r, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL, q = p * span + r;
            FloatVector b0 = FloatVector.fromArray(F, bp, o), b1 = FloatVector.fromArray(F, bp, o + L);
            FloatVector x = FloatVector.broadcast(F, ap[q]);
            c00 = b0.fma(x, c00); c01 = b1.fma(x, c01);
            x = FloatVector.broadcast(F, ap[q + 1]);
            c10 = b0.fma(x, c10); c11 = b1.fma(x, c11);
        }
        c00.intoArray(tile, tb); c01.intoArray(tile, tb + L);
        c10.intoArray(tile, tb + 2 * L); c11.intoArray(tile, tb + 3 * L);
        storeTile(g, tile, tb, i, 2, j0, first, cols);
    }

    private static void block1Heap(GemmCall g, float[] ap, int span, int r, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols) {
        FloatVector c0 = FloatVector.zero(F), c1 = c0;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL;
            FloatVector x = FloatVector.broadcast(F, ap[p * span + r]);
            c0 = FloatVector.fromArray(F, bp, o).fma(x, c0);
            c1 = FloatVector.fromArray(F, bp, o + L).fma(x, c1);
        }
        c0.intoArray(tile, tb); c1.intoArray(tile, tb + L);
        storeTile(g, tile, tb, i, 1, j0, first, cols);
    }

    /** {@link #block6Heap} with op(a) from heap rows ({@link #copyRowsOfA}, row t at {@code at + t·stride}): the same FMAs in the same order. */
    private static void block6Rows(GemmCall g, float[] ap, int at, int stride, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        int a0 = at, a1 = a0 + stride, a2 = a1 + stride, a3 = a2 + stride, a4 = a3 + stride, a5 = a4 + stride;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL;
            FloatVector b0 = FloatVector.fromArray(F, bp, o), b1 = FloatVector.fromArray(F, bp, o + L);
            FloatVector x = FloatVector.broadcast(F, ap[a0 + p]);
            c00 = b0.fma(x, c00); c01 = b1.fma(x, c01);
            x = FloatVector.broadcast(F, ap[a1 + p]);
            c10 = b0.fma(x, c10); c11 = b1.fma(x, c11);
            x = FloatVector.broadcast(F, ap[a2 + p]);
            c20 = b0.fma(x, c20); c21 = b1.fma(x, c21);
            x = FloatVector.broadcast(F, ap[a3 + p]);
            c30 = b0.fma(x, c30); c31 = b1.fma(x, c31);
            x = FloatVector.broadcast(F, ap[a4 + p]);
            c40 = b0.fma(x, c40); c41 = b1.fma(x, c41);
            x = FloatVector.broadcast(F, ap[a5 + p]);
            c50 = b0.fma(x, c50); c51 = b1.fma(x, c51);
        }
        c00.intoArray(tile, tb); c01.intoArray(tile, tb + L);   // through the tile: see block6Heap
        c10.intoArray(tile, tb + 2 * L); c11.intoArray(tile, tb + 3 * L);
        c20.intoArray(tile, tb + 4 * L); c21.intoArray(tile, tb + 5 * L);
        c30.intoArray(tile, tb + 6 * L); c31.intoArray(tile, tb + 7 * L);
        c40.intoArray(tile, tb + 8 * L); c41.intoArray(tile, tb + 9 * L);
        c50.intoArray(tile, tb + 10 * L); c51.intoArray(tile, tb + 11 * L);
        storeTile(g, tile, tb, i, ROWS, j0, first, cols);
    }

    /** {@link #block6Rows} on two panels at once: see {@link #block6HeapPair}. */
    private static void block6RowsPair(GemmCall g, float[] ap, int at, int stride, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols, int cols1) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        FloatVector c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
        int a0 = at, a1 = a0 + stride, a2 = a1 + stride, a3 = a2 + stride, a4 = a3 + stride, a5 = a4 + stride;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL;
            FloatVector b0 = FloatVector.fromArray(F, bp, o), b1 = FloatVector.fromArray(F, bp, o + L);
            FloatVector b2 = FloatVector.fromArray(F, bp, SECOND + o), b3 = FloatVector.fromArray(F, bp, SECOND + o + L);
            FloatVector x = FloatVector.broadcast(F, ap[a0 + p]);
            c00 = b0.fma(x, c00); c01 = b1.fma(x, c01); c02 = b2.fma(x, c02); c03 = b3.fma(x, c03);
            x = FloatVector.broadcast(F, ap[a1 + p]);
            c10 = b0.fma(x, c10); c11 = b1.fma(x, c11); c12 = b2.fma(x, c12); c13 = b3.fma(x, c13);
            x = FloatVector.broadcast(F, ap[a2 + p]);
            c20 = b0.fma(x, c20); c21 = b1.fma(x, c21); c22 = b2.fma(x, c22); c23 = b3.fma(x, c23);
            x = FloatVector.broadcast(F, ap[a3 + p]);
            c30 = b0.fma(x, c30); c31 = b1.fma(x, c31); c32 = b2.fma(x, c32); c33 = b3.fma(x, c33);
            x = FloatVector.broadcast(F, ap[a4 + p]);
            c40 = b0.fma(x, c40); c41 = b1.fma(x, c41); c42 = b2.fma(x, c42); c43 = b3.fma(x, c43);
            x = FloatVector.broadcast(F, ap[a5 + p]);
            c50 = b0.fma(x, c50); c51 = b1.fma(x, c51); c52 = b2.fma(x, c52); c53 = b3.fma(x, c53);
        }
        c00.intoArray(tile, tb); c01.intoArray(tile, tb + L); c02.intoArray(tile, tb + SECOND_TILE); c03.intoArray(tile, tb + SECOND_TILE + L);
        c10.intoArray(tile, tb + 2 * L); c11.intoArray(tile, tb + 3 * L); c12.intoArray(tile, tb + SECOND_TILE + 2 * L); c13.intoArray(tile, tb + SECOND_TILE + 3 * L);
        c20.intoArray(tile, tb + 4 * L); c21.intoArray(tile, tb + 5 * L); c22.intoArray(tile, tb + SECOND_TILE + 4 * L); c23.intoArray(tile, tb + SECOND_TILE + 5 * L);
        c30.intoArray(tile, tb + 6 * L); c31.intoArray(tile, tb + 7 * L); c32.intoArray(tile, tb + SECOND_TILE + 6 * L); c33.intoArray(tile, tb + SECOND_TILE + 7 * L);
        c40.intoArray(tile, tb + 8 * L); c41.intoArray(tile, tb + 9 * L); c42.intoArray(tile, tb + SECOND_TILE + 8 * L); c43.intoArray(tile, tb + SECOND_TILE + 9 * L);
        c50.intoArray(tile, tb + 10 * L); c51.intoArray(tile, tb + 11 * L); c52.intoArray(tile, tb + SECOND_TILE + 10 * L); c53.intoArray(tile, tb + SECOND_TILE + 11 * L);
        storeTile(g, tile, tb, i, ROWS, j0, first, cols);
        storeTile(g, tile, tb + SECOND_TILE, i, ROWS, j0 + PANEL, first, cols1);
    }

    /** {@link #block4HeapPair} with op(a) from heap rows, as {@link #block6RowsPair}. */
    private static void block4RowsPair(GemmCall g, float[] ap, int at, int stride, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols, int cols1) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        int a0 = at, a1 = a0 + stride, a2 = a1 + stride, a3 = a2 + stride;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL;
            FloatVector b0 = FloatVector.fromArray(F, bp, o), b1 = FloatVector.fromArray(F, bp, o + L);
            FloatVector b2 = FloatVector.fromArray(F, bp, SECOND + o), b3 = FloatVector.fromArray(F, bp, SECOND + o + L);
            FloatVector x = FloatVector.broadcast(F, ap[a0 + p]);
            c00 = b0.fma(x, c00); c01 = b1.fma(x, c01); c02 = b2.fma(x, c02); c03 = b3.fma(x, c03);
            x = FloatVector.broadcast(F, ap[a1 + p]);
            c10 = b0.fma(x, c10); c11 = b1.fma(x, c11); c12 = b2.fma(x, c12); c13 = b3.fma(x, c13);
            x = FloatVector.broadcast(F, ap[a2 + p]);
            c20 = b0.fma(x, c20); c21 = b1.fma(x, c21); c22 = b2.fma(x, c22); c23 = b3.fma(x, c23);
            x = FloatVector.broadcast(F, ap[a3 + p]);
            c30 = b0.fma(x, c30); c31 = b1.fma(x, c31); c32 = b2.fma(x, c32); c33 = b3.fma(x, c33);
        }
        c00.intoArray(tile, tb); c01.intoArray(tile, tb + L); c02.intoArray(tile, tb + SECOND_TILE); c03.intoArray(tile, tb + SECOND_TILE + L);
        c10.intoArray(tile, tb + 2 * L); c11.intoArray(tile, tb + 3 * L); c12.intoArray(tile, tb + SECOND_TILE + 2 * L); c13.intoArray(tile, tb + SECOND_TILE + 3 * L);
        c20.intoArray(tile, tb + 4 * L); c21.intoArray(tile, tb + 5 * L); c22.intoArray(tile, tb + SECOND_TILE + 4 * L); c23.intoArray(tile, tb + SECOND_TILE + 5 * L);
        c30.intoArray(tile, tb + 6 * L); c31.intoArray(tile, tb + 7 * L); c32.intoArray(tile, tb + SECOND_TILE + 6 * L); c33.intoArray(tile, tb + SECOND_TILE + 7 * L);
        storeTile(g, tile, tb, i, 4, j0, first, cols);
        storeTile(g, tile, tb + SECOND_TILE, i, 4, j0 + PANEL, first, cols1);
    }

    private static void block2Rows(GemmCall g, float[] ap, int at, int stride, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00;
        int a0 = at, a1 = at + stride;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL;
            FloatVector b0 = FloatVector.fromArray(F, bp, o), b1 = FloatVector.fromArray(F, bp, o + L);
            FloatVector x = FloatVector.broadcast(F, ap[a0 + p]);
            c00 = b0.fma(x, c00); c01 = b1.fma(x, c01);
            x = FloatVector.broadcast(F, ap[a1 + p]);
            c10 = b0.fma(x, c10); c11 = b1.fma(x, c11);
        }
        c00.intoArray(tile, tb); c01.intoArray(tile, tb + L);
        c10.intoArray(tile, tb + 2 * L); c11.intoArray(tile, tb + 3 * L);
        storeTile(g, tile, tb, i, 2, j0, first, cols);
    }

    private static void block1Rows(GemmCall g, float[] ap, int at, int stride, float[] bp, int bo, float[] tile, int tb, int kc, int i, int j0, boolean first, int cols) {
        FloatVector c0 = FloatVector.zero(F), c1 = c0;
        for (int p = 0; p < kc; p++) {
            int o = bo + p * PANEL;
            FloatVector x = FloatVector.broadcast(F, ap[at + p]);
            c0 = FloatVector.fromArray(F, bp, o).fma(x, c0);
            c1 = FloatVector.fromArray(F, bp, o + L).fma(x, c1);
        }
        c0.intoArray(tile, tb); c1.intoArray(tile, tb + L);
        storeTile(g, tile, tb, i, 1, j0, first, cols);
    }

    /** op(b)'s panel at columns j0 … j0 + cols − 1, zero-padded, into {@code packed} from {@code base}. */
    private static void pack(GemmCall g, int k0, int kc, int j0, int cols, float[] packed, int base) {
        ElementType type = g.bType();
        if (type == ElementType.F32 && g.bCol() == 1) {
            packUnitStride(g, k0, kc, j0, cols, packed, base);
            return;
        }
        if (type == ElementType.F32 && g.bRow() == 1) {
            packTransposed(g, k0, kc, j0, cols, packed, base);
            return;
        }
        for (int p = 0; p < kc; p++) {
            long row = g.bOff() + (k0 + p) * g.bRow() + j0 * g.bCol();
            int o = base + p * PANEL;
            if (type == ElementType.F32) {
                for (int j = 0; j < cols; j++) packed[o + j] = g.b().getAtIndex(FLOAT, row + j * g.bCol());
            } else {
                for (int j = 0; j < cols; j++) packed[o + j] = type.get(g.b(), row + j * g.bCol());
            }
            for (int j = cols; j < PANEL; j++) packed[o + j] = 0f;
        }
    }

    /**
     * {@link #pack} for a float32 b whose rows have unit stride (row-major b, or a transposed
     * column-major one): two vector loads per depth (a ragged last panel: a bulk copy and the zero
     * padding). Element for element the same panel as the scalar copy.
     */
    private static void packUnitStride(GemmCall g, int k0, int kc, int j0, int cols, float[] packed, int base) {
        MemorySegment b = g.b();
        boolean full = cols == PANEL;
        for (int p = 0; p < kc; p++) {
            long byteOff = (g.bOff() + (k0 + p) * g.bRow() + j0) * Float.BYTES;
            int o = base + p * PANEL;
            if (full) {
                FloatVector.fromMemorySegment(F, b, byteOff, ORDER).intoArray(packed, o);
                FloatVector.fromMemorySegment(F, b, byteOff + (long) L * Float.BYTES, ORDER).intoArray(packed, o + L);
            } else {   // masked loads run as Java fallback code on AVX2: copy the ragged panel element by element
                MemorySegment.copy(b, FLOAT, byteOff, packed, o, cols);
                java.util.Arrays.fill(packed, o + cols, o + PANEL, 0f);
            }
        }
    }

    private static final ThreadLocal<float[]> LINES = ThreadLocal.withInitial(() -> new float[PANEL * KC]);

    /**
     * {@link #pack} for a float32 b with unit stride along the depth (a transposed row-major b, as
     * in q·kᵀ): each column of the panel is one contiguous run of kc floats, bulk-copied into a
     * heap line, and the lines are interleaved into the panel from the heap. Element by element
     * from the segment (a bounds and liveness check per float) this packing was 6 % of Nyström's
     * forward. Element for element the same panel as the scalar copy.
     */
    private static void packTransposed(GemmCall g, int k0, int kc, int j0, int cols, float[] packed, int base) {
        float[] line = LINES.get();
        MemorySegment b = g.b();
        for (int j = 0; j < cols; j++) {
            MemorySegment.copy(b, FLOAT, (g.bOff() + k0 + (j0 + j) * g.bCol()) * Float.BYTES, line, 0, kc);
            for (int p = 0, o = base + j; p < kc; p++, o += PANEL) packed[o] = line[p];
        }
        if (cols < PANEL) {
            for (int p = 0; p < kc; p++) java.util.Arrays.fill(packed, base + p * PANEL + cols, base + (p + 1) * PANEL, 0f);
        }
    }

    /**
     * Stores {@code rows} rows of the tile at {@code tile[t0, …)} (row r at {@code t0 + 2rL}, 2L
     * floats) into c's rows i … and columns j0 … j0 + cols − 1: c = alpha·acc + beta·c on the first
     * depth slice, c += alpha·acc after it. Every block stores through its tile and no method takes
     * a vector or a mask: through a store(FloatVector, VectorMask) helper the vectors and masks were
     * boxed whenever C2 did not inline it (storing took a tenth of a thin product's time, depth 64,
     * Performer's projections), and after the variants' other kernels had run in the JVM, a
     * warmed-up forward still allocated 0.4–1.3 MB per call there.
     */
    private static void storeTile(GemmCall g, float[] tile, int t0, int i, int rows, int j0, boolean first, int cols) {
        if (cols == PANEL) {
            storeFullTile(g, tile, t0, i, rows, j0, first);
            return;
        }
        for (int r = 0; r < rows; r++) {
            long at = g.cOff() + (i + r) * g.cRow() + j0;
            storeRagged(g, tile, t0 + 2 * r * L, at, first, cols);
        }
    }

    /** {@link #storeTile} for a full panel, one straight loop per case. */
    private static void storeFullTile(GemmCall g, float[] tile, int t0, int i, int rows, int j0, boolean first) {
        MemorySegment c = g.c();
        float alpha = g.alpha(), beta = g.beta();
        long rowBytes = g.cRow() * Float.BYTES, at = (g.cOff() + i * g.cRow() + j0) * Float.BYTES;
        if (!first) {
            for (int v = 0; v < 2 * rows; v++) {
                long byteOff = at + (v >> 1) * rowBytes + (v & 1) * (long) L * Float.BYTES;
                FloatVector.fromArray(F, tile, t0 + v * L).mul(alpha).add(FloatVector.fromMemorySegment(F, c, byteOff, ORDER)).intoMemorySegment(c, byteOff, ORDER);
            }
        } else if (beta != 0f) {
            for (int v = 0; v < 2 * rows; v++) {
                long byteOff = at + (v >> 1) * rowBytes + (v & 1) * (long) L * Float.BYTES;
                FloatVector.fromMemorySegment(F, c, byteOff, ORDER).mul(beta).add(FloatVector.fromArray(F, tile, t0 + v * L).mul(alpha)).intoMemorySegment(c, byteOff, ORDER);
            }
        } else {
            for (int v = 0; v < 2 * rows; v++) {
                long byteOff = at + (v >> 1) * rowBytes + (v & 1) * (long) L * Float.BYTES;
                FloatVector.fromArray(F, tile, t0 + v * L).mul(alpha).intoMemorySegment(c, byteOff, ORDER);
            }
        }
    }

    /**
     * One row of a ragged last panel (cols < 2L), its tile row at {@code tile[t, t + cols)}, into c
     * from element {@code at}, lane by lane with {@link #storeFullTile}'s operations (so the same
     * bits): masked vector loads and stores into a memory segment run as Java fallback code on AVX2
     * (measured: a 1-column panel cost as much as the rest of the product).
     */
    private static void storeRagged(GemmCall g, float[] tile, int t, long at, boolean first, int cols) {
        MemorySegment c = g.c();
        float alpha = g.alpha(), beta = g.beta();
        for (int j = 0; j < cols; j++) {
            float r = tile[t + j] * alpha;
            if (!first) r = r + c.getAtIndex(FLOAT, at + j);
            else if (beta != 0f) r = c.getAtIndex(FLOAT, at + j) * beta + r;
            c.setAtIndex(FLOAT, at + j, r);
        }
    }
}
