package io.tessera.cpu;

import io.tessera.layout.TileKind;
import io.tessera.pattern.DecodePlan;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * One validated paged-attention (decode) call and its split-KV plan.
 *
 * <p>Work items: each sequence's pages are cut into <em>splits</em> of {@link #pagesPerSplit}
 * consecutive logical pages (fixed by the page size alone, never by the thread count); an item is
 * (split that holds at least one tile of the plan, key/value head), and it attends all query rows
 * of that key/value head — the G grouped query heads × qLen queries, as rows — to the split's
 * tiles, so each K/V element is read once per key/value head. An item leaves its unnormalized
 * output, base-2 running max and sum in its own slot; the combine step then merges, per
 * (sequence, key/value head), the slots in split order in float64. Both steps write disjoint
 * memory, so results are bit-identical for any thread count.
 *
 * <p>The pages come from a {@link DecodePlan} refilled in place by the caller each step. The call
 * itself, its runs and partial slots (grown on demand) and its two tasks are the calling thread's,
 * reused by its next call ({@link #of} … {@link #release}): a single-threaded step allocates
 * nothing here, a multi-threaded one only the worker pool's bookkeeping. A call made while the
 * thread's is in use (a modifier's function that decodes) gets a fresh one.
 */
final class DecodeCall {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Keys per split (when the page size divides it): large enough that an item's K/V read dwarfs its partial's write. */
    static final int SPLIT_KEYS = 512;
    private static final double LN2 = 0.6931471805599453;

    // Set by init for each call (not final: the thread's call object is reused).
    MemorySegment q, k, v, out, lse;
    long qOff, qB, qH, qI;
    long kOff, kH, kT, vOff, vH, vT;
    long oOff, oB, oH, oI, lOff, lB, lH, lI;
    int batch, heads, kvHeads, group, qLen, d, dv, pageSize, rows, pagesPerSplit;
    int[][] tables;
    DecodePlan plan;
    /** The plan's score modifier, or null. */
    ScoreMod mod;
    float scale;
    io.tessera.tensor.ElementType qType, kType, vType;
    private CpuBackend backend;
    // The plan: runs (a split's tiles of one sequence) and their partial slots; item = run·kvHeads + hk.
    int runs;
    int[] runSeq = new int[0], runFrom = new int[0], runTo = new int[0], seqRunBase = new int[0];
    float[] partO = new float[0], partM = new float[0], partL = new float[0];   // per item: [rows][dv], [rows], [rows]
    /** The first (batch, head, query row) code whose scores overflowed from finite inputs; MAX_VALUE: none. */
    private long firstOverflow;
    private boolean inUse;
    /** The segments the call touches (the worker pool checks they are shared). */
    final MemorySegment[] segments = new MemorySegment[5];
    /** Item i: the backend's decode kernel on item i. Combine item i: sequence i / kvHeads, key/value head i % kvHeads. */
    final WorkerPool.ItemTask itemTask = item -> backend.decodeItem(this, item), combineTask = i -> combine(i / kvHeads, i % kvHeads);

    private static final ThreadLocal<DecodeCall> REUSED = ThreadLocal.withInitial(DecodeCall::new);
    private static final ThreadLocal<double[]> COMBINE = ThreadLocal.withInitial(() -> new double[0]);

    private DecodeCall() {}

    /** Numbers calls, so a worker's per-thread state can tell this call's from an earlier one's. */
    private static final java.util.concurrent.atomic.AtomicLong CALLS = new java.util.concurrent.atomic.AtomicLong();
    /** This call's number (unique in the JVM): what per-thread caches of the call's inputs are keyed by. */
    long id;

    private DecodeCall init(CpuBackend backend, Tensor q, Tensor k, Tensor v, int[][] tables, DecodePlan plan, float scale, Tensor out, Tensor lse) {
        this.backend = backend;
        this.id = CALLS.incrementAndGet();
        this.firstOverflow = Long.MAX_VALUE;
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
        this.pageSize = plan.pageSize();
        this.pagesPerSplit = Math.max(1, SPLIT_KEYS / pageSize);
        this.tables = tables;
        this.plan = plan;
        this.mod = plan.scoreMod();
        this.scale = scale;
        int runCount = plan.tileCount();   // an upper bound: at most one run per tile
        if (runSeq.length < runCount) {   // grown by half again at least: a sequence reaching a new page must not reallocate
            int size = grown(runSeq.length, runCount);
            runSeq = new int[size]; runFrom = new int[size]; runTo = new int[size];
        }
        if (seqRunBase.length < batch + 1) seqRunBase = new int[batch + 1];
        int r = 0;
        int[] cols = plan.pages(), tileOffsets = plan.tileOffsets();
        for (int b = 0; b < batch; b++) {
            seqRunBase[b] = r;
            int end = tileOffsets[b + 1];
            for (int t = tileOffsets[b]; t < end; ) {
                int split = cols[t] / pagesPerSplit, from = t;
                while (t < end && cols[t] / pagesPerSplit == split) t++;
                runSeq[r] = b; runFrom[r] = from; runTo[r] = t;
                r++;
            }
        }
        seqRunBase[batch] = r;
        runs = r;
        long slots = (long) runs * kvHeads * rows;
        if (slots * dv > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("decode call too large: " + runs + " splits × kvHeads " + kvHeads + " × rows " + rows + " × valueDim " + dv + " partial outputs");
        }
        if (partM.length < slots) { int size = grown(partM.length, slots); partM = new float[size]; partL = new float[size]; }
        if (partO.length < slots * dv) partO = new float[grown(partO.length, slots * dv)];
        segments[0] = this.q; segments[1] = this.k; segments[2] = this.v; segments[3] = this.out; segments[4] = this.lse;
        return this;
    }

    /** A capacity of at least {@code needed} (≤ Integer.MAX_VALUE − 8), half again the current one when that is more. */
    private static int grown(int current, long needed) {
        return (int) Math.min(Integer.MAX_VALUE - 8, Math.max(needed, current + (current >> 1)));
    }

    /** Ends the call: the thread's call object may be reused (its arrays are kept). */
    void release() {
        inUse = false;
        tables = null;
        plan = null;
        mod = null;
        backend = null;
        Arrays.fill(segments, null);
        q = k = v = out = lse = null;
    }

    /** Validates every argument up front, naming the offending one; see {@code PagedAttentionDevice}. Allocates nothing but the call. */
    static DecodeCall of(CpuBackend backend, Tensor q, Tensor keyPool, Tensor valuePool, int[][] pageTables, DecodePlan plan, float scale, Tensor out, Tensor lse) {
        if (q == null) throw new NullPointerException("q");
        if (keyPool == null) throw new NullPointerException("keyPool");
        if (valuePool == null) throw new NullPointerException("valuePool");
        if (pageTables == null) throw new NullPointerException("pageTables");
        if (plan == null) throw new NullPointerException("plan");
        if (out == null) throw new NullPointerException("out");
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        rank4("q", q);
        rank4("keyPool", keyPool);
        rank4("valuePool", valuePool);
        rank4("out", out);
        long batch = q.size(0), heads = q.size(1), qLen = q.size(2), d = q.size(3);
        long kvHeads = keyPool.size(1), poolTokens = keyPool.size(2), dv = valuePool.size(3);
        int pageSize = plan.pageSize();
        if (batch != plan.batch() || heads != plan.heads() || qLen != plan.qLen() || d < 1 || d > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("q must be [B=" + plan.batch() + ", H=" + plan.heads() + ", qLen=" + plan.qLen() + ", D] (the plan's batch, heads and qLen) with D in [1, 2^31), got " + Arrays.toString(q.shape()));
        }
        if (keyPool.size(0) != 1 || kvHeads < 1 || heads % kvHeads != 0 || keyPool.size(3) != d || poolTokens < 1 || poolTokens > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("keyPool must be [1, kvHeads (dividing H=" + heads + "), tokens, D=" + d + "], got " + Arrays.toString(keyPool.shape()));
        }
        if (valuePool.size(0) != 1 || valuePool.size(1) != kvHeads || valuePool.size(2) != poolTokens || dv < 1 || dv > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("valuePool must be [1, " + kvHeads + ", " + poolTokens + ", Dv], got " + Arrays.toString(valuePool.shape()));
        }
        if (poolTokens % pageSize != 0) throw new IllegalArgumentException("pool of " + poolTokens + " tokens is not a whole number of pages of the plan's pageSize=" + pageSize);
        long pages = poolTokens / pageSize;
        if (out.size(0) != batch || out.size(1) != heads || out.size(2) != qLen || out.size(3) != dv) {
            throw new IllegalArgumentException("out shape " + Arrays.toString(out.shape()) + " must be " + Arrays.toString(new long[] {batch, heads, qLen, dv}));
        }
        // q, keys and values in any element type (half-precision pages are widened as they are read, the
        // arithmetic is float32); the outputs are float32.
        if (out.type() != io.tessera.tensor.ElementType.F32) throw new IllegalArgumentException("out is " + out.type() + ": the decode kernel writes float32 outputs");
        if (lse != null && lse.type() != io.tessera.tensor.ElementType.F32) throw new IllegalArgumentException("lse is " + lse.type() + ": the decode kernel writes float32 log-sum-exps");
        if (backend == null) throw new NullPointerException("backend");
        if (lse != null && (lse.rank() != 3 || lse.size(0) != batch || lse.size(1) != heads || lse.size(2) != qLen)) {
            throw new IllegalArgumentException("lse shape " + Arrays.toString(lse.shape()) + " must be " + Arrays.toString(new long[] {batch, heads, qLen}));
        }
        unitInnerStride("q", q);
        unitInnerStride("keyPool", keyPool);
        unitInnerStride("valuePool", valuePool);
        unitInnerStride("out", out);
        disjoint("out", out, "q", q);
        disjoint("out", out, "keyPool", keyPool);
        disjoint("out", out, "valuePool", valuePool);
        if (lse != null) {
            disjoint("lse", lse, "q", q);
            disjoint("lse", lse, "keyPool", keyPool);
            disjoint("lse", lse, "valuePool", valuePool);
            disjoint("out", out, "lse", lse);
        }
        if (pageTables.length != batch) throw new IllegalArgumentException("pageTables.length=" + pageTables.length + " must be the batch size " + batch);
        for (int b = 0; b < batch; b++) {
            int[] table = pageTables[b];
            if (table == null) throw new NullPointerException("pageTables[" + b + "]");
            long used = ((long) plan.length(b) + pageSize - 1) / pageSize;
            if (table.length < used) throw new IllegalArgumentException("pageTables[" + b + "] has " + table.length + " pages but sequence " + b + " of the plan has length " + plan.length(b) + " = " + used + " pages");
            for (int p = 0; p < used; p++) {
                if (table[p] < 0 || table[p] >= pages) throw new IllegalArgumentException("pageTables[" + b + "][" + p + "]=" + table[p] + " is not a page of the pool [0, " + pages + ")");
            }
        }
        DecodeCall call = REUSED.get();
        if (call.inUse) call = new DecodeCall();
        call.inUse = true;
        try {
            return call.init(backend, q, keyPool, valuePool, pageTables, plan, scale, out, lse);
        } catch (RuntimeException | Error e) {
            call.release();
            throw e;
        }
    }

    private static void unitInnerStride(String name, Tensor t) {
        if (!t.hasUnitInnerStride()) throw new IllegalArgumentException(name + " must have a unit-stride last dimension, got " + t);
    }

    private static void disjoint(String name, Tensor written, String otherName, Tensor other) {
        if (written.overlaps(other)) throw new IllegalArgumentException(name + " shares memory with " + otherName);
    }

    private static void rank4(String name, Tensor t) {
        if (t.rank() != 4) throw new IllegalArgumentException(name + " must have rank 4, got " + Arrays.toString(t.shape()));
    }

    int items() { return runs * kvHeads; }


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
        int words = plan.maskWordsPerRow(), i = r % qLen;
        int[] cols = plan.pages();
        byte[] kinds = plan.kinds();
        long[] mask = new long[qLen * words];
        for (int t = plan.tileStart(b); t < plan.tileEnd(b); t++) {
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial) plan.fillTileMask(t, mask);
            int page = cols[t], tokens = Math.min(pageSize, plan.length(b) - page * pageSize);
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

    /**
     * The base-2 score of row r (query head hk·G + r / qLen, query i = r % qLen at position
     * {@code length − qLen + i}) of sequence b and key {@code key} after the plan's modifier, step by
     * step with the fused kernels' float operations (ScalarAttentionKernel.modified): ALiBi's slope
     * fma'd with the distance j − p as a float, biases added from the plan's tables, soft-capping by
     * ScalarAttentionKernel.softCap, a function given the natural-unit score in float64. Both decode
     * kernels call it (the SIMD kernel through {@link #modifyScores}), so they stay twins.
     */
    float modified(int b, int hk, int r, int key, float score) {
        ScoreMod.Plan mp = plan.scoreModPlan(b);
        int h = hk * group + r / qLen, i = r % qLen, length = plan.length(b), position = length - qLen + i;
        for (int st = 0; st < mp.steps(); st++) {
            int kind = mp.kind(st);
            if (kind == ScoreMod.Plan.LINEAR) {
                score = Math.fma((float) (key - position), mp.slope(st, h), score);
            } else if (kind == ScoreMod.Plan.DISTANCE) {
                score = score + mp.row(st, h)[i - key + length - 1];
            } else if (kind == ScoreMod.Plan.KEY) {
                score = score + mp.row(st, h)[key];
            } else if (kind == ScoreMod.Plan.SOFT_CAP) {
                score = ScalarAttentionKernel.softCap(score, mp.cap(st), mp.inverseCap(st));
            } else {
                score = (float) (mp.function(st).apply(b, h, i, key, score * ScalarAttentionKernel.LN2_D) * ScalarAttentionKernel.LOG2E_D);
            }
        }
        return score;
    }

    /** {@link #modified} on the scores {@code p[pOff + j]} of the chunk keys {@code keys[j]} whose bit j is set in {@code bits}. */
    void modifyScores(int b, int hk, int r, int[] keys, long bits, float[] p, int pOff) {
        for (; bits != 0; bits &= bits - 1) {
            int j = Long.numberOfTrailingZeros(bits);
            p[pOff + j] = modified(b, hk, r, keys[j], p[pOff + j]);
        }
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
                if (mod == null && plan.rowHasAllowedKey(b, r % qLen)) {   // every allowed score reached −∞ (a modifier may mask with −∞)
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

    /**
     * The keys of one run (a split's tiles of one sequence), in tile order, in chunks of up to
     * {@link ScalarDecodeKernel#CHUNK} keys that run across page boundaries: with pages smaller than
     * a chunk (vLLM's 16 tokens) a chunk holds several pages, so the per-chunk work of both decode
     * kernels (softmax bookkeeping, the output's rescale) is paid per 64 keys, not per page. Only
     * the last chunk of a run is short. Both kernels walk the same chunks: the chunk is part of
     * their shared arithmetic (one online-softmax step per chunk).
     */
    static final class Chunks {
        /** Pool row (slot) of key j of the chunk, j < n. */
        final long[] slot = new long[ScalarDecodeKernel.CHUNK];
        /** Position in its sequence of key j of the chunk, j < n (what patterns and modifiers see). */
        final int[] key = new int[ScalarDecodeKernel.CHUNK];
        /** Per query i < qLen: bit j set iff query i may attend key j of the chunk. */
        long[] queryBits = new long[0];
        /** Keys in the chunk. */
        int n;
        /**
         * The chunk as spans of consecutive pool rows: span i is keys [spanStart[i], spanStart[i + 1])
         * at slots spanSlot[i] … (pages that follow each other in the pool make one span).
         */
        int spans;
        final int[] spanStart = new int[ScalarDecodeKernel.CHUNK + 1];
        final long[] spanSlot = new long[ScalarDecodeKernel.CHUNK];
        private long[] mask = new long[0];
        private DecodeCall c;
        private int b, t, end, pos, tokens, page;
        private long slot0;
        private boolean partial;
        private int markT, markPos;

        /** Starts walking run {@code run} of call {@code c}. */
        void start(DecodeCall c, int run) {
            this.c = c;
            b = c.runSeq[run];
            t = c.runFrom[run];
            end = c.runTo[run];
            pos = 0;
            int words = c.plan.maskWordsPerRow();
            if (mask.length < c.qLen * words) mask = new long[c.qLen * words];
            if (queryBits.length < c.qLen) queryBits = new long[c.qLen];
            if (t < end) enterTile();
        }

        /** Remembers the position: {@link #reset} walks the chunks from here again. */
        void mark() {
            markT = t;
            markPos = pos;
        }

        /** Back to the last {@link #mark}: the next {@link #next} gives the chunk it gave after the mark. */
        void reset() {
            t = markT;
            pos = markPos;
            if (t < end) enterTile();
        }

        private void enterTile() {
            DecodePlan plan = c.plan;
            page = plan.pages()[t];
            tokens = Math.min(c.pageSize, plan.length(b) - page * c.pageSize);
            partial = plan.kinds()[t] == TileKind.PARTIAL.code();
            if (partial) plan.fillTileMask(t, mask);
            slot0 = (long) c.tables[b][page] * c.pageSize;
        }

        /** The next chunk into {@link #n}, {@link #slot}, {@link #key} and {@link #queryBits}; false at the run's end. */
        boolean next() {
            int qLen = c.qLen, words = c.plan.maskWordsPerRow(), count = 0;
            spans = 0;
            Arrays.fill(queryBits, 0, qLen, 0L);
            while (count < ScalarDecodeKernel.CHUNK && t < end) {
                int take = Math.min(ScalarDecodeKernel.CHUNK - count, tokens - pos), key0 = page * c.pageSize + pos;
                for (int j = 0; j < take; j++) {
                    slot[count + j] = slot0 + pos + j;
                    key[count + j] = key0 + j;
                }
                if (spans == 0 || spanSlot[spans - 1] + (count - spanStart[spans - 1]) != slot0 + pos) {
                    spanSlot[spans] = slot0 + pos;
                    spanStart[spans++] = count;
                }
                for (int i = 0; i < qLen; i++) queryBits[i] |= (partial ? bits(mask, i * words, pos, take) : low(take)) << count;
                count += take;
                pos += take;
                if (pos == tokens) {
                    pos = 0;
                    if (++t < end) enterTile();
                }
            }
            n = count;
            spanStart[spans] = count;
            return count > 0;
        }

        /** Bits [pos, pos + take) (take ≤ 64) of the mask row starting at word {@code off}, as the low bits of a word. */
        private static long bits(long[] mask, int off, int pos, int take) {
            int w = off + (pos >>> 6), shift = pos & 63;
            long v = mask[w] >>> shift;
            if (shift != 0 && shift + take > 64) v |= mask[w + 1] << (64 - shift);
            return v & low(take);
        }

        private static long low(int count) { return count == 64 ? -1L : (1L << count) - 1; }
    }
}
