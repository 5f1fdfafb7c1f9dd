package io.tessera.cpu;

import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.GradientGeometry;
import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.ElementType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The fused block-sparse attention kernel in plain Java: the readable twin of
 * {@link SimdAttentionKernel}, one query row where the SIMD kernel has one lane. Same tile walk
 * (query-major for the forward pass and dq, key-major for dk and dv), same base-2 online softmax
 * with the queries pre-scaled by scale·log2(e), same polynomial 2^x, and every sum taken in the
 * same order with fused multiply-adds, so the two produce the same floats (up to the sign of a
 * zero) and a randomized test compares them exactly. A key a row does not attend contributes
 * nothing, NaN or not: its probability is 0 and zero multipliers are skipped. Half-precision
 * inputs are widened element by element as they are read ({@link ElementType#get}: exact, so the
 * same floats as the SIMD kernel's widening while packing), and a half-precision output is rounded
 * once, when it is stored.
 */
final class ScalarAttentionKernel {
    private ScalarAttentionKernel() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final float LOG2E = 1.44269504088896341f;
    static final float LN2 = 0.6931471805599453f;

    static final class Scratch {
        float[] q = new float[0];        // [blockQ][D]  queries · scale · log2(e)
        float[] qRaw = new float[0];     // [blockQ][D]  queries as given (dk needs them)
        float[] dO = new float[0];       // [blockQ][Dv] loss gradient rows
        float[] acc = new float[0];      // [blockQ][Dv] output (forward) or [blockQ][D] dq accumulators
        float[] m = new float[0], l = new float[0];        // [blockQ] running max (base 2) and sum
        float[] lse2 = new float[0], delta = new float[0]; // [blockQ] backward row statistics
        float[] e = new float[0];        // [blockKV]    a row's probabilities in the tile
        float[] ds = new float[0];       // [blockKV]    a row's score gradients in the tile
        float[] dqTile = new float[0];   // [D]          a row's dq contribution from one tile
        float probability;               // P of the last scoreGradient call
        float[] dk = new float[0], dv = new float[0];      // [blockKV][D], [blockKV][Dv]
        long[] mask = new long[0];
        // Score modifiers (see modified): the call's plan, null when it has none, and where the block sits.
        ScoreMod.Plan mods;
        int modBatch, modHead, modRow0, modKvLen;
        float[] modDerivatives = new float[0];   // [slot] d(step output)/d(step input) of the last modified score
        float[] modPartials;                     // a key-major item's table-gradient partial sums, or null
        int[] modPartialOff = new int[0];        // [step] where its table's partial sums start

        /** What the buffers hold now (see {@link ThreadScratch}). */
        long bytes() {
            return ThreadScratch.bytesOf(q, qRaw, dO, acc, m, l, lse2, delta, e, ds, dqTile, dk, dv, modDerivatives) + 8L * mask.length;
        }

        void ensure(int d, int dv, int blockQ, int blockKV, int words) {
            int width = Math.max(d, dv);
            if (q.length < blockQ * d) { q = new float[blockQ * d]; qRaw = new float[blockQ * d]; }
            if (dO.length < blockQ * dv) dO = new float[blockQ * dv];
            if (acc.length < blockQ * width) acc = new float[blockQ * width];
            if (m.length < blockQ) { m = new float[blockQ]; l = new float[blockQ]; lse2 = new float[blockQ]; delta = new float[blockQ]; }
            if (e.length < blockKV) { e = new float[blockKV]; ds = new float[blockKV]; }
            if (dqTile.length < d) dqTile = new float[d];
            if (this.dk.length < blockKV * d) this.dk = new float[blockKV * d];
            if (this.dv.length < blockKV * dv) this.dv = new float[blockKV * dv];
            if (mask.length < blockQ * words) mask = new long[blockQ * words];
        }
    }

    private static final ThreadScratch<Scratch> SCRATCH = ThreadScratch.of(Scratch::new, Scratch::bytes);

    /** Output rows (and LSE) of one query block of one (batch, head). */
    static void queryBlock(AttentionCall c, int b, int h, int qBlock) {
        AttentionGeometry g = c.g;
        BlockLayout lay = c.layouts.forHead(h);
        int d = g.shape().headDim(), dv = g.shape().valueDim(), kvLen = g.shape().kvLen();
        int blockQ = lay.blockQ(), blockKV = lay.blockKV(), words = lay.maskWordsPerRow();
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, lay.rowsPerBlock(), lay.keysPerBlock(), words);
        int hk = g.shape().kvHeadOf(h), q0 = qBlock * blockQ, rows = Math.min(blockQ, g.shape().qLen() - q0);
        loadQueries(c, b, h, q0, rows, s);
        bindMods(s, c, b, h, q0);
        Arrays.fill(s.m, 0, rows, Float.NEGATIVE_INFINITY);
        Arrays.fill(s.l, 0, rows, 0f);
        Arrays.fill(s.acc, 0, rows * dv, 0f);
        int[] offsets = lay.rowOffsets(), cols = lay.colIndices();
        byte[] kinds = lay.kinds();
        for (int t = offsets[qBlock]; t < offsets[qBlock + 1]; t++) {
            int kv0 = cols[t] * blockKV, n = Math.min(blockKV, kvLen - kv0);
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial) lay.fillTileMask(t, s.mask);
            for (int r = 0; r < rows; r++) {
                if (partial && rowIsEmpty(s.mask, r, words)) continue;
                // Scores in base 2, masked to −∞, and their max.
                float tileMax = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) {
                    float score = allowed(partial, s.mask, r, words, j) ? modified(s, r, kv0 + j, score(c, g, b, hk, kv0 + j, s.q, r * d, d)) : Float.NEGATIVE_INFINITY;
                    s.e[j] = score;
                    tileMax = larger(tileMax, score);
                }
                // Online softmax step: a row that has seen only masked keys subtracts 0, so 2^(−∞ − (−∞)) never occurs.
                float mOld = s.m[r], mNew = larger(mOld, tileMax), shift = mNew == Float.NEGATIVE_INFINITY ? 0f : mNew;
                float total = 0f;
                for (int j = 0; j < n; j++) {
                    s.e[j] = exp2(s.e[j] - shift);
                    total += s.e[j];
                }
                float alpha = exp2(mOld - shift);
                // The SIMD kernel sums α with the probabilities (one 2^x loop) and takes it off again.
                float sum = (total + alpha) - alpha;
                s.l[r] = Math.fma(alpha, s.l[r], sum);
                s.m[r] = mNew;
                int acc = r * dv;
                if (alpha != 1f) for (int x = 0; x < dv; x++) s.acc[acc + x] *= alpha;
                for (int j = 0; j < n; j++) {
                    if (s.e[j] != 0f) addScaledRow(s.e[j], c.v, c.vType, g.vBase(b, hk) + (long) (kv0 + j) * g.vRow(), s.acc, acc, dv);
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            long oRow = g.oBase(b, h) + (long) (q0 + r) * g.oRow();
            float sum = s.l[r];
            if (!(sum > 0) && c.rowIsUndefined(b, h, q0 + r, sum, s.m[r], lay)) sum = Float.NaN;
            float inv = inverseOfSum(sum);
            for (int x = 0; x < dv; x++) c.outType.set(c.out, oRow + x, s.acc[r * dv + x] * inv);
            if (c.lse != null) c.lse.setAtIndex(FLOAT, g.lBase(b, h) + (long) (q0 + r) * g.lRow(), logSumExp(s.m[r], sum));
        }
    }

    /** 1/sum for a row's softmax sum: 0 for a row with no allowed key (output 0), NaN for a NaN sum. */
    static float inverseOfSum(float sum) {
        return sum > 0 ? 1f / sum : sum == 0f ? 0f : Float.NaN;
    }

    /**
     * A row's log-sum-exp from its base-2 running max and its sum: −∞ only for a row with no allowed
     * key (sum 0), NaN for a NaN sum (a NaN input), so −∞ keeps meaning "fully masked".
     */
    static float logSumExp(float max2, float sum) {
        return sum > 0 ? max2 * LN2 + (float) Math.log(sum) : sum == 0f ? Float.NEGATIVE_INFINITY : Float.NaN;
    }

    /** dq rows of one query block of one (batch, head): dq = scale · Σ_j dS_j · k_j. */
    static void queryBlockGradients(AttentionCall c, int b, int h, int qBlock) {
        AttentionGeometry g = c.g;
        BlockLayout lay = c.layouts.forHead(h);
        int d = g.shape().headDim(), dv = g.shape().valueDim(), kvLen = g.shape().kvLen();
        int blockQ = lay.blockQ(), blockKV = lay.blockKV(), words = lay.maskWordsPerRow();
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, lay.rowsPerBlock(), lay.keysPerBlock(), words);
        int hk = g.shape().kvHeadOf(h), q0 = qBlock * blockQ, rows = Math.min(blockQ, g.shape().qLen() - q0);
        loadQueries(c, b, h, q0, rows, s);
        loadGradientRows(c, b, h, q0, rows, s);
        bindMods(s, c, b, h, q0);
        Arrays.fill(s.acc, 0, rows * d, 0f);
        int[] offsets = lay.rowOffsets(), cols = lay.colIndices();
        byte[] kinds = lay.kinds();
        for (int t = offsets[qBlock]; t < offsets[qBlock + 1]; t++) {
            int kv0 = cols[t] * blockKV, n = Math.min(blockKV, kvLen - kv0);
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial) lay.fillTileMask(t, s.mask);
            for (int r = 0; r < rows; r++) {
                if (partial && rowIsEmpty(s.mask, r, words)) continue;
                tileGradients(c, g, b, hk, kv0, n, partial, s, r, words, true);
                // dq += scale · (this tile's contribution), tile by tile as the single-pass schedule adds them.
                for (int x = 0; x < d; x++) s.acc[r * d + x] = s.dqTile[x] * g.scale() + s.acc[r * d + x];
            }
        }
        GradientGeometry gg = c.gg;
        for (int r = 0; r < rows; r++) {
            long row = gg.dqBase(b, h) + (long) (q0 + r) * gg.dqRow();
            for (int x = 0; x < d; x++) c.dq.setAtIndex(FLOAT, row + x, s.acc[r * d + x]);
        }
    }

    /**
     * Row r's probabilities and score gradients for one tile's keys, into {@code s.e} and {@code s.ds},
     * and with {@code withDq} its dq contribution Σ_j dS_j · k_j (unscaled) into {@code s.dqTile}.
     */
    private static void tileGradients(AttentionCall c, AttentionGeometry g, int b, int hk, int kv0, int n, boolean partial, Scratch s, int r, int words,
                                      boolean withDq) {
        int d = g.shape().headDim(), dv = g.shape().valueDim();
        Arrays.fill(s.dqTile, 0, d, 0f);
        for (int j = 0; j < n; j++) {
            if (!allowed(partial, s.mask, r, words, j)) {
                s.e[j] = 0f;
                s.ds[j] = 0f;
                continue;
            }
            float ds = scoreGradient(c, g, b, hk, kv0 + j, s, r, d, dv);
            s.e[j] = s.probability;
            s.ds[j] = ds;
            if (withDq && ds != 0f) addScaledRow(ds, c.k, c.kType, g.kBase(b, hk) + (long) (kv0 + j) * g.kRow(), s.dqTile, 0, d);
        }
    }

    /**
     * dq, dk and dv of one (batch, key/value head) in one pass over its key blocks, adding each
     * tile's dq contribution to the dq rows in key-block order: the same bits as the two-pass
     * schedule, which adds them in the same order.
     */
    static void headGradients(AttentionCall c, int b, int hk) {
        GradientGeometry gg = c.gg;
        int perKv = c.g.shape().queryHeadsPerKvHead(), d = c.g.shape().headDim();
        for (int h = hk * perKv; h < (hk + 1) * perKv; h++) zeroRows(c.dq, gg.dqBase(b, h), gg.dqRow(), d, c.g.shape().qLen());
        for (int kvBlock = 0; kvBlock < c.layouts.first().kvBlocks(); kvBlock++) keyBlockGradients(c, b, hk, kvBlock, true);
    }

    /**
     * dk and dv rows of one key block of one (batch, key/value head), summed over its query heads
     * in head order, then over the key block's tiles in query-block order, then over rows:
     * dv_j = Σ_i P_ij · dO_i, dk_j = scale · Σ_i dS_ij · q_i.
     */
    static void keyBlockGradients(AttentionCall c, int b, int hk, int kvBlock, boolean addDq) {
        AttentionGeometry g = c.g;
        GradientGeometry gg = c.gg;
        BlockLayout first = c.layouts.first();
        int d = g.shape().headDim(), dv = g.shape().valueDim(), blockQ = first.blockQ(), blockKV = first.blockKV();
        int words = first.maskWordsPerRow(), perKv = g.shape().queryHeadsPerKvHead();
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, first.rowsPerBlock(), first.keysPerBlock(), words);
        int kv0 = kvBlock * blockKV, n = Math.min(blockKV, g.shape().kvLen() - kv0);
        Arrays.fill(s.dk, 0, n * d, 0f);
        Arrays.fill(s.dv, 0, n * dv, 0f);
        bindMods(s, c, b, hk * perKv, 0);
        for (int h = hk * perKv; h < (hk + 1) * perKv; h++) {
            BlockLayout lay = c.layouts.forHead(h);
            int[] colOffsets = lay.colOffsets(), rowIndices = lay.rowIndices(), tiles = lay.transposedTiles();
            byte[] kinds = lay.kinds();
            if (s.mods != null) bindKeyItem(s, c, b, h, hk, kvBlock);
            for (int e = colOffsets[kvBlock]; e < colOffsets[kvBlock + 1]; e++) {
                int t = tiles[e], q0 = rowIndices[e] * blockQ, rows = Math.min(blockQ, g.shape().qLen() - q0);
                boolean partial = kinds[t] == TileKind.PARTIAL.code();
                if (partial) lay.fillTileMask(t, s.mask);
                s.modRow0 = q0;
                loadQueries(c, b, h, q0, rows, s);
                loadGradientRows(c, b, h, q0, rows, s);
                for (int r = 0; r < rows; r++) {
                    if (partial && rowIsEmpty(s.mask, r, words)) continue;
                    tileGradients(c, g, b, hk, kv0, n, partial, s, r, words, addDq);
                    for (int j = 0; j < n; j++) {
                        float p = s.e[j], ds = s.ds[j];
                        if (p != 0f) {
                            for (int x = 0; x < dv; x++) s.dv[j * dv + x] = Math.fma(p, s.dO[r * dv + x], s.dv[j * dv + x]);
                        }
                        if (ds != 0f) {
                            for (int x = 0; x < d; x++) s.dk[j * d + x] = Math.fma(ds, s.qRaw[r * d + x], s.dk[j * d + x]);
                        }
                    }
                    if (addDq) {
                        long row = gg.dqBase(b, h) + (long) (q0 + r) * gg.dqRow();
                        for (int x = 0; x < d; x++) c.dq.setAtIndex(FLOAT, row + x, s.dqTile[x] * g.scale() + c.dq.getAtIndex(FLOAT, row + x));
                    }
                }
            }
        }
        for (int j = 0; j < n; j++) {
            long kRow = gg.dkBase(b, hk) + (long) (kv0 + j) * gg.dkRow(), vRow = gg.dvBase(b, hk) + (long) (kv0 + j) * gg.dvRow();
            for (int x = 0; x < d; x++) c.dk.setAtIndex(FLOAT, kRow + x, s.dk[j * d + x] * g.scale());
            for (int x = 0; x < dv; x++) c.dv.setAtIndex(FLOAT, vRow + x, s.dv[j * dv + x]);
        }
    }

    /**
     * dS of row r and key {@code key}: P = 2^(s − lse₂), dP = dO·v,
     * dS = P·(dP − delta), and 0 wherever P is 0; P is left in {@code s.probability}.
     */
    private static float scoreGradient(AttentionCall c, AttentionGeometry g, int b, int hk, int key, Scratch s, int r, int d, int dv) {
        float p = exp2(modified(s, r, key, score(c, g, b, hk, key, s.q, r * d, d)) - s.lse2[r]);
        s.probability = p;
        long vRow = g.vBase(b, hk) + (long) key * g.vRow();
        float dp = 0f;
        for (int x = 0; x < dv; x++) dp = Math.fma(s.dO[r * dv + x], c.vType.get(c.v, vRow + x), dp);
        return modifiedGradient(s, r, key, p, p == 0f ? 0f : (dp - s.delta[r]) * p);
    }

    /** The base-2 score of query row {@code r} (pre-scaled, in {@code q}) and a key: fma in dimension order. */
    private static float score(AttentionCall c, AttentionGeometry g, int b, int hk, int key, float[] q, int qOff, int d) {
        long kRow = g.kBase(b, hk) + (long) key * g.kRow();
        float dot = 0f;
        for (int x = 0; x < d; x++) dot = Math.fma(q[qOff + x], c.kType.get(c.k, kRow + x), dot);
        return dot;
    }

    private static void addScaledRow(float p, MemorySegment src, ElementType type, long row, float[] acc, int accOff, int width) {
        for (int x = 0; x < width; x++) acc[accOff + x] = Math.fma(p, type.get(src, row + x), acc[accOff + x]);
    }

    private static void loadQueries(AttentionCall c, int b, int h, int q0, int rows, Scratch s) {
        AttentionGeometry g = c.g;
        int d = g.shape().headDim();
        float qScale = g.scale() * LOG2E;
        for (int r = 0; r < rows; r++) {
            long qRow = g.qBase(b, h) + (long) (q0 + r) * g.qRow();
            for (int x = 0; x < d; x++) {
                float value = c.qType.get(c.q, qRow + x);
                s.qRaw[r * d + x] = value;
                s.q[r * d + x] = value * qScale;
            }
        }
    }

    private static void loadGradientRows(AttentionCall c, int b, int h, int q0, int rows, Scratch s) {
        GradientGeometry gg = c.gg;
        int dv = c.g.shape().valueDim();
        for (int r = 0; r < rows; r++) {
            long row = gg.dOBase(b, h) + (long) (q0 + r) * gg.dORow();
            for (int x = 0; x < dv; x++) s.dO[r * dv + x] = c.dOutType.get(c.dOut, row + x);
        }
        rowStatistics(c, b, h, q0, rows, s.dO, s.lse2, s.delta);
    }

    /**
     * The backward pass's per-row statistics, shared by both kernels: the log-sum-exp in base 2
     * (+∞ for a row with no allowed key, so all its probabilities are 0) and
     * delta = rowsum(dO ∘ O), an fma chain in dimension order. {@code dO} holds the rows, Dv apart.
     */
    static void rowStatistics(AttentionCall c, int b, int h, int q0, int rows, float[] dO, float[] lse2, float[] delta) {
        AttentionGeometry g = c.g;
        int dv = g.shape().valueDim();
        for (int r = 0; r < rows; r++) {
            float lse = c.lse.getAtIndex(FLOAT, g.lBase(b, h) + (long) (q0 + r) * g.lRow());
            lse2[r] = lse == Float.NEGATIVE_INFINITY ? Float.POSITIVE_INFINITY : lse * LOG2E;
            long oRow = g.oBase(b, h) + (long) (q0 + r) * g.oRow();
            float sum = 0f;
            for (int x = 0; x < dv; x++) sum = Math.fma(dO[r * dv + x], c.outType.get(c.out, oRow + x), sum);
            delta[r] = sum;
        }
    }

    /** Zeroes {@code rows} rows of {@code width} floats, {@code rowStride} apart (one bulk fill when they are contiguous). */
    static void zeroRows(MemorySegment dst, long base, long rowStride, int width, int rows) {
        if (rowStride == width) {
            dst.asSlice(base * Float.BYTES, (long) rows * width * Float.BYTES).fill((byte) 0);
            return;
        }
        for (int r = 0; r < rows; r++) {
            for (int x = 0; x < width; x++) dst.setAtIndex(FLOAT, base + r * rowStride + x, 0f);
        }
    }

    private static boolean rowIsEmpty(long[] mask, int r, int words) {
        for (int w = 0; w < words; w++) if (mask[r * words + w] != 0) return false;
        return true;
    }

    private static boolean allowed(boolean partial, long[] mask, int r, int words, int j) {
        return !partial || (mask[r * words + (j >>> 6)] & (1L << j)) != 0;
    }

    /**
     * The running max as the SIMD kernel takes it (a compare and a blend): {@code candidate} if it is
     * greater, else {@code max}. A NaN score is passed over here (Math.max would propagate it, and
     * costs five instructions per vector on x86); it still reaches its row's output through 2^x.
     */
    static float larger(float max, float candidate) {
        return candidate > max ? candidate : max;
    }

    /**
     * 2^x for x ≤ 0 (−∞ gives exactly 0) with the SIMD kernel's polynomial, operation for operation:
     * x clamped below at −127, x = k + f with k = round(x) (adding 1.5·2^23 rounds, and leaves k in
     * the low bits of the sum), 2^f = 1 + f·P(f) by fused multiply-adds, 2^k by shifting k into the
     * exponent field. At k = −127 the exponent field is 0 and the product is exactly 0, so every x
     * below −126.5 gives 0 with no compare; between −126.5 and −126 the result is subnormal. A NaN
     * stays NaN. See SimdAttentionKernel's EXP2 coefficients.
     */
    static float exp2(float x) {
        float clamped = x < EXP2_MIN_ARGUMENT ? EXP2_MIN_ARGUMENT : x;
        float rounded = clamped + ROUND_MAGIC;
        float f = clamped - (rounded - ROUND_MAGIC);
        float poly = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(f, EXP2_P0, EXP2_P1), f, EXP2_P2), f, EXP2_P3), f, EXP2_P4), f, EXP2_P5);
        float scale = Float.intBitsToFloat((Float.floatToRawIntBits(rounded) << 23) + EXPONENT_BIAS_BITS);
        return Math.fma(f, poly, 1f) * scale;
    }

    /** 1.5·2^23: adding it rounds a float in (−2^22, 2^22) to an integer k, and the sum's low bits hold k. */
    static final float ROUND_MAGIC = 12582912f;
    /** 2^x clamps x here: k = −127 puts 0 into the exponent field, so the result is exactly 0. */
    static final float EXP2_MIN_ARGUMENT = -127f;
    /** The float exponent bias in place: (k << 23) + this is the bit pattern of 2^k. */
    static final int EXPONENT_BIAS_BITS = 127 << 23;
    /** Cephes' exp2f minimax coefficients: 2^f = 1 + f·P(f) on |f| ≤ ½. */
    static final float EXP2_P0 = 1.535336188319500e-4f, EXP2_P1 = 1.339887440266574e-3f, EXP2_P2 = 9.618437357674640e-3f;
    static final float EXP2_P3 = 5.550332471162809e-2f, EXP2_P4 = 2.402264791363012e-1f, EXP2_P5 = 6.931472028550421e-1f;

    // ------------------------------------------------------------------ score modifiers

    static final double LN2_D = 0.6931471805599453, LOG2E_D = 1.4426950408889634;

    /** Points the scratch at the call's modifier (or none) for one work item whose query block starts at raw row {@code row0}. */
    private static void bindMods(Scratch s, AttentionCall c, int b, int h, int row0) {
        s.mods = c.mods;
        if (c.mods == null) return;
        s.modBatch = b;
        s.modHead = h;
        s.modRow0 = row0;
        s.modKvLen = c.g.shape().kvLen();
        s.modPartials = null;
        if (s.modDerivatives.length < c.mods.derivativeSlots()) s.modDerivatives = new float[c.mods.derivativeSlots()];
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
     * The base-2 score of block row r and key {@code key} after the call's modifiers (unchanged
     * without), step by step as SimdAttentionKernel.modifyScores: biases added, soft-capping by
     * {@link #tanh}, a function given the natural-unit score in float64; each nonlinear step's
     * derivative is kept in {@code s.modDerivatives} for {@link #modifiedGradient}.
     */
    private static float modified(Scratch s, int r, int key, float score) {
        ScoreMod.Plan plan = s.mods;
        if (plan == null) return score;
        int i = s.modRow0 + r, h = s.modHead;
        for (int st = 0; st < plan.steps(); st++) {
            int kind = plan.kind(st);
            if (kind == ScoreMod.Plan.LINEAR) {
                score = Math.fma((float) (key - i - plan.queryOffset()), plan.slope(st, h), score);
            } else if (kind == ScoreMod.Plan.DISTANCE) {
                score = score + plan.row(st, h)[i - key + s.modKvLen - 1];
            } else if (kind == ScoreMod.Plan.KEY) {
                score = score + plan.row(st, h)[key];
            } else if (kind == ScoreMod.Plan.SOFT_CAP) {
                score = softCap(score, plan.cap(st), plan.inverseCap(st));
                float t = score * plan.inverseCap(st);
                s.modDerivatives[plan.derivativeSlot(st)] = Math.fma(-t, t, 1f);
            } else {
                double natural = score * LN2_D;
                ScoreMod.Function derivative = plan.derivative(st);
                if (derivative != null) s.modDerivatives[plan.derivativeSlot(st)] = (float) derivative.apply(s.modBatch, h, i, key, natural);
                score = (float) (plan.function(st).apply(s.modBatch, h, i, key, natural) * LOG2E_D);
            }
        }
        return score;
    }

    /**
     * dS of the unmodified score from dS of the modified one (probability {@code p}), last step
     * first: times each nonlinear step's derivative where p ≠ 0; a learnable table's gradient added
     * into the item's partial sums (rows, then keys, in order: the SIMD kernel's order).
     */
    private static float modifiedGradient(Scratch s, int r, int key, float p, float ds) {
        ScoreMod.Plan plan = s.mods;
        if (plan == null) return ds;
        for (int st = plan.steps() - 1; st >= 0; st--) {
            int slot = plan.derivativeSlot(st);
            if (slot >= 0) {
                if (p != 0f) ds = ds * s.modDerivatives[slot];
            } else if (s.modPartials != null && plan.parameter(st) >= 0 && ds != 0f) {
                s.modPartials[s.modPartialOff[st] + plan.buckets(st)[s.modRow0 + r - key + s.modKvLen - 1]] += ds;
            }
        }
        return ds;
    }

    /**
     * cap·tanh(x/cap) for soft-capping, the same operations as SimdAttentionKernel's soft-capping:
     * with y = x/cap and z = y², Cephes' tanhf odd polynomial in the x domain, x + x·z·P(z), for
     * z &lt; 0.625² (about 1 ulp); ±cap from |y| = 7.9053 (see TANH_SATURATED_SQUARED); between,
     * Eigen's rational tanh in the x domain, x·N(z)/D(z) (see TANH_N0): nine fused multiply-adds, a
     * multiply and one correctly rounded division, no 2^x and no sign handling (N and D are
     * polynomials in z, so the result is odd by construction). In float it stays within 3.5·10^−7·cap
     * of cap·tanh(x/cap) (about 6 ulp of cap, SoftCapTanhTest; the 2^x form it replaced, u = 2^(−2|y|·log2 e)
     * and (1 − u)/(1 + u), was within 1.1·10^−7·cap but cost half as much again in ALiBi + soft-capping, whose
     * scores mostly fall in this band) and never beyond ±cap: inside the modifiers' contract, which
     * allows 10× a naive float32 computation's error. The same bits at every JIT tier.
     */
    static float softCap(float x, float cap, float inverseCap) {
        float y = x * inverseCap;
        float z = y * y;
        float poly = Math.fma(Math.fma(Math.fma(Math.fma(z, TANH_P0, TANH_P1), z, TANH_P2), z, TANH_P3), z, TANH_P4);
        float small = Math.fma(poly * z, x, x);
        if (z < TANH_SMALL_SQUARED) return small;
        if (z >= TANH_SATURATED_SQUARED) return y < 0f ? -cap : cap;
        float n = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(z, TANH_N6, TANH_N5), z, TANH_N4), z, TANH_N3), z, TANH_N2), z, TANH_N1), z, TANH_N0);
        float d = Math.fma(Math.fma(Math.fma(z, TANH_D3, TANH_D2), z, TANH_D1), z, TANH_D0);
        return x * n / d;
    }

    /**
     * Eigen's rational approximation of tanh (its ptanh_float, a [13/6] minimax fit on |y| ≤ 7.9053):
     * tanh(y) ≈ y·N(z)/D(z), z = y², N(z) = Σ TANH_Ni·z^i, D(z) = Σ TANH_Di·z^i. Soft-capping uses it
     * for 0.625 ≤ |y| &lt; 7.9053.
     */
    static final float TANH_N0 = 4.89352455891786e-03f, TANH_N1 = 6.37261928875436e-04f, TANH_N2 = 1.48572235717979e-05f;
    static final float TANH_N3 = 5.12229709037114e-08f, TANH_N4 = -8.60467152213735e-11f, TANH_N5 = 2.00018790482477e-13f;
    static final float TANH_N6 = -2.76076847742355e-16f;
    static final float TANH_D0 = 4.89352518554385e-03f, TANH_D1 = 2.26843463243900e-03f, TANH_D2 = 1.18534705686654e-04f;
    static final float TANH_D3 = 1.19825839466702e-06f;

    /** Below this y² = (x/cap)², soft-capping uses the polynomial (Cephes' tanhf's |y| &lt; 0.625; exact in float). */
    static final float TANH_SMALL_SQUARED = 0.390625f;
    /**
     * From this y² on (|y| ≥ 7.9053, Eigen's clamp point, 7.90531110763549805 squared in float),
     * soft-capping gives exactly ±cap: 1 − tanh(7.9053) = 2.7·10^−7, within the rational's own
     * error, and the rational, fitted up to there, is never evaluated past it. The kernels skip the
     * rational and its division there (ALiBi's far keys).
     */
    static final float TANH_SATURATED_SQUARED = 62.493942f;
    /** Cephes' tanhf coefficients: tanh(y) = y + y·z·P(z), z = y², on |y| &lt; 0.625. */
    static final float TANH_P0 = -5.70498872745e-3f, TANH_P1 = 2.06390887954e-2f, TANH_P2 = -5.37397155531e-2f;
    static final float TANH_P3 = 1.33314422036e-1f, TANH_P4 = -3.33332819422e-1f;
}
