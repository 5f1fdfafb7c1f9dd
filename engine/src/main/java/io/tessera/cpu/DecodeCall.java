package io.tessera.cpu;

import io.tessera.layout.BlockLayout;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * One validated paged-attention (decode) call and its split-KV plan.
 *
 * <p>Work items: each sequence's pages are cut into <em>splits</em> of {@link #pagesPerSplit}
 * consecutive logical pages (fixed by the page size alone, never by the thread count); an item is
 * (split that holds at least one tile of the layout, key/value head), and it attends all query rows
 * of that key/value head — the G grouped query heads × qLen queries, as rows — to the split's
 * tiles, so each K/V element is read once per key/value head. An item leaves its unnormalized
 * output, base-2 running max and sum in its own slot; the combine step then merges, per
 * (sequence, key/value head), the slots in split order in float64. Both steps write disjoint
 * memory, so results are bit-identical for any thread count.
 *
 * <p>The plan's arrays and the partial slots live in a buffer of the calling thread, grown on
 * demand and reused: a call allocates only this object (and the worker pool's bookkeeping).
 */
final class DecodeCall {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Keys per split (when the page size divides it): large enough that an item's K/V read dwarfs its partial's write. */
    static final int SPLIT_KEYS = 512;
    private static final double LN2 = 0.6931471805599453;

    final MemorySegment q, k, v, out, lse;
    final long qOff, qB, qH, qI;
    final long kOff, kH, kT, vOff, vH, vT;
    final long oOff, oB, oH, oI, lOff, lB, lH, lI;
    final int batch, heads, kvHeads, group, qLen, d, dv, pageSize, rows, pagesPerSplit;
    final int[][] tables;
    final BlockLayout[] layouts;
    final float scale;
    final io.tessera.tensor.ElementType qType, kType, vType;
    // The plan: runs (a split's tiles of one sequence) and their partial slots; item = run·kvHeads + hk.
    final int runs;
    final int[] runSeq, runFrom, runTo, seqRunBase;
    final float[] partO, partM, partL;   // per item: [rows][dv], [rows], [rows]
    /** The first (batch, head, query row) code whose scores overflowed from finite inputs; MAX_VALUE: none. */
    private long firstOverflow = Long.MAX_VALUE;

    /** Plan arrays of the calling thread, reused by its next call. */
    private static final class Buffers {
        int[] runSeq = new int[0], runFrom = new int[0], runTo = new int[0], seqRunBase = new int[0];
        float[] partO = new float[0], partM = new float[0], partL = new float[0];
    }

    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);
    private static final ThreadLocal<double[]> COMBINE = ThreadLocal.withInitial(() -> new double[0]);

    private DecodeCall(Tensor q, Tensor k, Tensor v, int pageSize, int[][] tables, BlockLayout[] layouts, float scale, Tensor out, Tensor lse) {
        this.q = q.segment();
        this.k = k.segment();
        this.v = v.segment();
        this.out = out.segment();
        this.lse = lse == null ? null : lse.segment();
        qType = q.type(); kType = k.type(); vType = v.type();
        qOff = q.offset(); qB = q.stride(0); qH = q.stride(1); qI = q.stride(2);
        kOff = k.offset(); kH = k.stride(1); kT = k.stride(2);
        vOff = v.offset(); vH = v.stride(1); vT = v.stride(2);
        oOff = out.offset(); oB = out.stride(0); oH = out.stride(1); oI = out.stride(2);
        if (lse != null) { lOff = lse.offset(); lB = lse.stride(0); lH = lse.stride(1); lI = lse.stride(2); } else { lOff = lB = lH = lI = 0; }
        batch = (int) q.size(0);
        heads = (int) q.size(1);
        qLen = (int) q.size(2);
        d = (int) q.size(3);
        kvHeads = (int) k.size(1);
        dv = (int) v.size(3);
        group = heads / kvHeads;
        rows = Math.multiplyExact(group, qLen);
        this.pageSize = pageSize;
        this.pagesPerSplit = Math.max(1, SPLIT_KEYS / pageSize);
        this.tables = tables;
        this.layouts = layouts;
        this.scale = scale;
        Buffers buf = BUFFERS.get();
        long runCount = 0;
        for (BlockLayout lay : layouts) runCount += lay.tileCount();   // an upper bound: at most one run per tile
        if (runCount > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("decode call too large: " + runCount + " pages to read in the batch");
        if (buf.runSeq.length < runCount) {
            int size = (int) runCount;
            buf.runSeq = new int[size]; buf.runFrom = new int[size]; buf.runTo = new int[size];
        }
        if (buf.seqRunBase.length < batch + 1) buf.seqRunBase = new int[batch + 1];
        int r = 0;
        for (int b = 0; b < batch; b++) {
            buf.seqRunBase[b] = r;
            int[] cols = layouts[b].colIndices();
            int end = layouts[b].rowOffsets()[1];
            for (int t = layouts[b].rowOffsets()[0]; t < end; ) {
                int split = cols[t] / pagesPerSplit, from = t;
                while (t < end && cols[t] / pagesPerSplit == split) t++;
                buf.runSeq[r] = b; buf.runFrom[r] = from; buf.runTo[r] = t;
                r++;
            }
        }
        buf.seqRunBase[batch] = r;
        runs = r;
        long slots = (long) runs * kvHeads * rows;
        if (slots * dv > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("decode call too large: " + runs + " splits × kvHeads " + kvHeads + " × rows " + rows + " × valueDim " + dv + " partial outputs");
        }
        if (buf.partM.length < slots) { buf.partM = new float[(int) slots]; buf.partL = new float[(int) slots]; }
        if (buf.partO.length < slots * dv) buf.partO = new float[(int) (slots * dv)];
        runSeq = buf.runSeq; runFrom = buf.runFrom; runTo = buf.runTo; seqRunBase = buf.seqRunBase;
        partO = buf.partO; partM = buf.partM; partL = buf.partL;
    }

    /** Validates every argument up front, naming the offending one; see {@code PagedAttentionDevice}. */
    static DecodeCall of(Tensor q, Tensor keyPool, Tensor valuePool, int pageSize, int[][] pageTables, BlockLayout[] layouts,
                         float scale, Tensor out, Tensor lse) {
        if (q == null) throw new NullPointerException("q");
        if (keyPool == null) throw new NullPointerException("keyPool");
        if (valuePool == null) throw new NullPointerException("valuePool");
        if (pageTables == null) throw new NullPointerException("pageTables");
        if (layouts == null) throw new NullPointerException("layouts");
        if (out == null) throw new NullPointerException("out");
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        if (pageSize < 1) throw new IllegalArgumentException("pageSize must be >= 1, got " + pageSize);
        rank4("q", q);
        rank4("keyPool", keyPool);
        rank4("valuePool", valuePool);
        rank4("out", out);
        long batch = q.size(0), heads = q.size(1), qLen = q.size(2), d = q.size(3);
        long kvHeads = keyPool.size(1), poolTokens = keyPool.size(2), dv = valuePool.size(3);
        if (batch < 1 || heads < 1 || qLen < 1 || d < 1 || batch > Integer.MAX_VALUE || heads > Integer.MAX_VALUE || qLen > Integer.MAX_VALUE || d > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("q must be [B, H, qLen, D] with every size in [1, 2^31), got " + Arrays.toString(q.shape()));
        }
        if (keyPool.size(0) != 1 || kvHeads < 1 || heads % kvHeads != 0 || keyPool.size(3) != d || poolTokens < 1 || poolTokens > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("keyPool must be [1, kvHeads (dividing H=" + heads + "), tokens, D=" + d + "], got " + Arrays.toString(keyPool.shape()));
        }
        if (valuePool.size(0) != 1 || valuePool.size(1) != kvHeads || valuePool.size(2) != poolTokens || dv < 1 || dv > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("valuePool must be [1, " + kvHeads + ", " + poolTokens + ", Dv], got " + Arrays.toString(valuePool.shape()));
        }
        if (poolTokens % pageSize != 0) throw new IllegalArgumentException("pool of " + poolTokens + " tokens is not a whole number of pages of pageSize=" + pageSize);
        long pages = poolTokens / pageSize;
        if (!Arrays.equals(out.shape(), new long[] {batch, heads, qLen, dv})) {
            throw new IllegalArgumentException("out shape " + Arrays.toString(out.shape()) + " must be " + Arrays.toString(new long[] {batch, heads, qLen, dv}));
        }
        // q, keys and values in any element type (half-precision pages are widened as they are read, the
        // arithmetic is float32); the outputs are float32.
        for (Tensor t : new Tensor[] {out, lse}) {
            if (t != null && t.type() != io.tessera.tensor.ElementType.F32) {
                throw new IllegalArgumentException((t == out ? "out" : "lse") + " is " + t.type() + ": the decode kernel writes float32 outputs and log-sum-exps");
            }
        }
        if (lse != null && !Arrays.equals(lse.shape(), new long[] {batch, heads, qLen})) {
            throw new IllegalArgumentException("lse shape " + Arrays.toString(lse.shape()) + " must be " + Arrays.toString(new long[] {batch, heads, qLen}));
        }
        for (Tensor t : new Tensor[] {q, keyPool, valuePool, out}) {
            if (!t.hasUnitInnerStride()) throw new IllegalArgumentException((t == q ? "q" : t == keyPool ? "keyPool" : t == valuePool ? "valuePool" : "out") + " must have a unit-stride last dimension, got " + t);
        }
        for (Tensor read : new Tensor[] {q, keyPool, valuePool}) {
            String name = read == q ? "q" : read == keyPool ? "keyPool" : "valuePool";
            if (out.overlaps(read)) throw new IllegalArgumentException("out shares memory with " + name);
            if (lse != null && lse.overlaps(read)) throw new IllegalArgumentException("lse shares memory with " + name);
        }
        if (lse != null && out.overlaps(lse)) throw new IllegalArgumentException("out and lse share memory");
        if (pageTables.length != batch) throw new IllegalArgumentException("pageTables.length=" + pageTables.length + " must be the batch size " + batch);
        if (layouts.length != batch) throw new IllegalArgumentException("layouts.length=" + layouts.length + " must be the batch size " + batch);
        for (int b = 0; b < batch; b++) {
            BlockLayout lay = layouts[b];
            if (lay == null) throw new NullPointerException("layouts[" + b + "]");
            if (lay.qLen() != qLen || lay.qBlocks() != 1 || lay.blockKV() != pageSize) {
                throw new IllegalArgumentException("layouts[" + b + "] must have qLen=" + qLen + " in one query block and key blocks of pageSize=" + pageSize + ", got " + lay);
            }
            int[] table = pageTables[b];
            if (table == null) throw new NullPointerException("pageTables[" + b + "]");
            int used = lay.kvBlocks();
            if (table.length < used) throw new IllegalArgumentException("pageTables[" + b + "] has " + table.length + " pages but layouts[" + b + "] spans " + lay.kvLen() + " tokens = " + used + " pages");
            for (int p = 0; p < used; p++) {
                if (table[p] < 0 || table[p] >= pages) throw new IllegalArgumentException("pageTables[" + b + "][" + p + "]=" + table[p] + " is not a page of the pool [0, " + pages + ")");
            }
        }
        return new DecodeCall(q, keyPool, valuePool, pageSize, pageTables, layouts, scale, out, lse);
    }

    private static void rank4(String name, Tensor t) {
        if (t.rank() != 4) throw new IllegalArgumentException(name + " must have rank 4, got " + Arrays.toString(t.shape()));
    }

    int items() { return runs * kvHeads; }

    MemorySegment[] segments() { return new MemorySegment[] {q, k, v, out, lse}; }

    /** Element index of query row {@code r} (head hk·G + r / qLen, query r % qLen) of sequence b. */
    long queryRow(int b, int hk, int r) {
        return qOff + b * qB + (long) (hk * group + r / qLen) * qH + (long) (r % qLen) * qI;
    }

    /** Element index of key {@code slot} (a row of the pool) of head hk; values likewise with {@link #valueRow}. */
    long keyRow(int hk, long slot) { return kOff + hk * kH + slot * kT; }

    long valueRow(int hk, long slot) { return vOff + hk * vH + slot * vT; }

    /**
     * A row whose scores left float32's range: it reads NaN (output and LSE), and when its query
     * and every key it may attend are finite, q·k·scale overflowed: the call throws at its end
     * ({@link #throwIfScoresOverflowed}), naming the first such (batch, head, query row) — the fused
     * kernel's contract. With an infinite input it is garbage in the row's own inputs, NaN like a
     * NaN input, and −∞ keeps meaning "fully masked". Rare: reached only for such rows.
     */
    private void undefinedRow(int b, int hk, int r, long oRow, long lIndex) {
        for (int x = 0; x < dv; x++) out.setAtIndex(FLOAT, oRow + x, Float.NaN);
        if (lse != null) lse.setAtIndex(FLOAT, lIndex, Float.NaN);
        if (rowInputsFinite(b, hk, r)) {
            long code = ((long) b * heads + hk * group + r / qLen) * qLen + r % qLen;
            synchronized (this) {
                firstOverflow = Math.min(firstOverflow, code);
            }
        }
    }

    /** Whether query row r of (b, hk) and every cached key it may attend hold only finite values. */
    private boolean rowInputsFinite(int b, int hk, int r) {
        long qRow = queryRow(b, hk, r);
        for (int x = 0; x < d; x++) if (!Float.isFinite(qType.get(q, qRow + x))) return false;
        BlockLayout lay = layouts[b];
        int words = lay.maskWordsPerRow(), i = r % qLen;
        int[] cols = lay.colIndices();
        long[] mask = new long[qLen * words];
        for (int t = lay.rowOffsets()[0]; t < lay.rowOffsets()[1]; t++) {
            boolean partial = lay.kind(t) == io.tessera.layout.TileKind.PARTIAL;
            if (partial) lay.fillTileMask(t, mask);
            int page = cols[t], tokens = Math.min(pageSize, lay.kvLen() - page * pageSize);
            for (int j = 0; j < tokens; j++) {
                if (partial && (mask[i * words + (j >>> 6)] & (1L << j)) == 0) continue;
                long kRow = keyRow(hk, (long) tables[b][page] * pageSize + j);
                for (int x = 0; x < d; x++) if (!Float.isFinite(kType.get(k, kRow + x))) return false;
            }
        }
        return true;
    }

    /** Throws, naming the first (batch, head, query row), when a row's scores overflowed float32 from finite inputs. */
    void throwIfScoresOverflowed() {
        long code;
        synchronized (this) {
            code = firstOverflow;
        }
        if (code == Long.MAX_VALUE) return;
        long row = code % qLen, bh = code / qLen;
        throw new ArithmeticException("attention scores overflowed float32 at batch " + bh / heads + ", head " + bh % heads + ", query row " + row
                + ": q·k·scale (scale " + scale + ") reached ±∞ for an allowed key, so the softmax is undefined in float32."
                + " Either |q|·|k|·scale exceeds 3.4e38 (scale q or k down) or q/k holds an infinity");
    }

    /** Stores an item's partial: unnormalized output rows (dv apart in {@code o}), base-2 running max and sum. */
    void storePartial(int item, float[] o, float[] m, float[] l) { storePartial(item, o, dv, m, l); }

    /** {@link #storePartial(int, float[], float[], float[])} with output rows {@code oStride} apart. */
    void storePartial(int item, float[] o, int oStride, float[] m, float[] l) {
        if (oStride == dv) System.arraycopy(o, 0, partO, item * rows * dv, rows * dv);
        else for (int r = 0; r < rows; r++) System.arraycopy(o, r * oStride, partO, (item * rows + r) * dv, dv);
        System.arraycopy(m, 0, partM, item * rows, rows);
        System.arraycopy(l, 0, partL, item * rows, rows);
    }

    /**
     * Output and LSE of the rows of (sequence b, key/value head hk): the partials of its splits,
     * in split order, in float64 — per row {@code M = max m_s}, {@code w_s = 2^(m_s − M)},
     * {@code out = Σ w_s·o_s / Σ w_s·l_s}, {@code lse = M·ln2 + ln Σ w_s·l_s} (StrictMath: the same
     * bits at every JIT tier). A split whose row saw no allowed key (max −∞) contributes nothing;
     * a row with none at all gets 0 and −∞. Shared by both kernels.
     */
    void combine(int b, int hk) {
        double[] acc = COMBINE.get();
        if (acc.length < dv) COMBINE.set(acc = new double[dv]);
        int from = seqRunBase[b], to = seqRunBase[b + 1];
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            boolean any = false;
            for (int run = from; run < to; run++) {
                float m = partM[(run * kvHeads + hk) * rows + r];
                if (m == Float.NEGATIVE_INFINITY) continue;
                any = true;
                max = Double.isNaN(m) ? m : Math.max(max, m);
                if (Double.isNaN(max)) break;
            }
            long oRow = oOff + b * oB + (long) (hk * group + r / qLen) * oH + (long) (r % qLen) * oI;
            long lIndex = lOff + b * lB + (long) (hk * group + r / qLen) * lH + (long) (r % qLen) * lI;
            if (!any) {
                if (layouts[b].rowHasAllowedKey(r % qLen)) {   // every allowed score reached −∞
                    undefinedRow(b, hk, r, oRow, lIndex);
                    continue;
                }
                for (int x = 0; x < dv; x++) out.setAtIndex(FLOAT, oRow + x, 0f);
                if (lse != null) lse.setAtIndex(FLOAT, lIndex, Float.NEGATIVE_INFINITY);
                continue;
            }
            if (max == Double.POSITIVE_INFINITY) {   // a score reached +∞
                undefinedRow(b, hk, r, oRow, lIndex);
                continue;
            }
            Arrays.fill(acc, 0, dv, 0.0);
            double sum = 0;
            for (int run = from; run < to; run++) {
                int slot = (run * kvHeads + hk) * rows + r;
                float m = partM[slot];
                if (m == Float.NEGATIVE_INFINITY) continue;
                double w = StrictMath.exp((m - max) * LN2);
                sum += w * partL[slot];
                int o = slot * dv;
                for (int x = 0; x < dv; x++) acc[x] += w * partO[o + x];
            }
            double inv = 1 / sum;
            for (int x = 0; x < dv; x++) out.setAtIndex(FLOAT, oRow + x, (float) (acc[x] * inv));
            if (lse != null) lse.setAtIndex(FLOAT, lIndex, (float) (max * LN2 + StrictMath.log(sum)));
        }
    }
}
