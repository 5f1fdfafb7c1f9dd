package io.tessera.cpu;

import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.GradientGeometry;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.ElementType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fused block-sparse attention kernel on the Vector API.
 *
 * <p>Queries sit in vector lanes: a <em>lane group</em> of {@link #GROUP} = 2 vectors of queries.
 * Working key-major (scores as Sᵀ[key][query]) means K and V elements are broadcast, so neither
 * needs transposing; only the block's queries are transposed, once. The online-softmax state
 * (running max, running sum, rescaling) is per lane, hence vectorized for free, and the output
 * accumulator Oᵀ[dv][query] is transposed back once per block. Each tile's K and V rows are copied
 * once to the heap and reused by every lane group of the query block. Ragged key tiles score
 * whole 6-key steps into scratch rows nothing reads; a ragged query block runs in padded lanes that
 * are never written out. PARTIAL tiles restrict each lane group to the keys some lane attends.
 *
 * <p>Register budget: QKᵀ holds 6×2 accumulators, 2 loaded vectors and 1 broadcast, 15
 * registers, because AVX2 has only 16 (a 4×4 blocking spills there). PV holds 4×2 accumulators
 * there (faster than 6×2 on AVX2) and 8×2 with AVX-512's 32 registers.
 */
final class SimdAttentionKernel {
    private SimdAttentionKernel() {}

    static final VectorSpecies<Float> F = VectorConfig.FLOATS;
    static final int L = F.length();
    /** Queries per lane group: 2 vectors. */
    static final int GROUP = 2 * L;
    /** Keys per QKᵀ micro-kernel step. */
    private static final int STEP = 6;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final float NEG_INF = Float.NEGATIVE_INFINITY;

    /** Per-thread buffers, grown on demand and reused across calls. */
    static final class Scratch {
        float[] qT = new float[0];      // [group][D][GROUP]   scaled queries, transposed, from qTBase
        float[] oT = new float[0];      // [group][Dv][GROUP]  output accumulators, transposed, from oTBase
        /** Where qT's and oT's blocks start: their first float on a cache line when it was known at the block's start. */
        int qTBase, oTBase;
        MemorySegment qTBytes = MemorySegment.ofArray(qT), oTBytes = MemorySegment.ofArray(oT);   // the arrays, for LineAlignedArrays
        float[] m = new float[0];       // [group][GROUP]      running max of the scaled logits, base 2
        float[] l = new float[0];       // [group][GROUP]      running softmax denominator
        float[] sT = new float[0];      // [blockKV+STEP][GROUP] scores, then probabilities; α in row n
        float[] sTNext = new float[0];  // the same for the second lane group of a pair (scoresPair)
        /**
         * Where a full tile's pair of lane groups (scoresPair, its modifiers, softmaxStep,
         * accumulatePair) keeps its rows in sT and sTNext: their first cache line. The single-group
         * path and the backward use sT from 0.
         */
        int sTBase, sTNextBase;
        MemorySegment sTBytes, sTNextBytes;   // the arrays, for LineAlignedArrays (set where they are allocated)
        final float[] mNew = new float[GROUP], shift = new float[GROUP], total = new float[GROUP];   // softmaxStep's vectors between its methods
        float[] kTile = new float[0];   // [blockKV+STEP][D]   keys of the current tile, then stale rows
        float[] vTile = new float[0];   // [blockKV+STEP][Dv]  values of the current tile, then stale rows
        float[] kSix = new float[0];    // kTile in STEP-key panels (packPanels): what scores() reads
        float[] vSix = new float[0];    // vTile in STEP-key panels: the backward's dO·Vᵀ
        // Forward pass: the keys and values of one (call, batch, kv head), widened once and reused by
        // every query block (and query head of the kv head) this thread computes; see headPanels.
        float[] kPanel = new float[0];  // [kvLen+STEP][D]
        float[] vPanel = new float[0];  // [kvLen+STEP][Dv]
        float[] kSixPanel = new float[0];   // [kvBlock] kPanel's key blocks in STEP-key panels, panelFloats(blockKV, D) each
        int[] panelFilled = new int[0]; // [kvBlock] == panelEpoch: that key block's rows are in the panels
        double[] panelKeyNorm = new double[0];   // [kvBlock] largest key norm of the block, when scoreBounds (see there)
        final double[] laneNorm = new double[GROUP];
        double[] groupQNorm = new double[0];     // [group] largest scaled query norm of the lane group, when scoreBounds
        boolean capPolynomialOnly;               // this group and tile: the first step soft-caps every score on the polynomial (see capsOnPolynomial)
        int panelEpoch;
        long panelCall = -1;
        int panelBatch, panelKvHead;
        float[] outRow = new float[0];  // [Dv] one output row before rounding to a half type
        short[] outBits = new short[0]; // [Dv] the same rounded
        long[] rowMask = new long[0];   // [blockQ][words]     tile mask as the layout writes it
        long[] laneMask = new long[0];  // [blockKV]           per key: bit i = lane i may attend
        int keyFrom, keyTo;             // the keys [keyFrom, keyTo) of the tile some lane may attend
        boolean intervals;              // every lane's keys are one interval [firstKey, lastKey]
        final int[] firstKey = new int[GROUP], lastKey = new int[GROUP];
        int allFrom, allTo;             // keys [allFrom, allTo) every lane may attend
        float[] qRows = new float[0];   // [group·GROUP][D]    the block's queries as rows, zero-padded
        final int[] columnOfD = new int[L], columnOfDv = new int[L];   // lane → lane·width: gathers one dimension of L rows
        int columnD = -1, columnDv = -1;
        // Backward pass only.
        float[] dOT = new float[0];     // [group][Dv][GROUP]  loss gradient rows, transposed
        float[] dORaw = new float[0];   // [group·GROUP][Dv]   loss gradient rows
        float[] dOrows = new float[0];  // [group·GROUP][DvPad] loss gradient rows, zero-padded to whole vectors
        float[] qPadded = new float[0]; // [group·GROUP][DPad] raw query rows, zero-padded to whole vectors
        float[] dsT = new float[0];     // [blockKV+STEP][GROUP] dP, then dS
        float[] lse2 = new float[0];    // [group·GROUP]       log-sum-exp in base 2; +∞ for empty and padded rows
        float[] delta = new float[0];   // [group·GROUP]       rowsum(dO ∘ O)
        float[] dqT = new float[0];     // [group][D][GROUP]   one tile's dq contribution, transposed
        float[] dqRun = new float[0];   // [group][D][GROUP]   dq of the block so far, transposed
        float[] dkAcc = new float[0];   // [blockKV][DPad]     dk rows of the key block
        float[] dvAcc = new float[0];   // [blockKV][DvPad]    dv rows of the key block
        // The packed query block a backward tile reads: the buffers above, or a block of the head cache.
        float[] curQT, curQPad, curDOT, curDORows, curLse2, curDelta;
        int curQTOff, curQPadOff, curDOTOff, curDORowsOff, curStatOff;
        int curHeadDqOff;   // a cached block's running dq in headDqT
        boolean curQFinite, curDOFinite;
        // Single pass: every query block of a key/value head's query heads, packed once.
        float[] headQT = new float[0], headQPad = new float[0], headDOT = new float[0], headDORows = new float[0];
        float[] headLse2 = new float[0], headDelta = new float[0];
        boolean[] headQFinite = new boolean[0], headDOFinite = new boolean[0];
        float[] headDqT = new float[0];   // [slot][group][D][GROUP] the running dq of every cached block, transposed
        // Where the head cache's blocks start in headQT, headQPad, headDOT, headDORows and headDqT:
        // past the floats that put them on a cache line (these arrays are too large to be placed).
        int headQTBase, headQPadBase, headDOTBase, headDORowsBase, headDqTBase;
        MemorySegment headQTBytes, headQPadBytes, headDOTBytes, headDORowsBytes, headDqTBytes;   // the arrays, for LineAlignedArrays
        // Full tiles: every lane group's probabilities and score gradients of the tile, kept until
        // dv and dk take them all in one pass over the block's rows (see fullTileGradients).
        float[][] pGroups = new float[0][], dsGroups = new float[0][];
        // Score modifiers (see modifyScores): the call's plan, null when it has none, and where the tile sits.
        ScoreMod.Plan mods;
        int modBatch, modHead, modRow0, modRows, modKey0, modQLen, modKvLen, modStride;
        float[] modDerivatives = new float[0];   // [slot][blockKV+STEP][GROUP] d(step output)/d(step input)
        float[] modPartials;                     // a key-major item's table-gradient partial sums, or null
        int[] modPartialOff = new int[0];        // [step] where its table's partial sums start

        void ensure(int d, int dv, int blockQ, int blockKV, int words) {
            int groups = (blockQ + GROUP - 1) / GROUP;
            // qT and oT are read and written in full vectors: used from their first cache line on
            // (qTBase, oTBase; see LineAlignedArrays), so each has a line of floats to spare.
            int slack = LineAlignedArrays.SLACK_FLOATS;
            if (qT.length < groups * d * GROUP + slack) qTBytes = MemorySegment.ofArray(qT = new float[groups * d * GROUP + slack]);
            if (oT.length < groups * dv * GROUP + slack) oTBytes = MemorySegment.ofArray(oT = new float[groups * dv * GROUP + slack]);
            qTBase = LineAlignedArrays.floatsToLine(qTBytes);
            oTBase = LineAlignedArrays.floatsToLine(oTBytes);
            if (m.length < groups * GROUP) { m = new float[groups * GROUP]; l = new float[groups * GROUP]; }
            if (qRows.length < groups * GROUP * d) qRows = new float[groups * GROUP * d];
            if (columnD != d) {
                for (int lane = 0; lane < L; lane++) columnOfD[lane] = lane * d;
                columnD = d;
            }
            if (columnDv != dv) {
                for (int lane = 0; lane < L; lane++) columnOfDv[lane] = lane * dv;
                columnDv = dv;
            }
            // STEP rows past the tile: scores() runs whole steps (see there), and the α row.
            if (sT.length < (blockKV + STEP) * GROUP + slack) {
                sTBytes = MemorySegment.ofArray(sT = new float[(blockKV + STEP) * GROUP + slack]);
                sTNextBytes = MemorySegment.ofArray(sTNext = new float[sT.length]);
            }
            sTBase = LineAlignedArrays.floatsToLine(sTBytes);
            sTNextBase = LineAlignedArrays.floatsToLine(sTNextBytes);
            if (kTile.length < (blockKV + STEP) * d) kTile = new float[(blockKV + STEP) * d];
            if (vTile.length < (blockKV + STEP) * dv) vTile = new float[(blockKV + STEP) * dv];
            if (kSix.length < panelFloats(blockKV, d)) kSix = new float[panelFloats(blockKV, d)];
            if (vSix.length < panelFloats(blockKV, dv)) vSix = new float[panelFloats(blockKV, dv)];
            if (rowMask.length < blockQ * words) rowMask = new long[blockQ * words];
            if (laneMask.length < blockKV) laneMask = new long[blockKV];
        }

        /** What the buffers hold now (see {@link ThreadScratch}). */
        long bytes() {
            return ThreadScratch.bytesOf(qT, oT, m, l, sT, sTNext, kTile, vTile, kSix, vSix, kPanel, vPanel, kSixPanel, qRows, dOT, dORaw, dOrows, qPadded, dsT, lse2, delta,
                    dqT, dqRun, dkAcc, dvAcc, headQT, headQPad, headDOT, headDORows, headLse2, headDelta, headDqT, modDerivatives)
                    + 8L * pGroups.length * (pGroups.length == 0 ? 0 : pGroups[0].length)   // pGroups and dsGroups, equal rows
                    + 8L * (rowMask.length + laneMask.length + panelKeyNorm.length + groupQNorm.length) + headQFinite.length + headDOFinite.length + 4L * panelFilled.length
                    + 4L * outRow.length + 2L * outBits.length;
        }

        void ensureBackward(int d, int dv, int blockQ, int blockKV) {
            int lanes = (blockQ + GROUP - 1) / GROUP * GROUP, dPad = padded(d), dvPad = padded(dv);
            if (dOT.length < lanes * dv) { dOT = new float[lanes * dv]; dORaw = new float[lanes * dv]; }
            if (dOrows.length < lanes * dvPad) dOrows = new float[lanes * dvPad];
            if (qPadded.length < lanes * dPad) qPadded = new float[lanes * dPad];
            if (dsT.length < (blockKV + STEP) * GROUP) dsT = new float[(blockKV + STEP) * GROUP];
            if (lse2.length < lanes) { lse2 = new float[lanes]; delta = new float[lanes]; }
            if (dqT.length < lanes * d) { dqT = new float[lanes * d]; dqRun = new float[lanes * d]; }
            if (dkAcc.length < blockKV * dPad) dkAcc = new float[blockKV * dPad];
            if (dvAcc.length < blockKV * dvPad) dvAcc = new float[blockKV * dvPad];
            int groups = lanes / GROUP, tile = (blockKV + STEP) * GROUP;
            if (pGroups.length < groups || pGroups[0].length < tile) {
                pGroups = new float[groups][tile];
                dsGroups = new float[groups][tile];
            }
        }
    }

    /** {@code width} rounded up to whole vectors. */
    static int padded(int width) { return (width + L - 1) / L * L; }

    private static final ThreadScratch<Scratch> SCRATCH = ThreadScratch.of(Scratch::new, Scratch::bytes);

    /** Computes the output rows (and LSE) of one query block of one (batch, head). */
    static void queryBlock(AttentionCall c, int b, int h, int qBlock) {
        AttentionGeometry g = c.g;
        BlockLayout lay = c.layouts.forHead(h);
        int d = g.shape().headDim(), dv = g.shape().valueDim(), kvLen = g.shape().kvLen();
        int blockKV = lay.blockKV();
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, lay.rowsPerBlock(), lay.keysPerBlock(), lay.maskWordsPerRow());
        int q0 = qBlock * lay.blockQ();
        int rows = Math.min(lay.blockQ(), g.shape().qLen() - q0);
        int groups = (rows + GROUP - 1) / GROUP;
        int hk = g.shape().kvHeadOf(h);
        bindMods(s, c, b, h, q0, rows);

        packQueries(c.q, c.qType, g.qBase(b, h) + (long) q0 * g.qRow(), g.qRow(), d, rows, g.scale(), s);
        Arrays.fill(s.oT, s.oTBase, s.oTBase + groups * dv * GROUP, 0f);
        Arrays.fill(s.m, 0, groups * GROUP, NEG_INF);
        Arrays.fill(s.l, 0, groups * GROUP, 0f);

        int[] offsets = lay.rowOffsets(), cols = lay.colIndices();
        byte[] kinds = lay.kinds();
        long kHead = g.kBase(b, hk), vHead = g.vBase(b, hk);
        boolean panels = headPanels(c, s, b, hk, d, dv, kvLen, lay.kvBlocks(), blockKV);
        float[] keys = panels ? s.kSixPanel : s.kSix, values = panels ? s.vPanel : s.vTile;
        boolean saturated = scoreBounds(c.mods);
        if (saturated) queryNorms(s, groups, d);
        s.capPolynomialOnly = false;
        for (int t = offsets[qBlock]; t < offsets[qBlock + 1]; t++) {
            int kv0 = cols[t] * blockKV;
            int n = Math.min(blockKV, kvLen - kv0);
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial) lay.fillTileMask(t, s.rowMask);
            s.modKey0 = kv0;
            int kOff = 0, vOff = 0;
            if (panels) {
                kOff = cols[t] * panelFloats(blockKV, d);
                vOff = kv0 * dv;
                if (s.panelFilled[cols[t]] != s.panelEpoch) {
                    copyRows(c.k, c.kType, kHead + (long) kv0 * g.kRow(), g.kRow(), n, d, s.kPanel, kv0 * d);
                    packPanels(s.kPanel, kv0 * d, n, d, s.kSixPanel, kOff);
                    copyRows(c.v, c.vType, vHead + (long) kv0 * g.vRow(), g.vRow(), n, dv, s.vPanel, vOff);
                    if (saturated) s.panelKeyNorm[cols[t]] = maxRowNorm(s.kPanel, kv0 * d, n, d);   // same call, same plan: every filler computes it
                    s.panelFilled[cols[t]] = s.panelEpoch;
                }
            } else {
                copyRows(c.k, c.kType, kHead + (long) kv0 * g.kRow(), g.kRow(), n, d, s.kTile);
                packPanels(s.kTile, 0, n, d, s.kSix, 0);
                copyRows(c.v, c.vType, vHead + (long) kv0 * g.vRow(), g.vRow(), n, dv, s.vTile);
            }
            double keyNorm = !saturated ? 0 : panels ? s.panelKeyNorm[cols[t]] : maxRowNorm(s.kTile, 0, n, d);
            boolean valuesFinite = valuesFinite(c, b, hk, cols[t], values, vOff, n * dv);
            for (int grp = 0; grp < groups; grp++) {
                boolean pair = PAIRS && !partial && valuesFinite && grp + 1 < groups;
                // Soft-capped groups take the pair too when both are bounded onto the polynomial.
                boolean cappedPair = pair && saturated && capsOnPolynomial(s, grp, keyNorm, d) && capsOnPolynomial(s, grp + 1, keyNorm, d);
                if (pair && (!saturated || cappedPair)) {
                    int sb = s.sTBase, sb2 = s.sTNextBase;   // the pair's rows from their first cache lines
                    scoresPair(keys, kOff, n, d, s.qT, s.qTBase + grp * d * GROUP, s.sT, sb, s.sTNext, sb2);
                    if (cappedPair) {
                        float inverseCap = s.mods.inverseCap(0);
                        capOnPolynomial(s.sT, sb, n, inverseCap);
                        capOnPolynomial(s.sTNext, sb2, n, inverseCap);
                    }
                    s.capPolynomialOnly = cappedPair;   // modifyScores skips the cap just applied
                    pairStep(s, grp, n, dv, sb, sb2);
                    accumulatePair(values, vOff, n, dv, s.sT, sb, s.sTNext, sb2, s.oT, s.oTBase + grp * dv * GROUP);
                    grp++;
                    continue;
                }
                int from = 0, count = n;
                if (partial) {
                    int lanes = Math.min(GROUP, rows - grp * GROUP);
                    if (!laneMasks(lay, s, grp * GROUP, lanes, n)) continue;   // nothing allowed for these lanes
                    // Keys no lane of the group may attend (a band's edge, say) are not computed at all.
                    from = s.keyFrom;
                    count = s.keyTo - from;
                }
                if (!saturated || !fillSaturated(s, grp, from, count, keyNorm, d)) {
                    if (saturated) s.capPolynomialOnly = capsOnPolynomial(s, grp, keyNorm, d);
                    scores(keys, kOff, from, count, d, s.qT, s.qTBase + grp * d * GROUP, s.sT, s.capPolynomialOnly ? s.mods.inverseCap(0) : 0f);
                    if (s.mods != null) modifyScores(s, grp, from, count, partial, false, 0);
                }
                if (partial) maskScores(s, s.sT, NEG_INF, from, count);
                softmaxStep(s, grp, count, dv, 0);
                accumulateAny(valuesFinite, values, vOff + from * dv, count, dv, s.sT, s.oT, s.oTBase + grp * dv * GROUP);
            }
        }
        writeRows(c, b, h, q0, lay, g.oBase(b, h) + (long) q0 * g.oRow(), g.oRow(),
                c.lse == null ? -1 : g.lBase(b, h) + (long) q0 * g.lRow(), g.lRow(), dv, rows, s);
    }

    /**
     * Full tiles two lane groups at a time (scoresPair, accumulatePair) where the register file holds
     * their 24 accumulators (AVX-512's 32 vectors; AVX2's 16 would spill). Same bits as group by
     * group. Measured on an Intel Xeon (AVX-512, one thread): QKᵀ of a 64-key tile in L1 128 → 145
     * GFLOP/s, P·V unchanged standalone (147); ForwardProbe dense n = 4096 312 → 295 ms on one thread,
     * 152 → 145 ms on two, n = 1024 20.6 → 19.5 ms, causal 161 → 153 ms (same JVM, old engine beside
     * the new); TrainingStepProbe n = 4096, two threads, backward 408–415 → 386–397 ms.
     */
    private static final boolean PAIRS = VectorConfig.WIDE_REGISTER_FILE;

    /**
     * The score modifiers and the softmax step of groups grp (scores in sT) and grp + 1 (in sTNext),
     * each as the single-group path runs them on sT: the second with the two buffers swapped, and
     * swapped back, so both leave their probabilities where accumulatePair reads them.
     */
    private static void pairStep(Scratch s, int grp, int n, int dv, int sb, int sb2) {
        if (s.mods != null) modifyScores(s, grp, 0, n, false, false, sb);
        softmaxStep(s, grp, n, dv, sb);
        float[] first = s.sT;
        s.sT = s.sTNext;
        if (s.mods != null) modifyScores(s, grp + 1, 0, n, false, false, sb2);
        softmaxStep(s, grp + 1, n, dv, sb2);
        s.sTNext = s.sT;
        s.sT = first;
    }

    /** Per-thread memory the forward pass may spend on one (batch, kv head)'s widened keys and values. */
    private static final long HEAD_PANEL_BYTES = 16L << 20;

    /**
     * Points the scratch's key/value panels at (call c, batch b, kv head hk), keeping the key blocks
     * already in them when the thread's previous query block had the same (call, b, hk); false
     * when the panels would take more than {@link #HEAD_PANEL_BYTES} (the tiles are then copied one
     * by one as they come). Each key block is copied (half types: widened) once per thread and
     * head instead of once per query block that visits it: at n = 4096 with 64-row query blocks
     * the per-tile copy moved 64 times the head's keys and values, 5 % of the F32 forward and
     * 10 % of the BF16 one. The panels hold the same floats as the tile copies, and a call's
     * inputs do not change while it runs, so results do not depend on which thread filled what.
     * Rows past the head's last key (STEP of them) only feed score rows nothing reads, as with the
     * tile buffers.
     */
    private static boolean headPanels(AttentionCall c, Scratch s, int b, int hk, int d, int dv, int kvLen, int kvBlocks, int blockKV) {
        long rows = (long) kvLen + STEP, six = (long) kvBlocks * panelFloats(blockKV, d);
        if ((rows * (d + dv) + six) * Float.BYTES > HEAD_PANEL_BYTES) return false;
        if (s.kPanel.length < rows * d) s.kPanel = new float[(int) (rows * d)];
        if (s.kSixPanel.length < six) s.kSixPanel = new float[(int) six];
        if (s.vPanel.length < rows * dv) s.vPanel = new float[(int) (rows * dv)];
        if (s.panelFilled.length < kvBlocks) {
            s.panelFilled = new int[kvBlocks];
            s.panelKeyNorm = new double[kvBlocks];
            s.panelCall = -1;
        }
        if (s.panelCall != c.id || s.panelBatch != b || s.panelKvHead != hk) {
            s.panelCall = c.id;
            s.panelBatch = b;
            s.panelKvHead = hk;
            if (++s.panelEpoch == 0) {   // wrapped: no stale stamp may equal the new epoch
                Arrays.fill(s.panelFilled, 0);
                s.panelEpoch = 1;
            }
        }
        return true;
    }

    /**
     * Whether the forward bounds the scores of each lane group and tile by the norms of its
     * queries and keys: the modifier is exactly ALiBi then soft-capping (see fillSaturated), or
     * starts with soft-capping (see capsOnPolynomial).
     */
    private static boolean scoreBounds(ScoreMod.Plan plan) {
        if (plan == null) return false;
        return plan.kind(0) == ScoreMod.Plan.SOFT_CAP
                || plan.steps() == 2 && plan.kind(0) == ScoreMod.Plan.LINEAR && plan.kind(1) == ScoreMod.Plan.SOFT_CAP;
    }

    /** Below this |y| = |x|/cap every lane is on softCap's polynomial, with the margin of SATURATED_Y for x·(1/cap) and y². */
    private static final double POLYNOMIAL_Y = Math.sqrt(ScalarAttentionKernel.TANH_SMALL_SQUARED) * (1 - 0x1p-13);

    /**
     * Whether the modifier's first step is soft-capping and every raw score of lane group grp in
     * the tile certainly lies in its polynomial's range (|s| ≤ the bound of fillSaturated, below
     * 0.625·cap): then scores() caps the tile on its way out without testing each key's range, the same
     * floats as softCap's all-polynomial branch, which every key would have taken.
     */
    private static boolean capsOnPolynomial(Scratch s, int grp, double keyNorm, int d) {
        ScoreMod.Plan plan = s.mods;
        if (plan.kind(0) != ScoreMod.Plan.SOFT_CAP) return false;
        double bound = s.groupQNorm[grp] * keyNorm * (1 + (d + 4) * 0x1p-23) + 0x1p-60;
        return bound * plan.inverseCap(0) < POLYNOMIAL_Y;   // NaN or ∞ norms: false
    }

    /** groupQNorm[grp] = the largest Euclidean norm (in double) of a lane's scaled query in qT; NaN or ∞ if an element is. */
    private static void queryNorms(Scratch s, int groups, int d) {
        if (s.groupQNorm.length < groups) s.groupQNorm = new double[groups];
        for (int grp = 0; grp < groups; grp++) {
            Arrays.fill(s.laneNorm, 0);
            for (int i = 0, o = s.qTBase + grp * d * GROUP; i < d; i++) {
                for (int lane = 0; lane < GROUP; lane++, o++) s.laneNorm[lane] += (double) s.qT[o] * s.qT[o];
            }
            double max = 0;
            for (int lane = 0; lane < GROUP; lane++) max = Math.max(max, s.laneNorm[lane]);   // Math.max keeps a NaN
            s.groupQNorm[grp] = Math.sqrt(max);
        }
    }

    /** The largest Euclidean norm (in double) of rows [0, n) of width d from a[off]; NaN or ∞ if an element is. */
    private static double maxRowNorm(float[] a, int off, int n, int d) {
        double max = 0;
        for (int j = 0; j < n; j++) {
            double sum = 0;
            for (int i = 0, o = off + j * d; i < d; i++, o++) sum += (double) a[o] * a[o];
            max = Math.max(max, sum);
        }
        return Math.sqrt(max);
    }

    /** |y| = |x|/cap from which soft-capping returns ±cap, with a margin for the roundings of x, x·(1/cap) and y² (each below 2^−23). */
    private static final double SATURATED_Y = Math.sqrt(ScalarAttentionKernel.TANH_SATURATED_SQUARED) * (1 + 0x1p-13);

    /**
     * ALiBi then soft-capping, a tile whose every score of lane group grp is certainly capped:
     * fills the group's scores (keys [from, from+count)) with the ±cap alibiThenCap would give and
     * returns true, so QKᵀ and the modifier pass are skipped; false (nothing written) when that is
     * not certain. With ALiBi's standard slopes at n = 4096 about one tile in seven is such a tile
     * (distances beyond 790 keys on the steepest head), and each costs a QKᵀ for nothing.
     *
     * <p>Why the floats are the same: the kernel's score s is an fma chain over d products of the
     * scaled query and the key, so |s| ≤ (1 + d·2^−24 + …)·|q|·|k| (the classic bound on a
     * floating-point dot product), below {@code bound}. The fused step computes x = fma(dist,
     * slope, s) with dist exact (distancesExact) and the product exact inside the fma, so |x| ≥
     * (|dist·slope| − bound)(1 − 2^−24) and x has the sign of dist·slope. If that lower bound times
     * 1/cap clears |y| = 7.9053 by a 2^−13 margin, which covers the roundings of x, of x·(1/cap) and
     * of y², then z ≥ TANH_SATURATED_SQUARED in every lane and alibiThenCap's all-saturated branch
     * writes exactly cap or −cap by the sign of x. A NaN or infinite element anywhere makes a norm
     * NaN or ∞ and the test false, so such tiles take the ordinary path (and give their NaN).
     */
    private static boolean fillSaturated(Scratch s, int grp, int from, int count, double keyNorm, int d) {
        ScoreMod.Plan plan = s.mods;
        if (plan.kind(0) != ScoreMod.Plan.LINEAR) return false;   // scoreBounds: then the plan is ALiBi, soft-cap
        int row0 = s.modRow0 + grp * GROUP, key0 = s.modKey0 + from;
        int c0 = key0 - row0 - plan.queryOffset();
        if (count <= 0 || !distancesExact(c0, count)) return false;
        long lo = (long) c0 - (GROUP - 1), hi = (long) c0 + count - 1;   // dist = c0 + j − lane over the group's lanes and keys
        long nearest = lo > 0 ? lo : hi < 0 ? -hi : 0;
        if (nearest == 0) return false;
        float slope = plan.slope(0, s.modHead);
        double bound = s.groupQNorm[grp] * keyNorm * (1 + (d + 4) * 0x1p-23) + 0x1p-60;
        if (!((nearest * Math.abs((double) slope) - bound) * plan.inverseCap(1) >= SATURATED_Y)) return false;
        float cap = plan.cap(1);
        Arrays.fill(s.sT, 0, count * GROUP, (lo > 0) == (slope > 0) ? cap : -cap);
        return true;
    }

    /**
     * qT[group][i][lane] = scale · log2(e) · q[group·GROUP + lane][i]; padded lanes are zero. The
     * log2(e) factor puts every logit in base 2, so the online softmax needs only 2^x.
     */
    private static void packQueries(MemorySegment q, ElementType type, long base, long rowStride, int d, int rows, float softmaxScale, Scratch s) {
        packTransposed(q, type, base, rowStride, d, rows, softmaxScale * LOG2E, s.qRows, s.qT, s.qTBase, s.columnOfD);
    }

    /**
     * dst[group][i][lane] = multiplier · src[group·GROUP + lane][i], padded lanes zero; {@code rowsCopy}
     * receives the rows themselves, zero-padded to whole lane groups. The rows are copied to the heap
     * in bulk, then transposed by gathering one dimension of L rows per vector: element by element
     * the transposition cost as much as the scores of a whole sliding-window block.
     */
    static void packTransposed(MemorySegment src, ElementType type, long base, long rowStride, int width, int rows, float multiplier,
                                       float[] rowsCopy, float[] dst, int dstOff, int[] column) {
        int padded = (rows + GROUP - 1) / GROUP * GROUP;
        copyRows(src, type, base, rowStride, rows, width, rowsCopy);
        Arrays.fill(rowsCopy, rows * width, padded * width, 0f);
        FloatVector scale = FloatVector.broadcast(F, multiplier);
        for (int r0 = 0; r0 < padded; r0 += L) {
            int to = dstOff + (r0 / GROUP) * width * GROUP + r0 % GROUP;
            for (int i = 0; i < width; i++) {
                FloatVector.fromArray(F, rowsCopy, r0 * width + i, column, 0).mul(scale).intoArray(dst, to + i * GROUP);
            }
        }
    }

    /**
     * Heap copy of a tile's rows: one bulk copy, after which the micro-kernels' broadcasts come from
     * an array (a segment read costs a bounds and a liveness check each). Half-precision rows are
     * widened to float32 on the way ({@link HalfRows}), so everything after this sees floats.
     */
    private static void copyRows(MemorySegment src, ElementType type, long base, long rowStride, int n, int width, float[] dst) {
        copyRows(src, type, base, rowStride, n, width, dst, 0);
    }

    /** {@link #copyRows} into dst from dstOff (a tile at 0, or a panel); half-precision rows widened straight into it. */
    private static void copyRows(MemorySegment src, ElementType type, long base, long rowStride, int n, int width, float[] dst, int dstOff) {
        if (type != ElementType.F32) {
            HalfRows.widenRows(src, type, base, rowStride, n, width, dst, dstOff);
        } else if (rowStride == width) {
            MemorySegment.copy(src, FLOAT, base * Float.BYTES, dst, dstOff, n * width);
        } else {
            for (int j = 0; j < n; j++) MemorySegment.copy(src, FLOAT, (base + j * rowStride) * Float.BYTES, dst, dstOff + j * width, width);
        }
    }

    /**
     * Describes which keys of the tile the lanes [first, first+lanes) may attend, for maskScores,
     * and finds the range [keyFrom, keyTo) any of them may attend; false when none may attend any.
     * When every lane's keys form one interval (causal diagonals, windows, documents, blocks: most
     * PARTIAL tiles) the intervals are all it keeps; otherwise it transposes the tile mask into one
     * word per key over lanes, bit by bit.
     */
    private static boolean laneMasks(BlockLayout lay, Scratch s, int first, int lanes, int n) {
        int words = lay.maskWordsPerRow();
        if (words == 1 && keyIntervals(s, first, lanes)) {
            s.intervals = true;
            return s.keyTo > s.keyFrom;
        }
        s.intervals = false;
        long[] lane = s.laneMask;
        Arrays.fill(lane, 0, n, 0L);
        long any = 0;
        for (int i = 0; i < lanes; i++) {
            int rowStart = (first + i) * words;
            for (int w = 0; w < words; w++) {
                long bits = s.rowMask[rowStart + w];
                any |= bits;
                while (bits != 0) {
                    lane[(w << 6) + Long.numberOfTrailingZeros(bits)] |= 1L << i;
                    bits &= bits - 1;
                }
            }
        }
        if (any == 0) return false;
        int from = 0, to = n;
        while (lane[from] == 0) from++;
        while (lane[to - 1] == 0) to--;
        s.keyFrom = from;
        s.keyTo = to;
        return true;
    }

    /** Fills firstKey/lastKey and the key ranges when each lane's allowed keys are contiguous; false otherwise. */
    private static boolean keyIntervals(Scratch s, int first, int lanes) {
        int from = 64, to = 0, allFrom = 0, allTo = 64;
        for (int i = 0; i < GROUP; i++) {
            long bits = i < lanes ? s.rowMask[first + i] : 0L;
            int lo = 64, hi = -1;   // an empty lane: no key satisfies lo ≤ key ≤ hi
            if (bits != 0) {
                lo = Long.numberOfTrailingZeros(bits);
                hi = 63 - Long.numberOfLeadingZeros(bits);
                if (Long.bitCount(bits) != hi - lo + 1) return false;
                from = Math.min(from, lo);
                to = Math.max(to, hi + 1);
            }
            s.firstKey[i] = lo;
            s.lastKey[i] = hi;
            allFrom = Math.max(allFrom, lo);
            allTo = Math.min(allTo, hi + 1);
        }
        s.keyFrom = from;
        s.keyTo = to;
        s.allFrom = allFrom;
        s.allTo = allTo;
        return true;
    }

    /** Floats of one key block in STEP-key panels ({@link #packPanels}): its keys rounded up to whole panels. */
    static int panelFloats(int blockKV, int width) { return (blockKV + STEP - 1) / STEP * STEP * width; }

    /**
     * The n rows {@code src[srcOff + j·width + i]} into STEP-key panels, the layout {@link #scores}
     * reads: key j's element i at {@code dst[dstOff + (j / STEP)·STEP·width + i·STEP + j % STEP]},
     * the last panel padded with zeros. A step then reads its 6 keys at constant distances from one
     * index. From rows the step's loop kept 6 row indices live besides its own (hsdis on Zen 5
     * showed array bases spilled to vector registers there); on an Intel Xeon (AVX-512, one thread,
     * 60 keys × D = 64 × 32 queries in L1) that loop ran at 132 GFLOP/s, from panels at 146–150 (its
     * broadcasts are memory operands, its loop has no bounds checks), and in the forward pass it had
     * taken 46 % of the time against accumulate8's 28 % for as many FMAs (JFR). On Zen 5 a
     * one-index layout measured within the noise of the row layout.
     */
    static void packPanels(float[] src, int srcOff, int n, int width, float[] dst, int dstOff) {
        int panels = (n + STEP - 1) / STEP;
        for (int p = 0; p < panels; p++) {
            int at = dstOff + p * STEP * width;
            for (int t = 0; t < STEP; t++) {
                int j = p * STEP + t, row = srcOff + j * width;
                if (j < n) {
                    for (int i = 0; i < width; i++) dst[at + i * STEP + t] = src[row + i];
                } else {
                    for (int i = 0; i < width; i++) dst[at + i * STEP + t] = 0f;
                }
            }
        }
    }

    /**
     * sT[j − from][lane] = Σ_i key(j)[i] · qT[qOff + i·GROUP + lane] for the keys from ≤ j &lt; from +
     * count of a key block whose keys lie in STEP-key panels at {@code kp[tileOff…]}
     * ({@link #packPanels}): 6 keys × 2 vectors per step while 5 or more keys remain, then one 4-key
     * step for the last 1 to 4. Steps start at whole panels: a range that starts inside one scores
     * that panel's keys before {@code from} too and stores none of them. Always whole steps: the last
     * one may score up to 3 keys past the range (padding or the block's next keys) into sT rows
     * nothing reads. That is cheaper than a single-key tail, whose 2 accumulators leave the FMA units
     * waiting on latency (the 4 leftover keys of a 64-key tile took 9% of the score time). Each
     * score is the fma chain over i in order, whatever the layout: the scalar twin's.
     *
     * <p>With {@code inverseCap} ≠ 0 the scores are soft-capped on the way out, on the polynomial
     * alone (the tile's scores are known to lie in its range: capsOnPolynomial), x + x·z·P(z) with
     * y = x·inverseCap and z = y², the operations and floats of softCap's all-polynomial branch, in
     * registers: as a pass of its own over sT (a load and a store per vector besides its 8
     * operations) soft-capping cost 1.108× ± 0.008 the plain call, in registers 1.039–1.063× (Zen 5,
     * dense n = 4096, 2 threads, KernelOptionsSection --full).
     */
    static void scores(float[] kp, int tileOff, int from, int count, int d, float[] qT, int qOff, float[] sT, float inverseCap) {
        boolean capped = inverseCap != 0f;
        FloatVector inv = FloatVector.broadcast(F, inverseCap);
        int end = from + count, j = from - from % STEP;
        for (; j + 4 < end; j += STEP) {
            FloatVector a0 = FloatVector.zero(F), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0;
            FloatVector a3 = a0, b3 = a0, a4 = a0, b4 = a0, a5 = a0, b5 = a0;
            for (int i = 0, qi = qOff, p = tileOff + j * d; i < d; i++, qi += GROUP, p += STEP) {
                FloatVector x = FloatVector.fromArray(F, qT, qi);
                FloatVector y = FloatVector.fromArray(F, qT, qi + L);
                FloatVector kv = FloatVector.broadcast(F, kp[p]);
                a0 = x.fma(kv, a0); b0 = y.fma(kv, b0);
                kv = FloatVector.broadcast(F, kp[p + 1]);
                a1 = x.fma(kv, a1); b1 = y.fma(kv, b1);
                kv = FloatVector.broadcast(F, kp[p + 2]);
                a2 = x.fma(kv, a2); b2 = y.fma(kv, b2);
                kv = FloatVector.broadcast(F, kp[p + 3]);
                a3 = x.fma(kv, a3); b3 = y.fma(kv, b3);
                kv = FloatVector.broadcast(F, kp[p + 4]);
                a4 = x.fma(kv, a4); b4 = y.fma(kv, b4);
                kv = FloatVector.broadcast(F, kp[p + 5]);
                a5 = x.fma(kv, a5); b5 = y.fma(kv, b5);
            }
            if (capped) {
                FloatVector z;
                z = a0.mul(inv); z = z.mul(z); a0 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(a0, a0);
                z = b0.mul(inv); z = z.mul(z); b0 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(b0, b0);
                z = a1.mul(inv); z = z.mul(z); a1 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(a1, a1);
                z = b1.mul(inv); z = z.mul(z); b1 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(b1, b1);
                z = a2.mul(inv); z = z.mul(z); a2 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(a2, a2);
                z = b2.mul(inv); z = z.mul(z); b2 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(b2, b2);
                z = a3.mul(inv); z = z.mul(z); a3 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(a3, a3);
                z = b3.mul(inv); z = z.mul(z); b3 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(b3, b3);
                z = a4.mul(inv); z = z.mul(z); a4 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(a4, a4);
                z = b4.mul(inv); z = z.mul(z); b4 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(b4, b4);
                z = a5.mul(inv); z = z.mul(z); a5 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(a5, a5);
                z = b5.mul(inv); z = z.mul(z); b5 = z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(b5, b5);
            }
            // Rows before the range (its first panel's keys before from) are not stored.
            int o = (j - from) * GROUP;
            if (o >= 0) { a0.intoArray(sT, o); b0.intoArray(sT, o + L); }
            o += GROUP;
            if (o >= 0) { a1.intoArray(sT, o); b1.intoArray(sT, o + L); }
            o += GROUP;
            if (o >= 0) { a2.intoArray(sT, o); b2.intoArray(sT, o + L); }
            o += GROUP;
            if (o >= 0) { a3.intoArray(sT, o); b3.intoArray(sT, o + L); }
            o += GROUP;
            if (o >= 0) { a4.intoArray(sT, o); b4.intoArray(sT, o + L); }
            o += GROUP;
            a5.intoArray(sT, o); b5.intoArray(sT, o + L);   // key j + 5 ≥ from always
        }
        if (j < end) scores4(kp, tileOff + j * d, d, qT, qOff, sT, (j - from) * GROUP, inverseCap);
    }

    /**
     * sT[j][·] = cap·tanh(sT[j][·]/cap) for the keys j &lt; count of a tile bounded onto the polynomial
     * (capsOnPolynomial): {@link #scores}'s in-register operations, in the same order, so the same
     * floats, for the two groups {@link #scoresPair} computed. A pass over the 2·count vectors of
     * scores in L1 (a load and a store besides the 8 operations), which lets soft-capped tiles keep
     * the pairs: the cap in scoresPair's registers made that method too big for C2 to compile well.
     */
    static void capOnPolynomial(float[] sT, int sb, int count, float inverseCap) {
        FloatVector inv = FloatVector.broadcast(F, inverseCap);
        for (int o = sb; o < sb + count * GROUP; o += L) {
            FloatVector a = FloatVector.fromArray(F, sT, o);
            FloatVector z = a.mul(inv);
            z = z.mul(z);
            z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(a, a).intoArray(sT, o);
        }
    }

    /**
     * {@link #scores} of keys [0, count) for two consecutive lane groups at once (the second's queries
     * d·GROUP after the first's, its scores into {@code sT2}): 6 keys × 4 vectors, 24 accumulators, so
     * each broadcast key element feeds 4 FMAs and each query vector 6, where one group's 6 × 2 block
     * loads 8 vectors per 12 FMAs. Each score is the same fma chain over i in order as in scores().
     * Uncapped only; for register files of 32 vectors (24 accumulators, 4 query vectors, a broadcast).
     */
    static void scoresPair(float[] kp, int tileOff, int count, int d, float[] qT, int qOff, float[] sT, int sb, float[] sT2, int sb2) {
        int j = 0, next = d * GROUP;
        for (; j + 4 < count; j += STEP) {
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
            FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0;
            FloatVector c0 = a0, c1 = a0, c2 = a0, c3 = a0, c4 = a0, c5 = a0;
            FloatVector e0 = a0, e1 = a0, e2 = a0, e3 = a0, e4 = a0, e5 = a0;
            for (int i = 0, qi = qOff, p = tileOff + j * d; i < d; i++, qi += GROUP, p += STEP) {
                FloatVector x = FloatVector.fromArray(F, qT, qi), y = FloatVector.fromArray(F, qT, qi + L);
                FloatVector z = FloatVector.fromArray(F, qT, qi + next), w = FloatVector.fromArray(F, qT, qi + next + L);
                FloatVector kv = FloatVector.broadcast(F, kp[p]);
                a0 = x.fma(kv, a0); b0 = y.fma(kv, b0); c0 = z.fma(kv, c0); e0 = w.fma(kv, e0);
                kv = FloatVector.broadcast(F, kp[p + 1]);
                a1 = x.fma(kv, a1); b1 = y.fma(kv, b1); c1 = z.fma(kv, c1); e1 = w.fma(kv, e1);
                kv = FloatVector.broadcast(F, kp[p + 2]);
                a2 = x.fma(kv, a2); b2 = y.fma(kv, b2); c2 = z.fma(kv, c2); e2 = w.fma(kv, e2);
                kv = FloatVector.broadcast(F, kp[p + 3]);
                a3 = x.fma(kv, a3); b3 = y.fma(kv, b3); c3 = z.fma(kv, c3); e3 = w.fma(kv, e3);
                kv = FloatVector.broadcast(F, kp[p + 4]);
                a4 = x.fma(kv, a4); b4 = y.fma(kv, b4); c4 = z.fma(kv, c4); e4 = w.fma(kv, e4);
                kv = FloatVector.broadcast(F, kp[p + 5]);
                a5 = x.fma(kv, a5); b5 = y.fma(kv, b5); c5 = z.fma(kv, c5); e5 = w.fma(kv, e5);
            }
            int o = sb + j * GROUP, o2 = sb2 + j * GROUP;
            a0.intoArray(sT, o); b0.intoArray(sT, o + L); c0.intoArray(sT2, o2); e0.intoArray(sT2, o2 + L);
            a1.intoArray(sT, o + 1 * GROUP); b1.intoArray(sT, o + 1 * GROUP + L); c1.intoArray(sT2, o2 + 1 * GROUP); e1.intoArray(sT2, o2 + 1 * GROUP + L);
            a2.intoArray(sT, o + 2 * GROUP); b2.intoArray(sT, o + 2 * GROUP + L); c2.intoArray(sT2, o2 + 2 * GROUP); e2.intoArray(sT2, o2 + 2 * GROUP + L);
            a3.intoArray(sT, o + 3 * GROUP); b3.intoArray(sT, o + 3 * GROUP + L); c3.intoArray(sT2, o2 + 3 * GROUP); e3.intoArray(sT2, o2 + 3 * GROUP + L);
            a4.intoArray(sT, o + 4 * GROUP); b4.intoArray(sT, o + 4 * GROUP + L); c4.intoArray(sT2, o2 + 4 * GROUP); e4.intoArray(sT2, o2 + 4 * GROUP + L);
            a5.intoArray(sT, o + 5 * GROUP); b5.intoArray(sT, o + 5 * GROUP + L); c5.intoArray(sT2, o2 + 5 * GROUP); e5.intoArray(sT2, o2 + 5 * GROUP + L);
        }
        if (j < count) {
            scores4(kp, tileOff + j * d, d, qT, qOff, sT, sb + j * GROUP, 0f);
            scores4(kp, tileOff + j * d, d, qT, qOff + next, sT2, sb2 + j * GROUP, 0f);
        }
    }

    /**
     * The last 1 to 4 keys of {@link #scores} as one 4-key step on the first 4 keys of the panel at
     * {@code kp[p…]} (a 64-key tile is 10 steps of 6 and this: a whole 6-key step there scored 66
     * keys), each score the same fma chain as in a 6-key step; key t goes to sT[o + t·GROUP] when that
     * is not negative (a range that starts inside this panel).
     */
    private static void scores4(float[] kp, int p, int d, float[] qT, int qOff, float[] sT, int o, float inverseCap) {
        boolean capped = inverseCap != 0f;
        FloatVector inv = FloatVector.broadcast(F, inverseCap);
        FloatVector a0 = FloatVector.zero(F), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
        for (int i = 0, qi = qOff; i < d; i++, qi += GROUP, p += STEP) {
            FloatVector x = FloatVector.fromArray(F, qT, qi);
            FloatVector y = FloatVector.fromArray(F, qT, qi + L);
            FloatVector kv = FloatVector.broadcast(F, kp[p]);
            a0 = x.fma(kv, a0); b0 = y.fma(kv, b0);
            kv = FloatVector.broadcast(F, kp[p + 1]);
            a1 = x.fma(kv, a1); b1 = y.fma(kv, b1);
            kv = FloatVector.broadcast(F, kp[p + 2]);
            a2 = x.fma(kv, a2); b2 = y.fma(kv, b2);
            kv = FloatVector.broadcast(F, kp[p + 3]);
            a3 = x.fma(kv, a3); b3 = y.fma(kv, b3);
        }
        int first = Math.max(o, 0);
        if (o >= 0) { a0.intoArray(sT, o); b0.intoArray(sT, o + L); }
        o += GROUP;
        if (o >= 0) { a1.intoArray(sT, o); b1.intoArray(sT, o + L); }
        o += GROUP;
        if (o >= 0) { a2.intoArray(sT, o); b2.intoArray(sT, o + L); }
        o += GROUP;
        a3.intoArray(sT, o); b3.intoArray(sT, o + L);   // the range has a key here or later
        if (capped) {   // the tile's last step: capped in sT after the stores, scores' epilogue's operations
            for (int v = first; v < o + GROUP; v += L) {
                FloatVector x = FloatVector.fromArray(F, sT, v), z = x.mul(inv);
                z = z.mul(z);
                z.fma(TANH_P0, TANH_P1).fma(z, TANH_P2).fma(z, TANH_P3).fma(z, TANH_P4).mul(z).fma(x, x).intoArray(sT, v);
            }
        }
    }

    /**
     * Sets the entries of sT for disallowed (key, lane) pairs of keys [from, from+n) to {@code value}
     * (scores to −∞ in the forward pass, probabilities to 0 in the backward pass), a vector compare
     * and blend per key and vector: against each lane's key interval, or against the key's lane
     * word (broadcast, ANDed with each lane's own bit, compared with 0). Not
     * {@code VectorMask.fromLong}: that is not intrinsified on AVX2 and boxes a mask per call.
     */
    private static void maskScores(Scratch s, float[] sT, float value, int from, int n) {
        if (s.intervals) {
            for (int v = 0; v < 2; v++) {
                IntVector lo = IntVector.fromArray(LANES_AS_INTS, s.firstKey, v * L);
                IntVector hi = IntVector.fromArray(LANES_AS_INTS, s.lastKey, v * L);
                for (int j = 0; j < n; j++) {
                    int key = from + j;
                    if (key >= s.allFrom && key < s.allTo) continue;   // every lane may attend it
                    VectorMask<Float> blocked = lo.compare(VectorOperators.GT, key).or(hi.compare(VectorOperators.LT, key)).cast(F);
                    int o = j * GROUP + v * L;
                    FloatVector.fromArray(F, sT, o).blend(value, blocked).intoArray(sT, o);
                }
            }
            return;
        }
        long allLanes = GROUP == 64 ? -1L : (1L << GROUP) - 1;
        for (int j = 0; j < n; j++) {
            long allowed = s.laneMask[from + j] & allLanes;
            if (allowed == allLanes) continue;
            for (int v = 0; v < 2; v++) {
                int o = j * GROUP + v * L;
                VectorMask<Float> blocked = IntVector.broadcast(LANES_AS_INTS, (int) (allowed >>> (v * L)))
                        .and(LANE_BIT).compare(VectorOperators.EQ, 0).cast(F);
                FloatVector.fromArray(F, sT, o).blend(value, blocked).intoArray(sT, o);
            }
        }
    }

    /** Integer lanes matching F's float lanes one to one, and lane i holding the bit 1 << i. */
    private static final VectorSpecies<Integer> LANES_AS_INTS = VectorConfig.INTS;
    private static final IntVector LANE_BIT = VectorConfig.laneBits();

    /**
     * Online softmax over one tile for one lane group: new running max, probabilities in
     * place of the scores, rescaled running sum and output. A lane that has seen only masked keys
     * keeps max −∞ and subtracts 0 instead, so exp(−∞ − (−∞)) never produces NaN.
     *
     * <p>Three methods, with vectors passed between them through the small arrays {@code mNew},
     * {@code shift} and {@code total}: C2 inlines a Vector API operation as a chain of small methods,
     * and one method holding the whole step ran out of its inlining budget and boxed a vector per
     * operation (16 MB per call at n = 512).
     */
    private static void softmaxStep(Scratch s, int grp, int n, int dv, int sb) {
        float[] sT = s.sT, oT = s.oT;
        int state = grp * GROUP;
        runningMax(sT, sb, n, s.m, state, s.mNew);
        FloatVector mOldA = FloatVector.fromArray(F, s.m, state), mOldB = FloatVector.fromArray(F, s.m, state + L);
        FloatVector mNewA = FloatVector.fromArray(F, s.mNew, 0), mNewB = FloatVector.fromArray(F, s.mNew, L);
        mNewA.blend(0f, mNewA.eq(NEG_INF)).intoArray(s.shift, 0);
        mNewB.blend(0f, mNewB.eq(NEG_INF)).intoArray(s.shift, L);
        // Row n carries mOld, so one 2^x pass over n+1 rows yields the probabilities and the
        // rescale factor α = 2^(mOld − shift). When n+1 is odd, row n+1 (scratch) holds −∞: its
        // 2^x is 0 and adding 0 leaves each sum's bits as they are.
        mOldA.intoArray(sT, sb + n * GROUP);
        mOldB.intoArray(sT, sb + n * GROUP + L);
        if ((n & 1) == 0) {
            NEG_INF_VECTOR.intoArray(sT, sb + (n + 1) * GROUP);
            NEG_INF_VECTOR.intoArray(sT, sb + (n + 1) * GROUP + L);
        }
        exp2Rows(sT, sb, n + 1, s.shift, s.total);
        FloatVector alphaA = FloatVector.fromArray(F, sT, sb + n * GROUP), alphaB = FloatVector.fromArray(F, sT, sb + n * GROUP + L);
        alphaA.fma(FloatVector.fromArray(F, s.l, state), FloatVector.fromArray(F, s.total, 0).sub(alphaA)).intoArray(s.l, state);
        alphaB.fma(FloatVector.fromArray(F, s.l, state + L), FloatVector.fromArray(F, s.total, L).sub(alphaB)).intoArray(s.l, state + L);
        mNewA.intoArray(s.m, state);
        mNewB.intoArray(s.m, state + L);
        if (alphaA.compare(VectorOperators.NE, 1f).anyTrue() || alphaB.compare(VectorOperators.NE, 1f).anyTrue()) {
            int base = s.oTBase + grp * dv * GROUP;
            for (int i = 0; i < dv; i++) {   // a lane whose α is 1 is multiplied by 1: its bits stay
                int o = base + i * GROUP;
                FloatVector.fromArray(F, oT, o).mul(alphaA).intoArray(oT, o);
                FloatVector.fromArray(F, oT, o + L).mul(alphaB).intoArray(oT, o + L);
            }
        }
    }

    /**
     * mNew[lane] = the larger of m[state + lane] and the scores of keys [0, n) in that lane, with
     * ScalarAttentionKernel.larger's semantics (m.blend(x, x > m): a NaN is passed over; Java's max,
     * which propagates it, costs five instructions per vector on x86 to this one compare and blend).
     * Eight running maxima, so no chain of dependent blends waits on latency.
     */
    private static void runningMax(float[] sT, int sb, int n, float[] m, int state, float[] mNew) {
        // Broadcast here, not a static final vector: a loop phi fed by a constant box keeps C2 from
        // scalarizing the loop's vectors (it boxed one per blend).
        FloatVector maxA0 = FloatVector.broadcast(F, NEG_INF), maxA1 = maxA0, maxA2 = maxA0, maxA3 = maxA0;
        FloatVector maxB0 = maxA0, maxB1 = maxA0, maxB2 = maxA0, maxB3 = maxA0;
        int key = 0;
        for (; key + 4 <= n; key += 4) {
            int o = sb + key * GROUP;
            FloatVector a0 = FloatVector.fromArray(F, sT, o), b0 = FloatVector.fromArray(F, sT, o + L);
            FloatVector a1 = FloatVector.fromArray(F, sT, o + GROUP), b1 = FloatVector.fromArray(F, sT, o + GROUP + L);
            FloatVector a2 = FloatVector.fromArray(F, sT, o + 2 * GROUP), b2 = FloatVector.fromArray(F, sT, o + 2 * GROUP + L);
            FloatVector a3 = FloatVector.fromArray(F, sT, o + 3 * GROUP), b3 = FloatVector.fromArray(F, sT, o + 3 * GROUP + L);
            maxA0 = maxA0.blend(a0, a0.compare(VectorOperators.GT, maxA0));
            maxB0 = maxB0.blend(b0, b0.compare(VectorOperators.GT, maxB0));
            maxA1 = maxA1.blend(a1, a1.compare(VectorOperators.GT, maxA1));
            maxB1 = maxB1.blend(b1, b1.compare(VectorOperators.GT, maxB1));
            maxA2 = maxA2.blend(a2, a2.compare(VectorOperators.GT, maxA2));
            maxB2 = maxB2.blend(b2, b2.compare(VectorOperators.GT, maxB2));
            maxA3 = maxA3.blend(a3, a3.compare(VectorOperators.GT, maxA3));
            maxB3 = maxB3.blend(b3, b3.compare(VectorOperators.GT, maxB3));
        }
        for (; key < n; key++) {
            FloatVector a0 = FloatVector.fromArray(F, sT, sb + key * GROUP), b0 = FloatVector.fromArray(F, sT, sb + key * GROUP + L);
            maxA0 = maxA0.blend(a0, a0.compare(VectorOperators.GT, maxA0));
            maxB0 = maxB0.blend(b0, b0.compare(VectorOperators.GT, maxB0));
        }
        maxA0 = maxA0.blend(maxA1, maxA1.compare(VectorOperators.GT, maxA0));
        maxA2 = maxA2.blend(maxA3, maxA3.compare(VectorOperators.GT, maxA2));
        maxA0 = maxA0.blend(maxA2, maxA2.compare(VectorOperators.GT, maxA0));
        maxB0 = maxB0.blend(maxB1, maxB1.compare(VectorOperators.GT, maxB0));
        maxB2 = maxB2.blend(maxB3, maxB3.compare(VectorOperators.GT, maxB2));
        maxB0 = maxB0.blend(maxB2, maxB2.compare(VectorOperators.GT, maxB0));
        FloatVector mA = FloatVector.fromArray(F, m, state), mB = FloatVector.fromArray(F, m, state + L);
        mA.blend(maxA0, maxA0.compare(VectorOperators.GT, mA)).intoArray(mNew, 0);
        mB.blend(maxB0, maxB0.compare(VectorOperators.GT, mB)).intoArray(mNew, L);
    }

    /**
     * sT[j][lane] = 2^(sT[j][lane] − shift[lane]) for rows j < rows (even), and total[lane] = the
     * sum of those, one chain per vector in row order (the scalar twin's order). Both vectors of a
     * lane group go through one loop, two rows per iteration: four independent 2^x in flight. One
     * at a time, the chain of six dependent FMAs filled the FP scheduler with waiting operations and
     * a 2^x cost 19 cycles per vector on Zen 3; this way, with the clamp and 2^k below, under 10.
     * The 2^x is written out on purpose: as a method of its own C2 declined to inline it and every
     * call boxed a vector.
     */
    private static void exp2Rows(float[] sT, int sb, int rows, float[] shift, float[] total) {
        FloatVector shiftA = FloatVector.fromArray(F, shift, 0), shiftB = FloatVector.fromArray(F, shift, L);
        FloatVector totalA = FloatVector.zero(F), totalB = totalA;
        for (int j = 0; j < rows; j += 2) {
            int o = sb + j * GROUP;
            // 2^x, see EXP2_P0 and ScalarAttentionKernel.exp2: clamp at −127, k = round(x) in the low
            // bits of x + 1.5·2^23, f = x − k, 2^f by polynomial, 2^k shifted into the exponent field.
            FloatVector x0 = FloatVector.fromArray(F, sT, o).sub(shiftA), x1 = FloatVector.fromArray(F, sT, o + L).sub(shiftB);
            FloatVector x2 = FloatVector.fromArray(F, sT, o + GROUP).sub(shiftA), x3 = FloatVector.fromArray(F, sT, o + GROUP + L).sub(shiftB);
            x0 = x0.blend(EXP2_MIN_ARGUMENT, x0.compare(VectorOperators.LT, EXP2_MIN_ARGUMENT));
            x1 = x1.blend(EXP2_MIN_ARGUMENT, x1.compare(VectorOperators.LT, EXP2_MIN_ARGUMENT));
            x2 = x2.blend(EXP2_MIN_ARGUMENT, x2.compare(VectorOperators.LT, EXP2_MIN_ARGUMENT));
            x3 = x3.blend(EXP2_MIN_ARGUMENT, x3.compare(VectorOperators.LT, EXP2_MIN_ARGUMENT));
            FloatVector r0 = x0.add(ROUND_MAGIC), r1 = x1.add(ROUND_MAGIC), r2 = x2.add(ROUND_MAGIC), r3 = x3.add(ROUND_MAGIC);
            FloatVector f0 = x0.sub(r0.sub(ROUND_MAGIC)), f1 = x1.sub(r1.sub(ROUND_MAGIC));
            FloatVector f2 = x2.sub(r2.sub(ROUND_MAGIC)), f3 = x3.sub(r3.sub(ROUND_MAGIC));
            FloatVector p0 = f0.fma(EXP2_P0, EXP2_P1), p1 = f1.fma(EXP2_P0, EXP2_P1), p2 = f2.fma(EXP2_P0, EXP2_P1), p3 = f3.fma(EXP2_P0, EXP2_P1);
            p0 = p0.fma(f0, EXP2_P2); p1 = p1.fma(f1, EXP2_P2); p2 = p2.fma(f2, EXP2_P2); p3 = p3.fma(f3, EXP2_P2);
            p0 = p0.fma(f0, EXP2_P3); p1 = p1.fma(f1, EXP2_P3); p2 = p2.fma(f2, EXP2_P3); p3 = p3.fma(f3, EXP2_P3);
            p0 = p0.fma(f0, EXP2_P4); p1 = p1.fma(f1, EXP2_P4); p2 = p2.fma(f2, EXP2_P4); p3 = p3.fma(f3, EXP2_P4);
            p0 = p0.fma(f0, EXP2_P5); p1 = p1.fma(f1, EXP2_P5); p2 = p2.fma(f2, EXP2_P5); p3 = p3.fma(f3, EXP2_P5);
            FloatVector e0 = f0.fma(p0, ONE).mul(r0.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats());
            FloatVector e1 = f1.fma(p1, ONE).mul(r1.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats());
            FloatVector e2 = f2.fma(p2, ONE).mul(r2.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats());
            FloatVector e3 = f3.fma(p3, ONE).mul(r3.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats());
            e0.intoArray(sT, o);
            e1.intoArray(sT, o + L);
            e2.intoArray(sT, o + GROUP);
            e3.intoArray(sT, o + GROUP + L);
            totalA = totalA.add(e0).add(e2);
            totalB = totalB.add(e1).add(e3);
        }
        totalA.intoArray(total, 0);
        totalB.intoArray(total, L);
    }

    // The constants of the base-2 softmax live with the scalar twin, so the two kernels cannot drift apart.
    private static final float LOG2E = ScalarAttentionKernel.LOG2E;
    private static final float ROUND_MAGIC = ScalarAttentionKernel.ROUND_MAGIC;   // 1.5·2^23: adding it rounds to an integer
    private static final float EXP2_MIN_ARGUMENT = ScalarAttentionKernel.EXP2_MIN_ARGUMENT;   // 2^x clamps x here; the result is 0
    private static final int EXPONENT_BIAS_BITS = ScalarAttentionKernel.EXPONENT_BIAS_BITS;
    private static final FloatVector NEG_INF_VECTOR = FloatVector.broadcast(F, NEG_INF);
    private static final FloatVector ONE = FloatVector.broadcast(F, 1f);

    /*
     * 2^x in softmaxStep, for x ≤ 0 (−∞ gives exactly 0), relative error ~2e-7. Not lanewise(EXP):
     * that is an SVML stub once C2 compiles the kernel but a per-lane Math.exp before, and the two
     * differ in the last bit, which would make results depend on which thread ran compiled code
     * first. Built from add/mul/fma/shift/compare/blend only, this is bit-identical at every JIT tier. Base 2
     * because the queries carry log2(e) (packQueries): no Cody–Waite reduction is needed, x − round(x)
     * is exact. 2^f = 1 + f·P(f) on |f| ≤ ½ with Cephes' exp2f minimax coefficients.
     */
    private static final FloatVector EXP2_P0 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P0), EXP2_P1 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P1);
    private static final FloatVector EXP2_P2 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P2), EXP2_P3 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P3);
    private static final FloatVector EXP2_P4 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P4), EXP2_P5 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P5);

    /**
     * oT[oOff + i·GROUP + lane] += Σ_j v[vOff + j·dv + i] · sT[j][lane]. Each loaded pair of probability
     * vectors feeds a block of value columns: 8 columns (16 accumulators) where the register file
     * holds 32 vectors (512-bit species: AVX-512), else 4 (8 accumulators; AVX2 has 16 registers and
     * spills at 8 columns). Measured in isolation on AVX-512: 157 vs 134 GFLOP/s. The usual head dims
     * (multiples of 4) then have no single-column tail.
     */
    static void accumulate(float[] v, int vOff, int n, int dv, float[] sT, float[] oT, int oOff) {
        int i = 0;
        if (WIDE_REGISTER_FILE) {
            for (; i + 8 <= dv; i += 8) accumulate8(v, vOff, n, dv, i, sT, oT, oOff);
        }
        for (; i + 4 <= dv; i += 4) {
            int o0 = oOff + i * GROUP, o1 = o0 + GROUP, o2 = o1 + GROUP, o3 = o2 + GROUP;
            FloatVector a0 = FloatVector.fromArray(F, oT, o0), b0 = FloatVector.fromArray(F, oT, o0 + L);
            FloatVector a1 = FloatVector.fromArray(F, oT, o1), b1 = FloatVector.fromArray(F, oT, o1 + L);
            FloatVector a2 = FloatVector.fromArray(F, oT, o2), b2 = FloatVector.fromArray(F, oT, o2 + L);
            FloatVector a3 = FloatVector.fromArray(F, oT, o3), b3 = FloatVector.fromArray(F, oT, o3 + L);
            for (int j = 0, row = vOff + i; j < n; j++, row += dv) {
                int pj = j * GROUP;
                FloatVector x = FloatVector.fromArray(F, sT, pj);
                FloatVector y = FloatVector.fromArray(F, sT, pj + L);
                FloatVector w = FloatVector.broadcast(F, v[row]);
                a0 = x.fma(w, a0); b0 = y.fma(w, b0);
                w = FloatVector.broadcast(F, v[row + 1]);
                a1 = x.fma(w, a1); b1 = y.fma(w, b1);
                w = FloatVector.broadcast(F, v[row + 2]);
                a2 = x.fma(w, a2); b2 = y.fma(w, b2);
                w = FloatVector.broadcast(F, v[row + 3]);
                a3 = x.fma(w, a3); b3 = y.fma(w, b3);
            }
            a0.intoArray(oT, o0); b0.intoArray(oT, o0 + L);
            a1.intoArray(oT, o1); b1.intoArray(oT, o1 + L);
            a2.intoArray(oT, o2); b2.intoArray(oT, o2 + L);
            a3.intoArray(oT, o3); b3.intoArray(oT, o3 + L);
        }
        accumulateColumns(v, vOff, n, dv, i, sT, 0, oT, oOff);
    }

    /** Value columns [from, dv) of {@link #accumulate} one at a time: the tail of the column blocks. */
    private static void accumulateColumns(float[] v, int vOff, int n, int dv, int from, float[] sT, int sb, float[] oT, int oOff) {
        for (int i = from; i < dv; i++) {
            int o = oOff + i * GROUP;
            FloatVector a = FloatVector.fromArray(F, oT, o), b = FloatVector.fromArray(F, oT, o + L);
            for (int j = 0, row = vOff + i; j < n; j++, row += dv) {
                FloatVector w = FloatVector.broadcast(F, v[row]);
                a = FloatVector.fromArray(F, sT, sb + j * GROUP).fma(w, a);
                b = FloatVector.fromArray(F, sT, sb + j * GROUP + L).fma(w, b);
            }
            a.intoArray(oT, o);
            b.intoArray(oT, o + L);
        }
    }

    private static final boolean WIDE_REGISTER_FILE = VectorConfig.WIDE_REGISTER_FILE;

    /**
     * {@link #accumulate} for two consecutive lane groups at once (probabilities sT and sT2, the
     * second's output dv·GROUP after the first's): value columns in blocks of 6 × 4 vectors (24
     * accumulators: each broadcast value feeds 4 FMAs, each probability vector 6), then of 4 (D = 64
     * is 10 × 6 + 4; handing those 4 columns to accumulate()'s blocks group by group instead made the
     * whole forward 9 % slower, n = 4096, one thread: C2 compiled this method worse), then one at a
     * time; every output the same fma chain over j in order as in accumulate(). For finite values and
     * register files of 32 vectors.
     */
    static void accumulatePair(float[] v, int vOff, int n, int dv, float[] sT, int sb, float[] sT2, int sb2, float[] oT, int oOff) {
        int i = 0, next = dv * GROUP;
        for (; i + 6 <= dv; i += 6) {
            int o0 = oOff + i * GROUP;
            FloatVector a0 = FloatVector.fromArray(F, oT, o0), b0 = FloatVector.fromArray(F, oT, o0 + L), c0 = FloatVector.fromArray(F, oT, o0 + next), e0 = FloatVector.fromArray(F, oT, o0 + next + L);
            FloatVector a1 = FloatVector.fromArray(F, oT, o0 + 1 * GROUP), b1 = FloatVector.fromArray(F, oT, o0 + 1 * GROUP + L), c1 = FloatVector.fromArray(F, oT, o0 + 1 * GROUP + next), e1 = FloatVector.fromArray(F, oT, o0 + 1 * GROUP + next + L);
            FloatVector a2 = FloatVector.fromArray(F, oT, o0 + 2 * GROUP), b2 = FloatVector.fromArray(F, oT, o0 + 2 * GROUP + L), c2 = FloatVector.fromArray(F, oT, o0 + 2 * GROUP + next), e2 = FloatVector.fromArray(F, oT, o0 + 2 * GROUP + next + L);
            FloatVector a3 = FloatVector.fromArray(F, oT, o0 + 3 * GROUP), b3 = FloatVector.fromArray(F, oT, o0 + 3 * GROUP + L), c3 = FloatVector.fromArray(F, oT, o0 + 3 * GROUP + next), e3 = FloatVector.fromArray(F, oT, o0 + 3 * GROUP + next + L);
            FloatVector a4 = FloatVector.fromArray(F, oT, o0 + 4 * GROUP), b4 = FloatVector.fromArray(F, oT, o0 + 4 * GROUP + L), c4 = FloatVector.fromArray(F, oT, o0 + 4 * GROUP + next), e4 = FloatVector.fromArray(F, oT, o0 + 4 * GROUP + next + L);
            FloatVector a5 = FloatVector.fromArray(F, oT, o0 + 5 * GROUP), b5 = FloatVector.fromArray(F, oT, o0 + 5 * GROUP + L), c5 = FloatVector.fromArray(F, oT, o0 + 5 * GROUP + next), e5 = FloatVector.fromArray(F, oT, o0 + 5 * GROUP + next + L);
            for (int j = 0, row = vOff + i; j < n; j++, row += dv) {
                int pj = j * GROUP;
                FloatVector x = FloatVector.fromArray(F, sT, sb + pj), y = FloatVector.fromArray(F, sT, sb + pj + L);
                FloatVector z = FloatVector.fromArray(F, sT2, sb2 + pj), u = FloatVector.fromArray(F, sT2, sb2 + pj + L);
                FloatVector w = FloatVector.broadcast(F, v[row]);
                a0 = x.fma(w, a0); b0 = y.fma(w, b0); c0 = z.fma(w, c0); e0 = u.fma(w, e0);
                w = FloatVector.broadcast(F, v[row + 1]);
                a1 = x.fma(w, a1); b1 = y.fma(w, b1); c1 = z.fma(w, c1); e1 = u.fma(w, e1);
                w = FloatVector.broadcast(F, v[row + 2]);
                a2 = x.fma(w, a2); b2 = y.fma(w, b2); c2 = z.fma(w, c2); e2 = u.fma(w, e2);
                w = FloatVector.broadcast(F, v[row + 3]);
                a3 = x.fma(w, a3); b3 = y.fma(w, b3); c3 = z.fma(w, c3); e3 = u.fma(w, e3);
                w = FloatVector.broadcast(F, v[row + 4]);
                a4 = x.fma(w, a4); b4 = y.fma(w, b4); c4 = z.fma(w, c4); e4 = u.fma(w, e4);
                w = FloatVector.broadcast(F, v[row + 5]);
                a5 = x.fma(w, a5); b5 = y.fma(w, b5); c5 = z.fma(w, c5); e5 = u.fma(w, e5);
            }
            a0.intoArray(oT, o0); b0.intoArray(oT, o0 + L); c0.intoArray(oT, o0 + next); e0.intoArray(oT, o0 + next + L);
            a1.intoArray(oT, o0 + 1 * GROUP); b1.intoArray(oT, o0 + 1 * GROUP + L); c1.intoArray(oT, o0 + 1 * GROUP + next); e1.intoArray(oT, o0 + 1 * GROUP + next + L);
            a2.intoArray(oT, o0 + 2 * GROUP); b2.intoArray(oT, o0 + 2 * GROUP + L); c2.intoArray(oT, o0 + 2 * GROUP + next); e2.intoArray(oT, o0 + 2 * GROUP + next + L);
            a3.intoArray(oT, o0 + 3 * GROUP); b3.intoArray(oT, o0 + 3 * GROUP + L); c3.intoArray(oT, o0 + 3 * GROUP + next); e3.intoArray(oT, o0 + 3 * GROUP + next + L);
            a4.intoArray(oT, o0 + 4 * GROUP); b4.intoArray(oT, o0 + 4 * GROUP + L); c4.intoArray(oT, o0 + 4 * GROUP + next); e4.intoArray(oT, o0 + 4 * GROUP + next + L);
            a5.intoArray(oT, o0 + 5 * GROUP); b5.intoArray(oT, o0 + 5 * GROUP + L); c5.intoArray(oT, o0 + 5 * GROUP + next); e5.intoArray(oT, o0 + 5 * GROUP + next + L);
        }
        for (; i + 4 <= dv; i += 4) {
            int o0 = oOff + i * GROUP;
            FloatVector a0 = FloatVector.fromArray(F, oT, o0), b0 = FloatVector.fromArray(F, oT, o0 + L), c0 = FloatVector.fromArray(F, oT, o0 + next), e0 = FloatVector.fromArray(F, oT, o0 + next + L);
            FloatVector a1 = FloatVector.fromArray(F, oT, o0 + 1 * GROUP), b1 = FloatVector.fromArray(F, oT, o0 + 1 * GROUP + L), c1 = FloatVector.fromArray(F, oT, o0 + 1 * GROUP + next), e1 = FloatVector.fromArray(F, oT, o0 + 1 * GROUP + next + L);
            FloatVector a2 = FloatVector.fromArray(F, oT, o0 + 2 * GROUP), b2 = FloatVector.fromArray(F, oT, o0 + 2 * GROUP + L), c2 = FloatVector.fromArray(F, oT, o0 + 2 * GROUP + next), e2 = FloatVector.fromArray(F, oT, o0 + 2 * GROUP + next + L);
            FloatVector a3 = FloatVector.fromArray(F, oT, o0 + 3 * GROUP), b3 = FloatVector.fromArray(F, oT, o0 + 3 * GROUP + L), c3 = FloatVector.fromArray(F, oT, o0 + 3 * GROUP + next), e3 = FloatVector.fromArray(F, oT, o0 + 3 * GROUP + next + L);
            for (int j = 0, row = vOff + i; j < n; j++, row += dv) {
                int pj = j * GROUP;
                FloatVector x = FloatVector.fromArray(F, sT, sb + pj), y = FloatVector.fromArray(F, sT, sb + pj + L);
                FloatVector z = FloatVector.fromArray(F, sT2, sb2 + pj), u = FloatVector.fromArray(F, sT2, sb2 + pj + L);
                FloatVector w = FloatVector.broadcast(F, v[row]);
                a0 = x.fma(w, a0); b0 = y.fma(w, b0); c0 = z.fma(w, c0); e0 = u.fma(w, e0);
                w = FloatVector.broadcast(F, v[row + 1]);
                a1 = x.fma(w, a1); b1 = y.fma(w, b1); c1 = z.fma(w, c1); e1 = u.fma(w, e1);
                w = FloatVector.broadcast(F, v[row + 2]);
                a2 = x.fma(w, a2); b2 = y.fma(w, b2); c2 = z.fma(w, c2); e2 = u.fma(w, e2);
                w = FloatVector.broadcast(F, v[row + 3]);
                a3 = x.fma(w, a3); b3 = y.fma(w, b3); c3 = z.fma(w, c3); e3 = u.fma(w, e3);
            }
            a0.intoArray(oT, o0); b0.intoArray(oT, o0 + L); c0.intoArray(oT, o0 + next); e0.intoArray(oT, o0 + next + L);
            a1.intoArray(oT, o0 + 1 * GROUP); b1.intoArray(oT, o0 + 1 * GROUP + L); c1.intoArray(oT, o0 + 1 * GROUP + next); e1.intoArray(oT, o0 + 1 * GROUP + next + L);
            a2.intoArray(oT, o0 + 2 * GROUP); b2.intoArray(oT, o0 + 2 * GROUP + L); c2.intoArray(oT, o0 + 2 * GROUP + next); e2.intoArray(oT, o0 + 2 * GROUP + next + L);
            a3.intoArray(oT, o0 + 3 * GROUP); b3.intoArray(oT, o0 + 3 * GROUP + L); c3.intoArray(oT, o0 + 3 * GROUP + next); e3.intoArray(oT, o0 + 3 * GROUP + next + L);
        }
        if (i < dv) {   // 1 to 3 columns: accumulate()'s column loop, per group
            accumulateColumns(v, vOff, n, dv, i, sT, sb, oT, oOff);
            accumulateColumns(v, vOff, n, dv, i, sT2, sb2, oT, oOff + next);
        }
    }


    /** Value columns [i, i+8) of {@link #accumulate}: 8 columns × 2 vectors. */
    private static void accumulate8(float[] v, int vOff, int n, int dv, int i, float[] sT, float[] oT, int oOff) {
        int o0 = oOff + i * GROUP, o1 = o0 + GROUP, o2 = o1 + GROUP, o3 = o2 + GROUP;
        int o4 = o3 + GROUP, o5 = o4 + GROUP, o6 = o5 + GROUP, o7 = o6 + GROUP;
        FloatVector a0 = FloatVector.fromArray(F, oT, o0), b0 = FloatVector.fromArray(F, oT, o0 + L);
        FloatVector a1 = FloatVector.fromArray(F, oT, o1), b1 = FloatVector.fromArray(F, oT, o1 + L);
        FloatVector a2 = FloatVector.fromArray(F, oT, o2), b2 = FloatVector.fromArray(F, oT, o2 + L);
        FloatVector a3 = FloatVector.fromArray(F, oT, o3), b3 = FloatVector.fromArray(F, oT, o3 + L);
        FloatVector a4 = FloatVector.fromArray(F, oT, o4), b4 = FloatVector.fromArray(F, oT, o4 + L);
        FloatVector a5 = FloatVector.fromArray(F, oT, o5), b5 = FloatVector.fromArray(F, oT, o5 + L);
        FloatVector a6 = FloatVector.fromArray(F, oT, o6), b6 = FloatVector.fromArray(F, oT, o6 + L);
        FloatVector a7 = FloatVector.fromArray(F, oT, o7), b7 = FloatVector.fromArray(F, oT, o7 + L);
        for (int j = 0, row = vOff + i; j < n; j++, row += dv) {
            int pj = j * GROUP;
            FloatVector x = FloatVector.fromArray(F, sT, pj);
            FloatVector y = FloatVector.fromArray(F, sT, pj + L);
            FloatVector w = FloatVector.broadcast(F, v[row]);
            a0 = x.fma(w, a0); b0 = y.fma(w, b0);
            w = FloatVector.broadcast(F, v[row + 1]);
            a1 = x.fma(w, a1); b1 = y.fma(w, b1);
            w = FloatVector.broadcast(F, v[row + 2]);
            a2 = x.fma(w, a2); b2 = y.fma(w, b2);
            w = FloatVector.broadcast(F, v[row + 3]);
            a3 = x.fma(w, a3); b3 = y.fma(w, b3);
            w = FloatVector.broadcast(F, v[row + 4]);
            a4 = x.fma(w, a4); b4 = y.fma(w, b4);
            w = FloatVector.broadcast(F, v[row + 5]);
            a5 = x.fma(w, a5); b5 = y.fma(w, b5);
            w = FloatVector.broadcast(F, v[row + 6]);
            a6 = x.fma(w, a6); b6 = y.fma(w, b6);
            w = FloatVector.broadcast(F, v[row + 7]);
            a7 = x.fma(w, a7); b7 = y.fma(w, b7);
        }
        a0.intoArray(oT, o0); b0.intoArray(oT, o0 + L);
        a1.intoArray(oT, o1); b1.intoArray(oT, o1 + L);
        a2.intoArray(oT, o2); b2.intoArray(oT, o2 + L);
        a3.intoArray(oT, o3); b3.intoArray(oT, o3 + L);
        a4.intoArray(oT, o4); b4.intoArray(oT, o4 + L);
        a5.intoArray(oT, o5); b5.intoArray(oT, o5 + L);
        a6.intoArray(oT, o6); b6.intoArray(oT, o6 + L);
        a7.intoArray(oT, o7); b7.intoArray(oT, o7 + L);
    }

    /**
     * {@link #accumulate} where every multiplier is used, or, when some multiplied row holds a NaN or
     * an infinity, a slower loop that skips zero multipliers: a lane whose probability (or score
     * gradient) for a key is exactly 0 does not attend it, and 0·NaN must not reach its output.
     * Both give the same bits on finite rows (fma(0, x, acc) = acc).
     */
    private static void accumulateAny(boolean rowsFinite, float[] v, int vOff, int n, int dv, float[] sT, float[] oT, int oOff) {
        if (rowsFinite) {
            accumulate(v, vOff, n, dv, sT, oT, oOff);
            return;
        }
        for (int i = 0; i < dv; i++) {
            int o = oOff + i * GROUP;
            FloatVector a = FloatVector.fromArray(F, oT, o), b = FloatVector.fromArray(F, oT, o + L);
            for (int j = 0, row = vOff + i; j < n; j++, row += dv) {
                FloatVector w = FloatVector.broadcast(F, v[row]);
                FloatVector x = FloatVector.fromArray(F, sT, j * GROUP), y = FloatVector.fromArray(F, sT, j * GROUP + L);
                a = x.fma(w, a).blend(a, x.eq(0f));
                b = y.fma(w, b).blend(b, y.eq(0f));
            }
            a.intoArray(oT, o);
            b.intoArray(oT, o + L);
        }
    }

    /** Whether the value rows of key block {@code kvBlock}, just copied to {@code vTile} from {@code off}, are all finite; checked once per call. */
    private static boolean valuesFinite(AttentionCall c, int b, int hk, int kvBlock, float[] vTile, int off, int count) {
        byte[] known = c.valueBlockFinite;
        if (known == null) return allFinite(vTile, off, count);
        int entry = c.valueBlock(b, hk, kvBlock);
        byte state = known[entry];
        if (state == 0) {
            state = allFinite(vTile, off, count) ? (byte) 1 : (byte) 2;
            known[entry] = state;
        }
        return state == 1;
    }

    /** Whether a[0..n) holds no NaN and no infinity: x·0 is 0 for finite x and NaN otherwise. */
    static boolean allFinite(float[] a, int n) {
        return allFinite(a, 0, n);
    }

    /** Whether a[off..off+n) holds no NaN and no infinity. */
    static boolean allFinite(float[] a, int off, int n) {
        // Four chains: with one, each add waited on the last and the check of a tile's values cost
        // a tenth of the tile's attention for one query block.
        FloatVector acc0 = FloatVector.zero(F), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        int i = 0;
        for (int bound = n - 4 * L; i <= bound; i += 4 * L) {
            acc0 = acc0.add(FloatVector.fromArray(F, a, off + i).mul(0f));
            acc1 = acc1.add(FloatVector.fromArray(F, a, off + i + L).mul(0f));
            acc2 = acc2.add(FloatVector.fromArray(F, a, off + i + 2 * L).mul(0f));
            acc3 = acc3.add(FloatVector.fromArray(F, a, off + i + 3 * L).mul(0f));
        }
        for (int bound = F.loopBound(n); i < bound; i += L) acc0 = acc0.add(FloatVector.fromArray(F, a, off + i).mul(0f));
        float tail = 0f;
        for (; i < n; i++) tail += a[off + i] * 0f;
        FloatVector acc = acc0.add(acc1).add(acc2.add(acc3));
        return !acc.compare(VectorOperators.NE, acc).anyTrue() && tail == tail;
    }

    // ------------------------------------------------------------------ backward pass

    /*
     * FlashAttention-2's backward with the forward's tile walk and micro-kernels: per tile, the
     * scores are recomputed (scores()), turned into probabilities P = 2^(s − lse₂) with the stored
     * log-sum-exp, dP = dO·Vᵀ is the same micro-kernel with dO in place of the queries, and
     * dS = P ∘ (dP − rowsum(dO ∘ O)). dq accumulates dS·K exactly as the forward accumulates P·V
     * (queries in lanes, keys broadcast). dk and dv accumulate dSᵀ·Q and Pᵀ·dO with head dimensions
     * in lanes and probabilities broadcast, in key-major work items that visit the query blocks of a
     * key block through the layout's transposed index: every gradient row has one writer, so there
     * are no atomics and the result does not depend on the thread count.
     */

    /** dq rows of one query block of one (batch, head). */
    static void queryBlockGradients(AttentionCall c, int b, int h, int qBlock) {
        AttentionGeometry g = c.g;
        GradientGeometry gg = c.gg;
        BlockLayout lay = c.layouts.forHead(h);
        int d = g.shape().headDim(), dv = g.shape().valueDim(), kvLen = g.shape().kvLen(), blockKV = lay.blockKV();
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, lay.rowsPerBlock(), lay.keysPerBlock(), lay.maskWordsPerRow());
        s.ensureBackward(d, dv, lay.rowsPerBlock(), lay.keysPerBlock());
        int q0 = qBlock * lay.blockQ(), rows = Math.min(lay.blockQ(), g.shape().qLen() - q0);
        int groups = (rows + GROUP - 1) / GROUP, hk = g.shape().kvHeadOf(h);
        bindMods(s, c, b, h, q0, rows);
        packBlock(c, b, h, q0, rows, s);
        Arrays.fill(s.dqRun, 0, groups * d * GROUP, 0f);
        int[] offsets = lay.rowOffsets(), cols = lay.colIndices();
        byte[] kinds = lay.kinds();
        long kHead = g.kBase(b, hk), vHead = g.vBase(b, hk);
        for (int t = offsets[qBlock]; t < offsets[qBlock + 1]; t++) {
            int kv0 = cols[t] * blockKV, n = Math.min(blockKV, kvLen - kv0);
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial) lay.fillTileMask(t, s.rowMask);
            s.modKey0 = kv0;
            copyRows(c.k, c.kType, kHead + (long) kv0 * g.kRow(), g.kRow(), n, d, s.kTile);
            copyRows(c.v, c.vType, vHead + (long) kv0 * g.vRow(), g.vRow(), n, dv, s.vTile);
            packPanels(s.kTile, 0, n, d, s.kSix, 0);
            packPanels(s.vTile, 0, n, dv, s.vSix, 0);
            boolean keysFinite = allFinite(s.kTile, n * d);
            Arrays.fill(s.dqT, 0, groups * d * GROUP, 0f);
            for (int grp = 0; grp < groups; grp++) {
                int from = 0, count = n;
                if (partial) {
                    if (!laneMasks(lay, s, grp * GROUP, Math.min(GROUP, rows - grp * GROUP), n)) continue;
                    from = s.keyFrom;
                    count = s.keyTo - from;
                }
                scoreGradients(s, grp, from, count, d, dv, partial);
                accumulateAny(keysFinite, s.kTile, from * d, count, d, s.dsT, s.dqT, grp * d * GROUP);
            }
            // dq += scale · (this tile's contribution): the order the single-pass backward adds tiles in.
            FloatVector scale = FloatVector.broadcast(F, g.scale());
            for (int i = 0; i < groups * d * GROUP; i += L) {
                FloatVector.fromArray(F, s.dqT, i).mul(scale).add(FloatVector.fromArray(F, s.dqRun, i)).intoArray(s.dqRun, i);
            }
        }
        writeTransposedRows(c.dq, gg.dqBase(b, h) + (long) q0 * gg.dqRow(), gg.dqRow(), d, rows, s.dqRun, 1f);
    }

    /**
     * dq, dk and dv of one (batch, key/value head) in a single pass over its key blocks: each tile's
     * dS feeds dk and dv of its key block and, through a per-tile partial sum, the dq rows of its
     * query block, added in key-block order, exactly as the two-pass schedule
     * (queryBlockGradients + keyBlockGradients) adds them, so both give the same bits.
     */
    static void headGradients(AttentionCall c, int b, int hk) {
        GradientGeometry gg = c.gg;
        int perKv = c.g.shape().queryHeadsPerKvHead(), d = c.g.shape().headDim(), qLen = c.g.shape().qLen();
        boolean cached = packHead(c, b, hk);
        if (!cached) {
            for (int h = hk * perKv; h < (hk + 1) * perKv; h++) ScalarAttentionKernel.zeroRows(c.dq, gg.dqBase(b, h), gg.dqRow(), d, qLen);
        }
        for (int kvBlock = 0; kvBlock < c.layouts.first().kvBlocks(); kvBlock++) keyBlockGradients(c, b, hk, kvBlock, true, cached);
        if (cached) writeHeadDq(c, b, hk);
    }

    /**
     * The dq rows of every query block of hk's query heads from the head cache's running sums
     * (packHead zeroed them; blocks no tile reached stay 0), transposed back to rows once per call
     * instead of once per tile.
     */
    private static void writeHeadDq(AttentionCall c, int b, int hk) {
        GradientGeometry gg = c.gg;
        BlockLayout first = c.layouts.first();
        int perKv = c.g.shape().queryHeadsPerKvHead(), d = c.g.shape().headDim(), qLen = c.g.shape().qLen(), blockQ = first.blockQ();
        int lanesPerBlock = (first.rowsPerBlock() + GROUP - 1) / GROUP * GROUP;
        Scratch s = SCRATCH.get();
        for (int hi = 0; hi < perKv; hi++) {
            int h = hk * perKv + hi;
            for (int qb = 0; qb < first.qBlocks(); qb++) {
                int q0 = qb * blockQ, rows = Math.min(blockQ, qLen - q0), slot = hi * first.qBlocks() + qb;
                writeTransposedRows(c.dq, gg.dqBase(b, h) + (long) q0 * gg.dqRow(), gg.dqRow(), d, rows, s.headDqT, s.headDqTBase + slot * lanesPerBlock * d);
            }
        }
    }

    /** Per-thread memory the single pass may spend to pack each query block once per head instead of once per tile. */
    private static final long HEAD_CACHE_BYTES = 16L << 20;

    /**
     * Packs every query block of the query heads of {@code hk} once (the single pass visits each of
     * them once per key block of its row); false, packing nothing, when that would take more than
     * {@link #HEAD_CACHE_BYTES}: then each tile packs its block itself, the same values either way.
     */
    private static boolean packHead(AttentionCall c, int b, int hk) {
        AttentionGeometry g = c.g;
        BlockLayout first = c.layouts.first();
        int d = g.shape().headDim(), dv = g.shape().valueDim(), perKv = g.shape().queryHeadsPerKvHead(), blockQ = first.blockQ();
        int lanesPerBlock = (first.rowsPerBlock() + GROUP - 1) / GROUP * GROUP, blocks = perKv * first.qBlocks();
        long lanes = (long) blocks * lanesPerBlock, floats = lanes * (2L * d + padded(d) + dv + padded(dv) + 2);
        if (floats * Float.BYTES > HEAD_CACHE_BYTES) return false;
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, first.rowsPerBlock(), first.keysPerBlock(), first.maskWordsPerRow());
        s.ensureBackward(d, dv, first.rowsPerBlock(), first.keysPerBlock());
        int slack = LineAlignedArrays.SLACK_FLOATS;
        if (s.headQT.length < lanes * d + slack) s.headQTBytes = MemorySegment.ofArray(s.headQT = new float[(int) lanes * d + slack]);
        if (s.headQPad.length < lanes * padded(d) + slack) s.headQPadBytes = MemorySegment.ofArray(s.headQPad = new float[(int) lanes * padded(d) + slack]);
        if (s.headDOT.length < lanes * dv + slack) s.headDOTBytes = MemorySegment.ofArray(s.headDOT = new float[(int) lanes * dv + slack]);
        if (s.headDORows.length < lanes * padded(dv) + slack) s.headDORowsBytes = MemorySegment.ofArray(s.headDORows = new float[(int) lanes * padded(dv) + slack]);
        if (s.headLse2.length < lanes) { s.headLse2 = new float[(int) lanes]; s.headDelta = new float[(int) lanes]; }
        if (s.headQFinite.length < blocks) { s.headQFinite = new boolean[blocks]; s.headDOFinite = new boolean[blocks]; }
        if (s.headDqT.length < lanes * d + slack) s.headDqTBytes = MemorySegment.ofArray(s.headDqT = new float[(int) lanes * d + slack]);
        s.headQTBase = LineAlignedArrays.floatsToLine(s.headQTBytes);
        s.headQPadBase = LineAlignedArrays.floatsToLine(s.headQPadBytes);
        s.headDOTBase = LineAlignedArrays.floatsToLine(s.headDOTBytes);
        s.headDORowsBase = LineAlignedArrays.floatsToLine(s.headDORowsBytes);
        s.headDqTBase = LineAlignedArrays.floatsToLine(s.headDqTBytes);
        Arrays.fill(s.headDqT, s.headDqTBase, s.headDqTBase + (int) lanes * d, 0f);
        for (int hi = 0; hi < perKv; hi++) {
            for (int qb = 0; qb < first.qBlocks(); qb++) {
                int q0 = qb * blockQ, rows = Math.min(blockQ, g.shape().qLen() - q0), used = (rows + GROUP - 1) / GROUP * GROUP;
                int slot = hi * first.qBlocks() + qb, lane0 = slot * lanesPerBlock;
                packBlock(c, b, hk * perKv + hi, q0, rows, s);
                System.arraycopy(s.qT, s.qTBase, s.headQT, s.headQTBase + lane0 * d, used * d);
                System.arraycopy(s.qPadded, 0, s.headQPad, s.headQPadBase + lane0 * padded(d), used * padded(d));
                System.arraycopy(s.dOT, 0, s.headDOT, s.headDOTBase + lane0 * dv, used * dv);
                System.arraycopy(s.dOrows, 0, s.headDORows, s.headDORowsBase + lane0 * padded(dv), used * padded(dv));
                System.arraycopy(s.lse2, 0, s.headLse2, lane0, used);
                System.arraycopy(s.delta, 0, s.headDelta, lane0, used);
                s.headQFinite[slot] = s.curQFinite;
                s.headDOFinite[slot] = s.curDOFinite;
            }
        }
        return true;
    }

    /** Points the tile's inputs at block {@code slot} of the head cache (blocks of rowsPerBlock rows, packHead's slots). */
    private static void useCachedBlock(Scratch s, int slot, int rowsPerBlock, int d, int dv) {
        int lane0 = slot * ((rowsPerBlock + GROUP - 1) / GROUP * GROUP);
        s.curQT = s.headQT; s.curQTOff = s.headQTBase + lane0 * d;
        s.curHeadDqOff = s.headDqTBase + lane0 * d;
        s.curQPad = s.headQPad; s.curQPadOff = s.headQPadBase + lane0 * padded(d);
        s.curDOT = s.headDOT; s.curDOTOff = s.headDOTBase + lane0 * dv;
        s.curDORows = s.headDORows; s.curDORowsOff = s.headDORowsBase + lane0 * padded(dv);
        s.curLse2 = s.headLse2; s.curDelta = s.headDelta; s.curStatOff = lane0;
        s.curQFinite = s.headQFinite[slot];
        s.curDOFinite = s.headDOFinite[slot];
    }

    /** Packs one query block of head h into the per-tile buffers and points the tile's inputs at them. */
    private static void packBlock(AttentionCall c, int b, int h, int q0, int rows, Scratch s) {
        AttentionGeometry g = c.g;
        int d = g.shape().headDim(), lanes = (rows + GROUP - 1) / GROUP * GROUP;
        packQueries(c.q, c.qType, g.qBase(b, h) + (long) q0 * g.qRow(), g.qRow(), d, rows, g.scale(), s);
        padRows(s.qRows, d, lanes, s.qPadded, padded(d));
        s.curQFinite = allFinite(s.qRows, rows * d);
        s.curDOFinite = packGradientRows(c, b, h, q0, rows, s);
        s.curQT = s.qT; s.curQPad = s.qPadded; s.curDOT = s.dOT; s.curDORows = s.dOrows; s.curLse2 = s.lse2; s.curDelta = s.delta;
        s.curQPadOff = s.curDOTOff = s.curDORowsOff = s.curStatOff = 0;
        s.curQTOff = s.qTBase;
    }

    /**
     * dk and dv rows of one key block of one (batch, key/value head), summed over its query heads;
     * with {@code addDq}, each tile's dq contribution is also added into the dq rows (which the
     * caller zeroed).
     */
    static void keyBlockGradients(AttentionCall c, int b, int hk, int kvBlock, boolean addDq) {
        keyBlockGradients(c, b, hk, kvBlock, addDq, false);
    }

    /** With {@code headCached}, the query blocks come packed from {@link #packHead}. */
    private static void keyBlockGradients(AttentionCall c, int b, int hk, int kvBlock, boolean addDq, boolean headCached) {
        AttentionGeometry g = c.g;
        GradientGeometry gg = c.gg;
        BlockLayout first = c.layouts.first();
        int d = g.shape().headDim(), dv = g.shape().valueDim(), blockQ = first.blockQ(), blockKV = first.blockKV();
        int dPad = padded(d), dvPad = padded(dv), perKv = g.shape().queryHeadsPerKvHead();
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, first.rowsPerBlock(), first.keysPerBlock(), first.maskWordsPerRow());
        s.ensureBackward(d, dv, first.rowsPerBlock(), first.keysPerBlock());
        int kv0 = kvBlock * blockKV, n = Math.min(blockKV, g.shape().kvLen() - kv0);
        copyRows(c.k, c.kType, g.kBase(b, hk) + (long) kv0 * g.kRow(), g.kRow(), n, d, s.kTile);
        copyRows(c.v, c.vType, g.vBase(b, hk) + (long) kv0 * g.vRow(), g.vRow(), n, dv, s.vTile);
        packPanels(s.kTile, 0, n, d, s.kSix, 0);
        packPanels(s.vTile, 0, n, dv, s.vSix, 0);
        boolean keysFinite = allFinite(s.kTile, n * d);
        Arrays.fill(s.dkAcc, 0, n * dPad, 0f);
        Arrays.fill(s.dvAcc, 0, n * dvPad, 0f);
        bindMods(s, c, b, hk * perKv, 0, 0);
        s.modKey0 = kv0;
        for (int h = hk * perKv; h < (hk + 1) * perKv; h++) {
            BlockLayout lay = c.layouts.forHead(h);
            int[] colOffsets = lay.colOffsets(), rowIndices = lay.rowIndices(), tiles = lay.transposedTiles();
            byte[] kinds = lay.kinds();
            if (s.mods != null) bindKeyItem(s, c, b, h, hk, kvBlock);
            for (int e = colOffsets[kvBlock]; e < colOffsets[kvBlock + 1]; e++) {
                int t = tiles[e], q0 = rowIndices[e] * blockQ, rows = Math.min(blockQ, g.shape().qLen() - q0);
                int groups = (rows + GROUP - 1) / GROUP;
                boolean partial = kinds[t] == TileKind.PARTIAL.code();
                if (partial) lay.fillTileMask(t, s.rowMask);
                s.modRow0 = q0;
                s.modRows = rows;
                if (headCached) useCachedBlock(s, (h - hk * perKv) * first.qBlocks() + rowIndices[e], first.rowsPerBlock(), d, dv);
                else packBlock(c, b, h, q0, rows, s);
                if (addDq) Arrays.fill(s.dqT, 0, groups * d * GROUP, 0f);
                if (!partial) {
                    fullTileGradients(s, groups, n, d, dv, addDq, keysFinite);
                } else {
                    for (int grp = 0; grp < groups; grp++) {
                        if (!laneMasks(lay, s, grp * GROUP, Math.min(GROUP, rows - grp * GROUP), n)) continue;
                        int from = s.keyFrom, count = s.keyTo - from;
                        scoreGradients(s, grp, from, count, d, dv, true);
                        accumulateKeyRows(s.curDOFinite, s.sT, from, count, s.curDORows, s.curDORowsOff + grp * GROUP * dvPad, dvPad, s.dvAcc);
                        accumulateKeyRows(s.curQFinite, s.dsT, from, count, s.curQPad, s.curQPadOff + grp * GROUP * dPad, dPad, s.dkAcc);
                        if (addDq) accumulateAny(keysFinite, s.kTile, from * d, count, d, s.dsT, s.dqT, grp * d * GROUP);
                    }
                }
                // dq += scale · (this tile's contribution): into the head's running sums when cached, else into the dq rows.
                if (addDq && headCached) addScaled(s.dqT, groups * d * GROUP, g.scale(), s.headDqT, s.curHeadDqOff);
                else if (addDq) addTransposedRows(c.dq, gg.dqBase(b, h) + (long) q0 * gg.dqRow(), gg.dqRow(), d, rows, s.dqT, g.scale());
            }
        }
        writeScaledRows(c.dk, gg.dkBase(b, hk) + (long) kv0 * gg.dkRow(), gg.dkRow(), s.dkAcc, dPad, d, n, g.scale());
        writeScaledRows(c.dv, gg.dvBase(b, hk) + (long) kv0 * gg.dvRow(), gg.dvRow(), s.dvAcc, dvPad, dv, n, 1f);
    }

    /**
     * A full tile (every row of the query block attends every key of the key block): each lane
     * group's probabilities and score gradients, and its dq contribution, then dv += Pᵀ·dO and
     * dk += dSᵀ·Q over all the block's rows at once, so each dk/dv accumulator stays in registers
     * for the whole block (per lane group, the accumulators were loaded and stored for 16 rows of
     * work). Each accumulator still sums its rows in row order: the same bits as lane group by
     * lane group, and as the scalar twin.
     */
    private static void fullTileGradients(Scratch s, int groups, int n, int d, int dv, boolean addDq, boolean keysFinite) {
        float[] sT = s.sT, dsT = s.dsT;
        for (int grp = 0; grp < groups; grp++) {
            if (PAIRS && grp + 1 < groups) {   // two lane groups at once, as the forward pass does
                scoresPair(s.kSix, 0, n, d, s.curQT, s.curQTOff + grp * d * GROUP, s.pGroups[grp], 0, s.pGroups[grp + 1], 0);
                scoresPair(s.vSix, 0, n, dv, s.curDOT, s.curDOTOff + grp * dv * GROUP, s.dsGroups[grp], 0, s.dsGroups[grp + 1], 0);
                for (int g = grp; g < grp + 2; g++) {
                    s.sT = s.pGroups[g];
                    s.dsT = s.dsGroups[g];
                    gradientsOfScores(s, g, 0, n, false);
                }
                if (addDq && keysFinite) accumulatePair(s.kTile, 0, n, d, s.dsGroups[grp], 0, s.dsGroups[grp + 1], 0, s.dqT, grp * d * GROUP);
                else if (addDq) {
                    accumulateAny(false, s.kTile, 0, n, d, s.dsGroups[grp], s.dqT, grp * d * GROUP);
                    accumulateAny(false, s.kTile, 0, n, d, s.dsGroups[grp + 1], s.dqT, (grp + 1) * d * GROUP);
                }
                grp++;
                continue;
            }
            s.sT = s.pGroups[grp];   // scoreGradients and the modifiers work on s.sT and s.dsT
            s.dsT = s.dsGroups[grp];
            scoreGradients(s, grp, 0, n, d, dv, false);
            if (addDq) accumulateAny(keysFinite, s.kTile, 0, n, d, s.dsT, s.dqT, grp * d * GROUP);
        }
        s.sT = sT;
        s.dsT = dsT;
        accumulateBlockKeyRows(s.curDOFinite, s.pGroups, groups, n, s.curDORows, s.curDORowsOff, padded(dv), s.dvAcc);
        accumulateBlockKeyRows(s.curQFinite, s.dsGroups, groups, n, s.curQPad, s.curQPadOff, padded(d), s.dkAcc);
    }

    /** dst[dstOff + i] = src[i] · multiplier + dst[dstOff + i] for i &lt; count (a whole number of vectors). */
    private static void addScaled(float[] src, int count, float multiplier, float[] dst, int dstOff) {
        FloatVector m = FloatVector.broadcast(F, multiplier);
        for (int i = 0; i < count; i += L) {
            FloatVector.fromArray(F, src, i).mul(m).add(FloatVector.fromArray(F, dst, dstOff + i)).intoArray(dst, dstOff + i);
        }
    }

    /**
     * acc[j][·] += Σ_row p[row/GROUP][j][row%GROUP] · rows[row][·] for keys j &lt; count and the rows of
     * {@code groups} lane groups, summed in row order ({@link #accumulateKeyRows} over all of them).
     */
    private static void accumulateBlockKeyRows(boolean rowsFinite, float[][] p, int groups, int count, float[] rows, int rowsOff, int width, float[] acc) {
        if (!rowsFinite) {
            for (int grp = 0; grp < groups; grp++) accumulateKeyRows(false, p[grp], 0, count, rows, rowsOff + grp * GROUP * width, width, acc);
            return;
        }
        int j = 0;
        for (; j + 6 <= count; j += 6) {
            int x = 0;
            if (WIDE_REGISTER_FILE) {
                for (; x + 4 * L <= width; x += 4 * L) blockKeyRows6x4(p, groups, j, rows, rowsOff, width, x, acc);
            }
            for (; x + 2 * L <= width; x += 2 * L) blockKeyRows6x2(p, groups, j, rows, rowsOff, width, x, acc);
            for (; x < width; x += L) {
                for (int jj = j; jj < j + 6; jj++) blockKeyRow(p, groups, jj, rows, rowsOff, width, x, acc);
            }
        }
        for (; j + 4 <= count; j += 4) {
            int x = 0;
            for (; x + 2 * L <= width; x += 2 * L) blockKeyRows4x2(p, groups, j, rows, rowsOff, width, x, acc);
            for (; x < width; x += L) {
                for (int jj = j; jj < j + 4; jj++) blockKeyRow(p, groups, jj, rows, rowsOff, width, x, acc);
            }
        }
        for (; j < count; j++) {
            for (int x = 0; x < width; x += L) blockKeyRow(p, groups, j, rows, rowsOff, width, x, acc);
        }
    }

    /**
     * Keys [j, j+6) × 4 vectors of dimensions, for 32 registers: 24 accumulators, 4 loaded rows and a
     * broadcast. Each row vector loaded serves 6 FMAs where 6x2's serves 6 with twice the loads per
     * FMA, and the rows stream through L1 once per 6 keys instead of twice (the block's rows, 32 KB
     * at D = 64, and its probabilities do not both fit a 48 KB L1): 120 → 153 GFLOP/s (Xeon, AVX-512,
     * one thread, 4 lane groups × 60 keys × D = 64). Same accumulation order as 6x2.
     */
    private static void blockKeyRows6x4(float[][] p, int groups, int j, float[] rows, int rowsOff, int width, int x, float[] acc) {
        int a0 = j * width + x, a1 = a0 + width, a2 = a1 + width, a3 = a2 + width, a4 = a3 + width, a5 = a4 + width;
        FloatVector s00 = FloatVector.fromArray(F, acc, a0), s01 = FloatVector.fromArray(F, acc, a0 + L), s02 = FloatVector.fromArray(F, acc, a0 + 2 * L), s03 = FloatVector.fromArray(F, acc, a0 + 3 * L);
        FloatVector s10 = FloatVector.fromArray(F, acc, a1), s11 = FloatVector.fromArray(F, acc, a1 + L), s12 = FloatVector.fromArray(F, acc, a1 + 2 * L), s13 = FloatVector.fromArray(F, acc, a1 + 3 * L);
        FloatVector s20 = FloatVector.fromArray(F, acc, a2), s21 = FloatVector.fromArray(F, acc, a2 + L), s22 = FloatVector.fromArray(F, acc, a2 + 2 * L), s23 = FloatVector.fromArray(F, acc, a2 + 3 * L);
        FloatVector s30 = FloatVector.fromArray(F, acc, a3), s31 = FloatVector.fromArray(F, acc, a3 + L), s32 = FloatVector.fromArray(F, acc, a3 + 2 * L), s33 = FloatVector.fromArray(F, acc, a3 + 3 * L);
        FloatVector s40 = FloatVector.fromArray(F, acc, a4), s41 = FloatVector.fromArray(F, acc, a4 + L), s42 = FloatVector.fromArray(F, acc, a4 + 2 * L), s43 = FloatVector.fromArray(F, acc, a4 + 3 * L);
        FloatVector s50 = FloatVector.fromArray(F, acc, a5), s51 = FloatVector.fromArray(F, acc, a5 + L), s52 = FloatVector.fromArray(F, acc, a5 + 2 * L), s53 = FloatVector.fromArray(F, acc, a5 + 3 * L);
        for (int grp = 0, r = rowsOff + x; grp < groups; grp++) {
            float[] pg = p[grp];
            for (int lane = 0, pj = j * GROUP; lane < GROUP; lane++, r += width, pj++) {
                FloatVector r0 = FloatVector.fromArray(F, rows, r), r1 = FloatVector.fromArray(F, rows, r + L);
                FloatVector r2 = FloatVector.fromArray(F, rows, r + 2 * L), r3 = FloatVector.fromArray(F, rows, r + 3 * L);
                FloatVector w = FloatVector.broadcast(F, pg[pj]);
                s00 = w.fma(r0, s00); s01 = w.fma(r1, s01); s02 = w.fma(r2, s02); s03 = w.fma(r3, s03);
                w = FloatVector.broadcast(F, pg[pj + GROUP]);
                s10 = w.fma(r0, s10); s11 = w.fma(r1, s11); s12 = w.fma(r2, s12); s13 = w.fma(r3, s13);
                w = FloatVector.broadcast(F, pg[pj + 2 * GROUP]);
                s20 = w.fma(r0, s20); s21 = w.fma(r1, s21); s22 = w.fma(r2, s22); s23 = w.fma(r3, s23);
                w = FloatVector.broadcast(F, pg[pj + 3 * GROUP]);
                s30 = w.fma(r0, s30); s31 = w.fma(r1, s31); s32 = w.fma(r2, s32); s33 = w.fma(r3, s33);
                w = FloatVector.broadcast(F, pg[pj + 4 * GROUP]);
                s40 = w.fma(r0, s40); s41 = w.fma(r1, s41); s42 = w.fma(r2, s42); s43 = w.fma(r3, s43);
                w = FloatVector.broadcast(F, pg[pj + 5 * GROUP]);
                s50 = w.fma(r0, s50); s51 = w.fma(r1, s51); s52 = w.fma(r2, s52); s53 = w.fma(r3, s53);
            }
        }
        s00.intoArray(acc, a0); s01.intoArray(acc, a0 + L); s02.intoArray(acc, a0 + 2 * L); s03.intoArray(acc, a0 + 3 * L);
        s10.intoArray(acc, a1); s11.intoArray(acc, a1 + L); s12.intoArray(acc, a1 + 2 * L); s13.intoArray(acc, a1 + 3 * L);
        s20.intoArray(acc, a2); s21.intoArray(acc, a2 + L); s22.intoArray(acc, a2 + 2 * L); s23.intoArray(acc, a2 + 3 * L);
        s30.intoArray(acc, a3); s31.intoArray(acc, a3 + L); s32.intoArray(acc, a3 + 2 * L); s33.intoArray(acc, a3 + 3 * L);
        s40.intoArray(acc, a4); s41.intoArray(acc, a4 + L); s42.intoArray(acc, a4 + 2 * L); s43.intoArray(acc, a4 + 3 * L);
        s50.intoArray(acc, a5); s51.intoArray(acc, a5 + L); s52.intoArray(acc, a5 + 2 * L); s53.intoArray(acc, a5 + 3 * L);
    }

    /** Keys [j, j+6) × 2 vectors of dimensions: 12 accumulators, 2 loaded rows and a broadcast (15 of AVX2's 16 registers). */
    private static void blockKeyRows6x2(float[][] p, int groups, int j, float[] rows, int rowsOff, int width, int x, float[] acc) {
        int a0 = j * width + x, a1 = a0 + width, a2 = a1 + width, a3 = a2 + width, a4 = a3 + width, a5 = a4 + width;
        FloatVector s00 = FloatVector.fromArray(F, acc, a0), s01 = FloatVector.fromArray(F, acc, a0 + L);
        FloatVector s10 = FloatVector.fromArray(F, acc, a1), s11 = FloatVector.fromArray(F, acc, a1 + L);
        FloatVector s20 = FloatVector.fromArray(F, acc, a2), s21 = FloatVector.fromArray(F, acc, a2 + L);
        FloatVector s30 = FloatVector.fromArray(F, acc, a3), s31 = FloatVector.fromArray(F, acc, a3 + L);
        FloatVector s40 = FloatVector.fromArray(F, acc, a4), s41 = FloatVector.fromArray(F, acc, a4 + L);
        FloatVector s50 = FloatVector.fromArray(F, acc, a5), s51 = FloatVector.fromArray(F, acc, a5 + L);
        for (int grp = 0, r = rowsOff + x; grp < groups; grp++) {
            float[] pg = p[grp];
            for (int lane = 0, pj = j * GROUP; lane < GROUP; lane++, r += width, pj++) {
                FloatVector r0 = FloatVector.fromArray(F, rows, r), r1 = FloatVector.fromArray(F, rows, r + L);
                FloatVector w = FloatVector.broadcast(F, pg[pj]);
                s00 = w.fma(r0, s00); s01 = w.fma(r1, s01);
                w = FloatVector.broadcast(F, pg[pj + GROUP]);
                s10 = w.fma(r0, s10); s11 = w.fma(r1, s11);
                w = FloatVector.broadcast(F, pg[pj + 2 * GROUP]);
                s20 = w.fma(r0, s20); s21 = w.fma(r1, s21);
                w = FloatVector.broadcast(F, pg[pj + 3 * GROUP]);
                s30 = w.fma(r0, s30); s31 = w.fma(r1, s31);
                w = FloatVector.broadcast(F, pg[pj + 4 * GROUP]);
                s40 = w.fma(r0, s40); s41 = w.fma(r1, s41);
                w = FloatVector.broadcast(F, pg[pj + 5 * GROUP]);
                s50 = w.fma(r0, s50); s51 = w.fma(r1, s51);
            }
        }
        s00.intoArray(acc, a0); s01.intoArray(acc, a0 + L);
        s10.intoArray(acc, a1); s11.intoArray(acc, a1 + L);
        s20.intoArray(acc, a2); s21.intoArray(acc, a2 + L);
        s30.intoArray(acc, a3); s31.intoArray(acc, a3 + L);
        s40.intoArray(acc, a4); s41.intoArray(acc, a4 + L);
        s50.intoArray(acc, a5); s51.intoArray(acc, a5 + L);
    }

    private static void blockKeyRows4x2(float[][] p, int groups, int j, float[] rows, int rowsOff, int width, int x, float[] acc) {
        int a0 = j * width + x, a1 = a0 + width, a2 = a1 + width, a3 = a2 + width;
        FloatVector s00 = FloatVector.fromArray(F, acc, a0), s01 = FloatVector.fromArray(F, acc, a0 + L);
        FloatVector s10 = FloatVector.fromArray(F, acc, a1), s11 = FloatVector.fromArray(F, acc, a1 + L);
        FloatVector s20 = FloatVector.fromArray(F, acc, a2), s21 = FloatVector.fromArray(F, acc, a2 + L);
        FloatVector s30 = FloatVector.fromArray(F, acc, a3), s31 = FloatVector.fromArray(F, acc, a3 + L);
        for (int grp = 0, r = rowsOff + x; grp < groups; grp++) {
            float[] pg = p[grp];
            for (int lane = 0, pj = j * GROUP; lane < GROUP; lane++, r += width, pj++) {
                FloatVector r0 = FloatVector.fromArray(F, rows, r), r1 = FloatVector.fromArray(F, rows, r + L);
                FloatVector w = FloatVector.broadcast(F, pg[pj]);
                s00 = w.fma(r0, s00); s01 = w.fma(r1, s01);
                w = FloatVector.broadcast(F, pg[pj + GROUP]);
                s10 = w.fma(r0, s10); s11 = w.fma(r1, s11);
                w = FloatVector.broadcast(F, pg[pj + 2 * GROUP]);
                s20 = w.fma(r0, s20); s21 = w.fma(r1, s21);
                w = FloatVector.broadcast(F, pg[pj + 3 * GROUP]);
                s30 = w.fma(r0, s30); s31 = w.fma(r1, s31);
            }
        }
        s00.intoArray(acc, a0); s01.intoArray(acc, a0 + L);
        s10.intoArray(acc, a1); s11.intoArray(acc, a1 + L);
        s20.intoArray(acc, a2); s21.intoArray(acc, a2 + L);
        s30.intoArray(acc, a3); s31.intoArray(acc, a3 + L);
    }

    private static void blockKeyRow(float[][] p, int groups, int j, float[] rows, int rowsOff, int width, int x, float[] acc) {
        int a = j * width + x;
        FloatVector sum = FloatVector.fromArray(F, acc, a);
        for (int grp = 0, r = rowsOff + x; grp < groups; grp++) {
            float[] pg = p[grp];
            for (int lane = 0, pj = j * GROUP; lane < GROUP; lane++, r += width, pj++) {
                sum = FloatVector.broadcast(F, pg[pj]).fma(FloatVector.fromArray(F, rows, r), sum);
            }
        }
        sum.intoArray(acc, a);
    }

    /**
     * The backward's per-tile core for one lane group and keys [from, from+count): probabilities
     * into sT, score gradients dS into dsT (0 wherever the probability is 0, so a key a lane does not
     * attend contributes nothing even if its value row holds a NaN).
     */
    private static void scoreGradients(Scratch s, int grp, int from, int count, int d, int dv, boolean partial) {
        scores(s.kSix, 0, from, count, d, s.curQT, s.curQTOff + grp * d * GROUP, s.sT, 0f);
        scores(s.vSix, 0, from, count, dv, s.curDOT, s.curDOTOff + grp * dv * GROUP, s.dsT, 0f);
        gradientsOfScores(s, grp, from, count, partial);
    }

    /**
     * The rest of {@link #scoreGradients} once S (in s.sT) and dP (in s.dsT) of the group are
     * computed: the modifiers, P, the mask, dS.
     */
    private static void gradientsOfScores(Scratch s, int grp, int from, int count, boolean partial) {
        if (s.mods != null) modifyScores(s, grp, from, count, partial, true, 0);
        float[] sT = s.sT, dsT = s.dsT;
        for (int v = 0; v < 2; v++) {
            int lane0 = v * L, state = s.curStatOff + grp * GROUP + lane0;
            FloatVector lse = FloatVector.fromArray(F, s.curLse2, state);
            for (int j = 0; j < count; j++) {
                int o = j * GROUP + lane0;
                FloatVector x = FloatVector.fromArray(F, sT, o).sub(lse);
                // 2^x exactly as in softmaxStep (see EXP2_P0); x ≤ 0 up to rounding for allowed pairs.
                x = x.blend(EXP2_MIN_ARGUMENT, x.compare(VectorOperators.LT, EXP2_MIN_ARGUMENT));
                FloatVector rounded = x.add(ROUND_MAGIC);
                FloatVector f = x.sub(rounded.sub(ROUND_MAGIC));
                FloatVector poly = f.fma(EXP2_P0, EXP2_P1).fma(f, EXP2_P2).fma(f, EXP2_P3).fma(f, EXP2_P4).fma(f, EXP2_P5);
                FloatVector p = f.fma(poly, ONE).mul(rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats());
                p.intoArray(sT, o);
            }
        }
        // The mask applies to the probabilities, not the scores: a disallowed pair's probability is
        // exactly 0 whatever its score and its row's LSE hold (a NaN LSE marks a row whose own
        // inputs were garbage; 2^(−∞ − NaN) would have let it reach keys it does not attend).
        if (partial) maskScores(s, sT, 0f, from, count);
        for (int v = 0; v < 2; v++) {
            int lane0 = v * L;
            FloatVector delta = FloatVector.fromArray(F, s.curDelta, s.curStatOff + grp * GROUP + lane0);
            for (int j = 0; j < count; j++) {
                int o = j * GROUP + lane0;
                FloatVector p = FloatVector.fromArray(F, sT, o);
                FloatVector.fromArray(F, dsT, o).sub(delta).mul(p).blend(0f, p.eq(0f)).intoArray(dsT, o);
            }
        }
        if (s.mods != null) modifyScoreGradients(s, grp, from, count);
    }


    /**
     * Per lane of the query block: dO rows (transposed into dOT, and zero-padded rows into dOrows),
     * the log-sum-exp in base 2 (+∞ for rows with no allowed key and for padded lanes, so their
     * probabilities are 0) and delta = rowsum(dO ∘ O). Returns whether the dO rows are all finite.
     */
    private static boolean packGradientRows(AttentionCall c, int b, int h, int q0, int rows, Scratch s) {
        AttentionGeometry g = c.g;
        GradientGeometry gg = c.gg;
        int dv = g.shape().valueDim(), lanes = (rows + GROUP - 1) / GROUP * GROUP;
        packTransposed(c.dOut, c.dOutType, gg.dOBase(b, h) + (long) q0 * gg.dORow(), gg.dORow(), dv, rows, 1f, s.dORaw, s.dOT, 0, s.columnOfDv);
        padRows(s.dORaw, dv, lanes, s.dOrows, padded(dv));
        ScalarAttentionKernel.rowStatistics(c, b, h, q0, rows, s.dORaw, s.lse2, s.delta);
        Arrays.fill(s.lse2, rows, lanes, Float.POSITIVE_INFINITY);
        Arrays.fill(s.delta, rows, lanes, 0f);
        return allFinite(s.dORaw, rows * dv);
    }

    /** dst[r][0..width) = src[r][0..width), dst[r][width..paddedWidth) = 0 for r < rows. */
    private static void padRows(float[] src, int width, int rows, float[] dst, int paddedWidth) {
        if (width == paddedWidth) {
            System.arraycopy(src, 0, dst, 0, rows * width);
            return;
        }
        for (int r = 0; r < rows; r++) {
            System.arraycopy(src, r * width, dst, r * paddedWidth, width);
            Arrays.fill(dst, r * paddedWidth + width, (r + 1) * paddedWidth, 0f);
        }
    }

    /**
     * acc[from + j][·] += Σ_lane p[j][lane] · rows[lane][·] for j < count: dv += Pᵀ·dO and
     * dk += dSᵀ·Q, head dimensions in lanes (width is a whole number of vectors), 4 keys × 2 vectors
     * of accumulators per step (14 registers with the loads and broadcasts: fits AVX2's 16).
     * Lanes are summed in order, as the scalar twin does. When some row holds a NaN or an infinity,
     * zero multipliers are skipped instead (a lane that does not attend a key contributes nothing).
     */
    private static void accumulateKeyRows(boolean rowsFinite, float[] p, int from, int count, float[] rows, int rowsOff, int width, float[] acc) {
        if (!rowsFinite) {
            for (int j = 0; j < count; j++) {
                for (int x = 0; x < width; x += L) {
                    int a = (from + j) * width + x;
                    FloatVector sum = FloatVector.fromArray(F, acc, a);
                    for (int lane = 0; lane < GROUP; lane++) {
                        float pj = p[j * GROUP + lane];
                        if (pj != 0f) sum = FloatVector.broadcast(F, pj).fma(FloatVector.fromArray(F, rows, rowsOff + lane * width + x), sum);
                    }
                    sum.intoArray(acc, a);
                }
            }
            return;
        }
        int j = 0;
        for (; j + 4 <= count; j += 4) {
            int x = 0;
            for (; x + 2 * L <= width; x += 2 * L) accumulateKeyRows4x2(p, j, from, rows, rowsOff, width, x, acc);
            for (; x < width; x += L) {
                for (int jj = j; jj < j + 4; jj++) accumulateKeyRow(p, jj, from, rows, rowsOff, width, x, acc);
            }
        }
        for (; j < count; j++) {
            for (int x = 0; x < width; x += L) accumulateKeyRow(p, j, from, rows, rowsOff, width, x, acc);
        }
    }

    private static void accumulateKeyRows4x2(float[] p, int j, int from, float[] rows, int rowsOff, int width, int x, float[] acc) {
        int a0 = (from + j) * width + x, a1 = a0 + width, a2 = a1 + width, a3 = a2 + width;
        FloatVector s00 = FloatVector.fromArray(F, acc, a0), s01 = FloatVector.fromArray(F, acc, a0 + L);
        FloatVector s10 = FloatVector.fromArray(F, acc, a1), s11 = FloatVector.fromArray(F, acc, a1 + L);
        FloatVector s20 = FloatVector.fromArray(F, acc, a2), s21 = FloatVector.fromArray(F, acc, a2 + L);
        FloatVector s30 = FloatVector.fromArray(F, acc, a3), s31 = FloatVector.fromArray(F, acc, a3 + L);
        for (int lane = 0, r = rowsOff + x, pj = j * GROUP; lane < GROUP; lane++, r += width, pj++) {
            FloatVector r0 = FloatVector.fromArray(F, rows, r), r1 = FloatVector.fromArray(F, rows, r + L);
            FloatVector w = FloatVector.broadcast(F, p[pj]);
            s00 = w.fma(r0, s00); s01 = w.fma(r1, s01);
            w = FloatVector.broadcast(F, p[pj + GROUP]);
            s10 = w.fma(r0, s10); s11 = w.fma(r1, s11);
            w = FloatVector.broadcast(F, p[pj + 2 * GROUP]);
            s20 = w.fma(r0, s20); s21 = w.fma(r1, s21);
            w = FloatVector.broadcast(F, p[pj + 3 * GROUP]);
            s30 = w.fma(r0, s30); s31 = w.fma(r1, s31);
        }
        s00.intoArray(acc, a0); s01.intoArray(acc, a0 + L);
        s10.intoArray(acc, a1); s11.intoArray(acc, a1 + L);
        s20.intoArray(acc, a2); s21.intoArray(acc, a2 + L);
        s30.intoArray(acc, a3); s31.intoArray(acc, a3 + L);
    }

    private static void accumulateKeyRow(float[] p, int j, int from, float[] rows, int rowsOff, int width, int x, float[] acc) {
        int a = (from + j) * width + x;
        FloatVector sum = FloatVector.fromArray(F, acc, a);
        for (int lane = 0, r = rowsOff + x, pj = j * GROUP; lane < GROUP; lane++, r += width, pj++) {
            sum = FloatVector.broadcast(F, p[pj]).fma(FloatVector.fromArray(F, rows, r), sum);
        }
        sum.intoArray(acc, a);
    }

    /** dst row r = multiplier · srcT[r/GROUP][·][r%GROUP] for r < rows (transposed accumulators back to rows). */
    private static void writeTransposedRows(MemorySegment dst, long base, long rowStride, int width, int rows, float[] srcT, float multiplier) {
        for (int r = 0; r < rows; r++) {
            long row = base + r * rowStride;
            int o = (r / GROUP) * width * GROUP + r % GROUP, i = 0;
            for (; i + L <= width; i += L) {
                FloatVector.fromArray(F, srcT, o + i * GROUP, OUTPUT_ROW, 0).mul(multiplier)
                        .intoMemorySegment(dst, (row + i) * Float.BYTES, ByteOrder.nativeOrder());
            }
            for (; i < width; i++) dst.setAtIndex(FLOAT, row + i, srcT[o + i * GROUP] * multiplier);
        }
    }

    /** dst row r = srcT[srcOff + (r/GROUP)·width·GROUP + i·GROUP + r%GROUP] for r &lt; rows, i &lt; width. */
    private static void writeTransposedRows(MemorySegment dst, long base, long rowStride, int width, int rows, float[] srcT, int srcOff) {
        for (int r = 0; r < rows; r++) {
            long row = base + r * rowStride;
            int o = srcOff + (r / GROUP) * width * GROUP + r % GROUP, i = 0;
            for (; i + L <= width; i += L) {
                FloatVector.fromArray(F, srcT, o + i * GROUP, OUTPUT_ROW, 0).intoMemorySegment(dst, (row + i) * Float.BYTES, ByteOrder.nativeOrder());
            }
            for (; i < width; i++) dst.setAtIndex(FLOAT, row + i, srcT[o + i * GROUP]);
        }
    }

    /** dst row r += multiplier · srcT[r/GROUP][·][r%GROUP] for r < rows. */
    private static void addTransposedRows(MemorySegment dst, long base, long rowStride, int width, int rows, float[] srcT, float multiplier) {
        for (int r = 0; r < rows; r++) {
            long row = base + r * rowStride;
            int o = (r / GROUP) * width * GROUP + r % GROUP, i = 0;
            for (; i + L <= width; i += L) {
                long at = (row + i) * Float.BYTES;
                FloatVector.fromArray(F, srcT, o + i * GROUP, OUTPUT_ROW, 0).mul(multiplier)
                        .add(FloatVector.fromMemorySegment(F, dst, at, ByteOrder.nativeOrder()))
                        .intoMemorySegment(dst, at, ByteOrder.nativeOrder());
            }
            for (; i < width; i++) dst.setAtIndex(FLOAT, row + i, srcT[o + i * GROUP] * multiplier + dst.getAtIndex(FLOAT, row + i));
        }
    }

    /** dst row r = multiplier · src[r·srcWidth ..][0..width) for r < rows. */
    private static void writeScaledRows(MemorySegment dst, long base, long rowStride, float[] src, int srcWidth, int width, int rows, float multiplier) {
        for (int r = 0; r < rows; r++) {
            long row = base + r * rowStride;
            int i = 0;
            for (; i + L <= width; i += L) {
                FloatVector.fromArray(F, src, r * srcWidth + i).mul(multiplier).intoMemorySegment(dst, (row + i) * Float.BYTES, ByteOrder.nativeOrder());
            }
            for (; i < width; i++) dst.setAtIndex(FLOAT, row + i, src[r * srcWidth + i] * multiplier);
        }
    }

    /**
     * out[r][i] = oT[r/GROUP][i][r%GROUP] / l[r]; rows with no allowed key get 0 and LSE −∞, rows
     * whose sum is NaN get NaN, and rows whose scores left float32's range are reported to the call
     * (see AttentionCall.rowIsUndefined). The running max is in base 2 (see packQueries), hence
     * LSE = m·ln2 + ln(l).
     */
    private static void writeRows(AttentionCall c, int b, int h, int q0, BlockLayout lay, long outBase, long outRow, long lseBase, long lseRow,
                                  int dv, int rows, Scratch s) {
        for (int r = 0; r < rows; r++) {
            float sum = s.l[r];
            if (!(sum > 0) && c.rowIsUndefined(b, h, q0 + r, sum, s.m[r], lay)) sum = Float.NaN;
            float inv = ScalarAttentionKernel.inverseOfSum(sum);
            long row = outBase + r * outRow;
            int o = s.oTBase + (r / GROUP) * dv * GROUP + r % GROUP;
            if (c.outType == ElementType.F32) {
                int i = 0;
                for (; i + L <= dv; i += L) {
                    FloatVector.fromArray(F, s.oT, o + i * GROUP, OUTPUT_ROW, 0).mul(inv)
                            .intoMemorySegment(c.out, (row + i) * Float.BYTES, ByteOrder.nativeOrder());
                }
                for (; i < dv; i++) c.outType.set(c.out, row + i, s.oT[o + i * GROUP] * inv);
            } else {
                writeHalfRow(c.out, c.outType, row, s.oT, o, inv, dv, s);
            }
            if (lseBase >= 0) c.lse.setAtIndex(FLOAT, lseBase + r * lseRow, ScalarAttentionKernel.logSumExp(s.m[r], sum));
        }
    }

    /**
     * out[row + i] = oT[o + i·GROUP]·inv rounded to {@code type} (BF16 or F16), i &lt; dv: the products
     * as the F32 path forms them, rounded by ElementType's own conversions over arrays, then one bulk
     * copy. Element by element through ElementType.set (a type switch and a segment access per
     * value) the output of a half-precision call cost more than the float32 one's.
     */
    private static void writeHalfRow(MemorySegment out, ElementType type, long row, float[] oT, int o, float inv, int dv, Scratch s) {
        if (s.outRow.length < dv) { s.outRow = new float[dv]; s.outBits = new short[dv]; }
        float[] values = s.outRow;
        short[] bits = s.outBits;
        int i = 0;
        for (; i + L <= dv; i += L) FloatVector.fromArray(F, oT, o + i * GROUP, OUTPUT_ROW, 0).mul(inv).intoArray(values, i);
        for (; i < dv; i++) values[i] = oT[o + i * GROUP] * inv;
        if (type == ElementType.BF16) {
            HalfRows.roundToBfloat16(values, dv, bits);
        } else if (type == ElementType.F16) {
            for (int x = 0; x < dv; x++) bits[x] = Float.floatToFloat16(values[x]);
        } else {
            throw new IllegalStateException("writeHalfRow of " + type);
        }
        MemorySegment.copy(bits, 0, out, ValueLayout.JAVA_SHORT_UNALIGNED, row * 2, dv);
    }

    /** Lane k → k·GROUP: gathers L consecutive output dims of one row from the transposed accumulators. */
    private static final int[] OUTPUT_ROW = new int[L];
    static {
        for (int k = 0; k < L; k++) OUTPUT_ROW[k] = k * GROUP;
    }

    // ------------------------------------------------------------------ score modifiers

    /*
     * A score modifier is one more step on the score tile, between the QKᵀ micro-kernel and the
     * masking and softmax (modifyScores), and in the backward pass one more step on dS before it
     * feeds dq and dk (modifyScoreGradients). Without a modifier neither runs: the tile walk is
     * unchanged. Everything is in the kernel's base-2 units (ScoreMod converts biases and caps once
     * per call), and each step is the scalar twin's operation for operation.
     */

    /** Points the scratch at the call's modifier (or none) for one work item whose query block is rows [row0, row0+rows). */
    private static void bindMods(Scratch s, AttentionCall c, int b, int h, int row0, int rows) {
        s.mods = c.mods;
        if (c.mods == null) return;
        s.modBatch = b;
        s.modHead = h;
        s.modRow0 = row0;
        s.modRows = rows;
        s.modQLen = c.g.shape().qLen();
        s.modKvLen = c.g.shape().kvLen();
        s.modStride = s.sT.length;
        s.modPartials = null;
        int need = c.mods.derivativeSlots() * s.modStride;
        if (s.modDerivatives.length < need) s.modDerivatives = new float[need];
    }

    /** A key-major item's query head h: where its tables' gradient partial sums go. */
    private static void bindKeyItem(Scratch s, AttentionCall c, int b, int h, int hk, int kvBlock) {
        s.modHead = h;
        if (c.modPartials == null) return;
        s.modPartials = c.modPartials;
        int steps = c.mods.steps(), perKv = c.g.shape().queryHeadsPerKvHead();
        if (s.modPartialOff.length < steps) s.modPartialOff = new int[steps];
        for (int st = 0; st < steps; st++) {
            if (c.mods.parameter(st) >= 0) s.modPartialOff[st] = c.partialOffset(st, b, hk, kvBlock, h - hk * perKv);
        }
    }

    /**
     * Applies the call's modifiers, in order, to sT[j][lane] for keys [from, from+count) of the tile
     * (raw key modKey0 + from + j) and the lanes of group grp (raw query row modRow0 + grp·GROUP +
     * lane). ALiBi is an int distance per lane, converted and fused-multiply-added (no table). Relative tables are one unaligned vector load per key: the
     * table is indexed by i − j, so a key's lanes are consecutive entries. Key biases are one
     * broadcast per key. Soft-capping is a vector tanh; with {@code derivatives} it keeps 1 − tanh²
     * per score for the backward pass. A function runs element by element, only on pairs some lane
     * may attend. Masked pairs are overwritten by maskScores afterwards.
     */
    private static void modifyScores(Scratch s, int grp, int from, int count, boolean partial, boolean derivatives, int sb) {
        ScoreMod.Plan plan = s.mods;
        float[] sT = s.sT;
        int row0 = s.modRow0 + grp * GROUP, key0 = s.modKey0 + from, h = s.modHead;
        for (int st = 0; st < plan.steps(); st++) {
            int kind = plan.kind(st);
            if (kind == ScoreMod.Plan.LINEAR) {
                FloatVector slope = FloatVector.broadcast(F, plan.slope(st, h));
                int c0 = key0 - row0 - plan.queryOffset();   // j − p of lane 0 and key 0; fits an int (the plan checks qLen + kvLen)
                if (st + 1 < plan.steps() && plan.kind(st + 1) == ScoreMod.Plan.SOFT_CAP && distancesExact(c0, count)) {
                    // One pass for both steps: the scores are loaded and stored once, the sum capped in registers.
                    st++;
                    alibiThenCap(sT, sb, count, c0, plan.slope(st - 1, h), plan.cap(st), plan.inverseCap(st),
                            derivatives ? s.modDerivatives : null, plan.derivativeSlot(st) * s.modStride);
                    continue;
                }
                if (distancesExact(c0, count)) {
                    alibi(sT, sb, count, c0, plan.slope(st, h));
                    continue;
                }
                for (int j = 0; j < count; j++) {
                    for (int v = 0; v < 2; v++) {
                        int o = sb + j * GROUP + v * L;
                        FloatVector distance = (FloatVector) IntVector.broadcast(LANES_AS_INTS, c0 + j - v * L).sub(LANE_INDEX).convert(VectorOperators.I2F, 0);
                        distance.fma(slope, FloatVector.fromArray(F, sT, o)).intoArray(sT, o);
                    }
                }
            } else if (kind == ScoreMod.Plan.DISTANCE) {
                float[] row = plan.row(st, h);
                int base = row0 - key0 + s.modKvLen - 1;
                for (int j = 0; j < count; j++) {
                    int o = sb + j * GROUP;
                    FloatVector.fromArray(F, sT, o).add(FloatVector.fromArray(F, row, base - j)).intoArray(sT, o);
                    FloatVector.fromArray(F, sT, o + L).add(FloatVector.fromArray(F, row, base - j + L)).intoArray(sT, o + L);
                }
            } else if (kind == ScoreMod.Plan.KEY) {
                float[] row = plan.row(st, h);
                for (int j = 0; j < count; j++) {
                    int o = sb + j * GROUP;
                    FloatVector bias = FloatVector.broadcast(F, row[key0 + j]);
                    FloatVector.fromArray(F, sT, o).add(bias).intoArray(sT, o);
                    FloatVector.fromArray(F, sT, o + L).add(bias).intoArray(sT, o + L);
                }
            } else if (kind == ScoreMod.Plan.SOFT_CAP && st == 0 && !derivatives && s.capPolynomialOnly) {
                continue;   // scores() capped them on its way out
            } else if (kind == ScoreMod.Plan.SOFT_CAP) {
                softCap(sT, sb, count, plan.cap(st), plan.inverseCap(st), derivatives ? s.modDerivatives : null, plan.derivativeSlot(st) * s.modStride);
            } else {
                applyFunction(s, plan, st, grp, from, count, partial, derivatives, sb);
            }
        }
    }

    /**
     * Whether the distances c0 + j − lane of a tile's keys j &lt; count and lanes are all exact in
     * float (|·| ≤ 2^24), so that alibiThenCap can step a float distance vector by 1 per key (one
     * add) instead of converting an int vector per key: the same floats either way.
     */
    private static boolean distancesExact(int c0, int count) {
        return Math.abs((long) c0) + count + GROUP <= 1 << 24;
    }

    /**
     * ALiBi on keys [0, count) of the tile: sT += distance·slope by fma, the float distance vectors
     * stepped by 1 per key (exact: see distancesExact) instead of an int vector converted per key
     * and vector: the same floats, three vector operations fewer per vector.
     */
    private static void alibi(float[] sT, int sb, int count, int c0, float slope) {
        FloatVector slopeV = FloatVector.broadcast(F, slope), one = FloatVector.broadcast(F, 1f);
        FloatVector distA = (FloatVector) IntVector.broadcast(LANES_AS_INTS, c0).sub(LANE_INDEX).convert(VectorOperators.I2F, 0);
        FloatVector distB = (FloatVector) IntVector.broadcast(LANES_AS_INTS, c0 - L).sub(LANE_INDEX).convert(VectorOperators.I2F, 0);
        for (int j = 0; j < count; j++) {
            int o = sb + j * GROUP;
            distA.fma(slopeV, FloatVector.fromArray(F, sT, o)).intoArray(sT, o);
            distB.fma(slopeV, FloatVector.fromArray(F, sT, o + L)).intoArray(sT, o + L);
            distA = distA.add(one);
            distB = distB.add(one);
        }
    }

    /**
     * ALiBi then soft-capping in one pass over the tile: the ALiBi sum (float distances stepped by 1 per
     * key, exact: see distancesExact) capped in registers
     * as {@link #softCap} caps it, both vectors of a key interleaved (the same operations, written
     * out: a vector passed to a method C2 does not inline is boxed, 67 MB per call that way). The
     * band between the polynomial and ±cap is computed here too, not through capLanes: ALiBi puts
     * about 40 % of the scores there (standard slopes, cap 50, n = 2048–4096), and the rational's
     * constants stay in registers across keys.
     */
    private static void alibiThenCap(float[] sT, int sb, int count, int c0, float slope, float cap, float inverseCap, float[] deriv, int dOff) {
        FloatVector slopeV = FloatVector.broadcast(F, slope), inv = FloatVector.broadcast(F, inverseCap);
        FloatVector capV = FloatVector.broadcast(F, cap), negativeCap = FloatVector.broadcast(F, -cap);
        // Constants as locals: a static final vector read in the loop is a box C2 may not scalarize.
        FloatVector n0 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N0), n1 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N1);
        FloatVector n2 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N2), n3 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N3);
        FloatVector n4 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N4), n5 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N5);
        FloatVector n6 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N6);
        FloatVector d0 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_D0), d1 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_D1);
        FloatVector d2 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_D2), d3 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_D3);
        FloatVector t0 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P0), t1 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P1);
        FloatVector t2 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P2), t3 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P3);
        FloatVector t4 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P4);
        FloatVector distA = (FloatVector) IntVector.broadcast(LANES_AS_INTS, c0).sub(LANE_INDEX).convert(VectorOperators.I2F, 0);
        FloatVector distB = (FloatVector) IntVector.broadcast(LANES_AS_INTS, c0 - L).sub(LANE_INDEX).convert(VectorOperators.I2F, 0);
        for (int j = 0; j < count; j++) {
            int o = sb + j * GROUP;
            FloatVector xA = distA.fma(slopeV, FloatVector.fromArray(F, sT, o)), xB = distB.fma(slopeV, FloatVector.fromArray(F, sT, o + L));
            distA = distA.add(ONE);
            distB = distB.add(ONE);
            FloatVector yA = xA.mul(inv), yB = xB.mul(inv);
            FloatVector zA = yA.mul(yA), zB = yB.mul(yB);
            FloatVector cA, cB;
            // Whole-key tests first, on the smaller and larger z of each lane pair (one compare each;
            // a NaN z fails both and takes the band, as in the scalar twin): most keys are all
            // saturated or all in the polynomial's range and need no per-vector masks.
            if (zA.min(zB).compare(VectorOperators.GE, ScalarAttentionKernel.TANH_SATURATED_SQUARED).allTrue()) {   // the far keys of steep slopes: every lane ±cap
                cA = capV.blend(negativeCap, xA.compare(VectorOperators.LT, 0f));
                cB = capV.blend(negativeCap, xB.compare(VectorOperators.LT, 0f));
            } else if (zA.max(zB).compare(VectorOperators.LT, ScalarAttentionKernel.TANH_SMALL_SQUARED).allTrue()) {   // near keys: every lane on the polynomial
                cA = zA.fma(t0, t1).fma(zA, t2).fma(zA, t3).fma(zA, t4).mul(zA).fma(xA, xA);
                cB = zB.fma(t0, t1).fma(zB, t2).fma(zB, t3).fma(zB, t4).mul(zB).fma(xB, xB);
            } else {
                VectorMask<Float> smallA = zA.compare(VectorOperators.LT, ScalarAttentionKernel.TANH_SMALL_SQUARED), smallB = zB.compare(VectorOperators.LT, ScalarAttentionKernel.TANH_SMALL_SQUARED);
                VectorMask<Float> fullA = zA.compare(VectorOperators.GE, ScalarAttentionKernel.TANH_SATURATED_SQUARED);
                VectorMask<Float> fullB = zB.compare(VectorOperators.GE, ScalarAttentionKernel.TANH_SATURATED_SQUARED);
                if (smallA.or(fullA).and(smallB.or(fullB)).allTrue()) {   // the polynomial's range and ±cap, no band lane
                    cA = zA.fma(t0, t1).fma(zA, t2).fma(zA, t3).fma(zA, t4).mul(zA).fma(xA, xA);
                    cB = zB.fma(t0, t1).fma(zB, t2).fma(zB, t3).fma(zB, t4).mul(zB).fma(xB, xB);
                    cA = cA.blend(capV.blend(negativeCap, xA.compare(VectorOperators.LT, 0f)), fullA);
                    cB = cB.blend(capV.blend(negativeCap, xB.compare(VectorOperators.LT, 0f)), fullB);
                } else {   // the band between: ScalarAttentionKernel.softCap's rational, x·N(z)/D(z), then ±cap and the polynomial where lanes need them
                    FloatVector nA = zA.fma(n6, n5).fma(zA, n4).fma(zA, n3).fma(zA, n2).fma(zA, n1).fma(zA, n0);
                    FloatVector nB = zB.fma(n6, n5).fma(zB, n4).fma(zB, n3).fma(zB, n2).fma(zB, n1).fma(zB, n0);
                    FloatVector dA = zA.fma(d3, d2).fma(zA, d1).fma(zA, d0), dB = zB.fma(d3, d2).fma(zB, d1).fma(zB, d0);
                    cA = xA.mul(nA).div(dA);
                    cB = xB.mul(nB).div(dB);
                    if (fullA.or(fullB).anyTrue()) {
                        cA = cA.blend(capV.blend(negativeCap, xA.compare(VectorOperators.LT, 0f)), fullA);
                        cB = cB.blend(capV.blend(negativeCap, xB.compare(VectorOperators.LT, 0f)), fullB);
                    }
                    if (smallA.or(smallB).anyTrue()) {
                        cA = cA.blend(zA.fma(t0, t1).fma(zA, t2).fma(zA, t3).fma(zA, t4).mul(zA).fma(xA, xA), smallA);
                        cB = cB.blend(zB.fma(t0, t1).fma(zB, t2).fma(zB, t3).fma(zB, t4).mul(zB).fma(xB, xB), smallB);
                    }
                }
            }
            cA.intoArray(sT, o);
            cB.intoArray(sT, o + L);
            if (deriv != null) {
                FloatVector tA = cA.mul(inv), tB = cB.mul(inv);
                tA.neg().fma(tA, ONE).intoArray(deriv, dOff + o - sb);
                tB.neg().fma(tB, ONE).intoArray(deriv, dOff + o - sb + L);
            }
        }
    }

    /**
     * sT[j][·] = cap·tanh(sT[j][·]/cap) for j &lt; count, and 1 − tanh² into deriv (if not null) at
     * {@code dOff}, both vectors of a key interleaved. With y = x/cap and z = y²: below z = 0.625²
     * Cephes' tanhf polynomial, scaled by cap in the x domain, x + x·z·P(z) (cap·y would cost a
     * multiply and a rounding); ±cap from |y| = 7.9053 (see ScalarAttentionKernel.TANH_SATURATED_SQUARED);
     * else {@link #capLanes} (a rational, one division), only when some lane of the key needs it.
     * Without ALiBi and with Gemma 2's cap of 50 (|s| &lt; 31 in base e) that is rare; after ALiBi
     * most far keys lie beyond 7.9·cap and take the ±cap branch. A key whose lanes all lie below
     * z = 0.625² is found with one compare on max(zA, zB) and skips the four range masks (and a
     * tile whose scores are all bounded below that is capped by scores() as it computes them).
     * tanh for the derivative is the capped score times 1/cap. ScalarAttentionKernel.softCap does
     * the same operations per lane.
     */
    private static void softCap(float[] sT, int sb, int count, float cap, float inverseCap, float[] deriv, int dOff) {
        FloatVector inv = FloatVector.broadcast(F, inverseCap);
        FloatVector capV = FloatVector.broadcast(F, cap), negativeCap = FloatVector.broadcast(F, -cap);
        for (int j = 0; j < count; j++) {
            int o = sb + j * GROUP;
            FloatVector xA = FloatVector.fromArray(F, sT, o), xB = FloatVector.fromArray(F, sT, o + L);
            FloatVector yA = xA.mul(inv), yB = xB.mul(inv);
            FloatVector zA = yA.mul(yA), zB = yB.mul(yB);
            FloatVector cA, cB;
            if (zA.max(zB).compare(VectorOperators.LT, ScalarAttentionKernel.TANH_SMALL_SQUARED).allTrue()) {
                // Every lane on the polynomial (nearly every key without ALiBi): one compare for the
                // key instead of four masks; a NaN z fails it and goes to capLanes, as in the scalar twin.
                cA = zA.fma(TANH_P0, TANH_P1).fma(zA, TANH_P2).fma(zA, TANH_P3).fma(zA, TANH_P4).mul(zA).fma(xA, xA);
                cB = zB.fma(TANH_P0, TANH_P1).fma(zB, TANH_P2).fma(zB, TANH_P3).fma(zB, TANH_P4).mul(zB).fma(xB, xB);
                cA.intoArray(sT, o);
                cB.intoArray(sT, o + L);
            } else {
                VectorMask<Float> smallA = zA.compare(VectorOperators.LT, ScalarAttentionKernel.TANH_SMALL_SQUARED), smallB = zB.compare(VectorOperators.LT, ScalarAttentionKernel.TANH_SMALL_SQUARED);
                VectorMask<Float> fullA = zA.compare(VectorOperators.GE, ScalarAttentionKernel.TANH_SATURATED_SQUARED);
                VectorMask<Float> fullB = zB.compare(VectorOperators.GE, ScalarAttentionKernel.TANH_SATURATED_SQUARED);
                if (smallA.or(fullA).and(smallB.or(fullB)).allTrue()) {   // ALiBi's far keys: tanh rounds to ±1
                    cA = zA.fma(TANH_P0, TANH_P1).fma(zA, TANH_P2).fma(zA, TANH_P3).fma(zA, TANH_P4).mul(zA).fma(xA, xA);
                    cB = zB.fma(TANH_P0, TANH_P1).fma(zB, TANH_P2).fma(zB, TANH_P3).fma(zB, TANH_P4).mul(zB).fma(xB, xB);
                    cA = cA.blend(capV.blend(negativeCap, xA.compare(VectorOperators.LT, 0f)), fullA);
                    cB = cB.blend(capV.blend(negativeCap, xB.compare(VectorOperators.LT, 0f)), fullB);
                    cA.intoArray(sT, o);
                    cB.intoArray(sT, o + L);
                } else {
                    capLanes(sT, o, cap, inverseCap);
                    cA = FloatVector.fromArray(F, sT, o);
                    cB = FloatVector.fromArray(F, sT, o + L);
                }
            }
            if (deriv != null) {
                FloatVector tA = cA.mul(inv), tB = cB.mul(inv);
                tA.neg().fma(tA, ONE).intoArray(deriv, dOff + o - sb);
                tB.neg().fma(tB, ONE).intoArray(deriv, dOff + o - sb + L);
            }
        }
    }

    /**
     * Soft-caps the two vectors sT[o..o+2L) (one key's lanes) in place, every lane, the two
     * interleaved: the rational x·N(z)/D(z) of ScalarAttentionKernel.softCap; ±cap from |y| = 7.9053 and
     * the polynomial below z = 0.625², each blended in only when some lane needs it (a key's lanes are
     * 2L consecutive queries, whose scores mostly fall in one range). Arrays in, arrays out: no
     * vector crosses the call.
     */
    private static void capLanes(float[] sT, int o, float cap, float inverseCap) {
        FloatVector xA = FloatVector.fromArray(F, sT, o), xB = FloatVector.fromArray(F, sT, o + L);
        FloatVector yA = xA.mul(inverseCap), yB = xB.mul(inverseCap);
        FloatVector zA = yA.mul(yA), zB = yB.mul(yB);
        FloatVector nA = zA.fma(TANH_N6, TANH_N5).fma(zA, TANH_N4).fma(zA, TANH_N3).fma(zA, TANH_N2).fma(zA, TANH_N1).fma(zA, TANH_N0);
        FloatVector nB = zB.fma(TANH_N6, TANH_N5).fma(zB, TANH_N4).fma(zB, TANH_N3).fma(zB, TANH_N2).fma(zB, TANH_N1).fma(zB, TANH_N0);
        FloatVector dA = zA.fma(TANH_D3, TANH_D2).fma(zA, TANH_D1).fma(zA, TANH_D0), dB = zB.fma(TANH_D3, TANH_D2).fma(zB, TANH_D1).fma(zB, TANH_D0);
        FloatVector cA = xA.mul(nA).div(dA), cB = xB.mul(nB).div(dB);
        VectorMask<Float> fullA = zA.compare(VectorOperators.GE, ScalarAttentionKernel.TANH_SATURATED_SQUARED);
        VectorMask<Float> fullB = zB.compare(VectorOperators.GE, ScalarAttentionKernel.TANH_SATURATED_SQUARED);
        if (fullA.or(fullB).anyTrue()) {
            FloatVector capV = FloatVector.broadcast(F, cap);
            cA = cA.blend(capV.blend(-cap, xA.compare(VectorOperators.LT, 0f)), fullA);
            cB = cB.blend(capV.blend(-cap, xB.compare(VectorOperators.LT, 0f)), fullB);
        }
        VectorMask<Float> smallA = zA.compare(VectorOperators.LT, ScalarAttentionKernel.TANH_SMALL_SQUARED);
        VectorMask<Float> smallB = zB.compare(VectorOperators.LT, ScalarAttentionKernel.TANH_SMALL_SQUARED);
        if (smallA.or(smallB).anyTrue()) {
            cA = cA.blend(zA.fma(TANH_P0, TANH_P1).fma(zA, TANH_P2).fma(zA, TANH_P3).fma(zA, TANH_P4).mul(zA).fma(xA, xA), smallA);
            cB = cB.blend(zB.fma(TANH_P0, TANH_P1).fma(zB, TANH_P2).fma(zB, TANH_P3).fma(zB, TANH_P4).mul(zB).fma(xB, xB), smallB);
        }
        cA.intoArray(sT, o);
        cB.intoArray(sT, o + L);
    }

    /** Lane i holds i. */
    private static final IntVector LANE_INDEX = IntVector.zero(VectorConfig.INTS).addIndex(1);

    private static final FloatVector TANH_P0 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P0), TANH_P1 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P1);
    private static final FloatVector TANH_P2 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P2), TANH_P3 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P3);
    private static final FloatVector TANH_P4 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_P4);
    private static final FloatVector TANH_N0 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N0), TANH_N1 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N1);
    private static final FloatVector TANH_N2 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N2), TANH_N3 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N3);
    private static final FloatVector TANH_N4 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N4), TANH_N5 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N5);
    private static final FloatVector TANH_N6 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_N6);
    private static final FloatVector TANH_D0 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_D0), TANH_D1 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_D1);
    private static final FloatVector TANH_D2 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_D2), TANH_D3 = FloatVector.broadcast(F, ScalarAttentionKernel.TANH_D3);

    /**
     * A user function on the pairs of the group that some lane may attend (padded lanes and
     * masked pairs are skipped: the function never sees a pair the pattern excludes), one call per
     * score, in the scalar twin's units and order (derivative first).
     */
    private static void applyFunction(Scratch s, ScoreMod.Plan plan, int st, int grp, int from, int count, boolean partial, boolean derivatives, int sb) {
        ScoreMod.Function fn = plan.function(st), derivative = derivatives ? plan.derivative(st) : null;
        float[] sT = s.sT, deriv = s.modDerivatives;
        int dOff = plan.derivativeSlot(st) * s.modStride, row0 = s.modRow0 + grp * GROUP, key0 = s.modKey0 + from;
        for (int j = 0; j < count; j++) {
            for (int lane = 0; lane < GROUP; lane++) {
                int o = j * GROUP + lane, i = row0 + lane;
                if (grp * GROUP + lane >= s.modRows || (partial && !laneAllows(s, from + j, lane))) {
                    if (derivatives) deriv[dOff + o] = 1f;
                    continue;
                }
                double natural = sT[sb + o] * ScalarAttentionKernel.LN2_D;
                if (derivative != null) deriv[dOff + o] = (float) derivative.apply(s.modBatch, s.modHead, i, key0 + j, natural);
                sT[sb + o] = (float) (fn.apply(s.modBatch, s.modHead, i, key0 + j, natural) * ScalarAttentionKernel.LOG2E_D);
            }
        }
    }

    /** Whether lane {@code lane} may attend key {@code key} of the tile (after laneMasks). */
    private static boolean laneAllows(Scratch s, int key, int lane) {
        if (s.intervals) return key >= s.firstKey[lane] && key <= s.lastKey[lane];
        return lane < 64 && ((s.laneMask[key] >>> lane) & 1L) != 0;
    }

    /**
     * The backward pass through the modifiers, last step first, on dS of keys [from, from+count) of
     * group grp (sT holds the probabilities): a nonlinear step multiplies by its kept derivative
     * (0 wherever the probability is 0, so nothing from a pair not attended leaks in); a learnable
     * table adds the gradient reaching it into the item's partial sums, lane by lane, key by key
     * (the order of the scalar twin's rows and keys).
     */
    private static void modifyScoreGradients(Scratch s, int grp, int from, int count) {
        ScoreMod.Plan plan = s.mods;
        float[] sT = s.sT, dsT = s.dsT;
        for (int st = plan.steps() - 1; st >= 0; st--) {
            int slot = plan.derivativeSlot(st);
            if (slot >= 0) {
                int dOff = slot * s.modStride;
                for (int j = 0; j < count; j++) {
                    for (int v = 0; v < 2; v++) {
                        int o = j * GROUP + v * L;
                        FloatVector p = FloatVector.fromArray(F, sT, o);
                        FloatVector.fromArray(F, dsT, o).mul(FloatVector.fromArray(F, s.modDerivatives, dOff + o)).blend(0f, p.eq(0f)).intoArray(dsT, o);
                    }
                }
            } else if (s.modPartials != null && plan.parameter(st) >= 0) {
                int[] buckets = plan.buckets(st);
                float[] partials = s.modPartials;
                int off = s.modPartialOff[st], row0 = s.modRow0 + grp * GROUP, key0 = s.modKey0 + from;
                int lanes = Math.min(GROUP, s.modRows - grp * GROUP);
                for (int lane = 0; lane < lanes; lane++) {
                    int base = row0 + lane - key0 + s.modKvLen - 1;
                    for (int j = 0; j < count; j++) {
                        float g = dsT[j * GROUP + lane];
                        if (g != 0f) partials[off + buckets[base - j]] += g;
                    }
                }
            }
        }
    }
}
