package io.tessera.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.ShortArray;

/**
 * The device decode step over a paged KV cache whose pools stay on the device between steps.
 *
 * <p>Three tasks, one execution plan per (shape, page size, pool, modifier kinds): {@link #scatter}
 * writes the rows the host staged (tokens appended since the last step, one row per token and KV
 * head) into the resident pools, {@link #decode} attends, {@link #merge} combines. Everything that
 * changes per step — live lengths, the pages each sequence reaches, the masks of PARTIAL pages, the
 * staged-row count, the modifier's tables — is data sent on every execution ({@code meta},
 * {@code mods}, {@code modValues}), so a plan serves every position.
 *
 * <p>{@code decode}: one work-group of {@link #GROUP_SIZE} items per (sequence, KV head, split).
 * The G·qLen query rows that share the KV head (grouped-query heads × the step's queries) are
 * staged in local memory and attend together, so every key and value row is read once per group,
 * not once per query head. A sequence's pages are cut into {@code splits} contiguous runs (split-KV,
 * the parallelism for long caches and small batches); each group walks its run in chunks of up to
 * {@link #CHUNK} keys of one page: the items compute the chunk's (row, key) scores, one item per row
 * updates the row's running max and sum (natural units) and turns the scores into probabilities,
 * then the items accumulate probabilities × values, one (row, value dimension) per item — the value
 * dimension varies fastest across items, so the items read a value row together. The group writes
 * its unnormalized output, max and sum per row ({@code partO}, {@code partML}). {@code merge}: one
 * item per output element combines a row's splits in split order — {@code M = max m_s},
 * {@code out = Σ e^(m_s − M)·o_s / Σ e^(m_s − M)·l_s}, {@code lse = M + ln Σ e^(m_s − M)·l_s} —
 * so the result depends on the plan's split count only, never on scheduling.
 *
 * <p>Score modifiers run as in {@link AttentionKernel}: the score in base 2
 * ({@code scale·log2(e)} rounded once, times {@code q·k}), the steps applied to the tables of the
 * sequence's {@code ScoreMod.Plan}, back to natural units. Positions are the decode plan's: query
 * {@code i} of a sequence of live length {@code L} is at {@code L − qLen + i}, key {@code j} at
 * {@code j} (bottom-right).
 *
 * <p>Rows beyond {@link #MAX_ROWS} (many query heads per KV head × long speculative steps) are
 * processed in slabs of {@code MAX_ROWS}, each walking the run again.
 */
final class DecodeKernel {
    private DecodeKernel() {}

    static final int GROUP_SIZE = 64, CHUNK = 32, MAX_ROWS = 16, MAX_HEAD_DIM = 256;

    // meta: fixed parameters, then per sequence the first tile (B + 1 entries) and the live length
    // (B entries), then per tile the pool page, its index in the sequence and its first mask word
    // (−1: FULL), then the PARTIAL pages' mask words (qLen rows of MASK_WORDS 32-bit words; bit j of
    // a row: that query may attend token j of the page).
    static final int STAGED = 0, RUN_DECODE = 1, BATCH = 2, HEADS = 3, GROUP = 4, Q_LEN = 5, HEAD_DIM = 6, VALUE_DIM = 7;
    static final int POOL_TOKENS = 8, PAGE_SIZE = 9, MASK_WORDS = 10, HAS_LSE = 11, TILE_CAPACITY = 12, KEY_OFF = 13, VALUE_OFF = 14;
    static final int KV_HEADS = 15, SPLITS = 16;
    static final int FIXED = 17;

    // mods: the step count, the steps' kinds (AttentionKernel.MOD_*), then per sequence and step the
    // index of the step's values in modValues (LINEAR: per query head log2(e)·slope; DISTANCE: per
    // query head a table over i − j + L − 1 of the sequence's length L; KEY: per query head one value
    // per key; SOFT_CAP: log2(e)·cap and its inverse).
    static final int MOD_STEPS = 0, MOD_KINDS = 1;

    static int seqStart(int b) { return FIXED + b; }
    static int lengthOf(int batch, int b) { return FIXED + batch + 1 + b; }
    static int tiles(int batch) { return FIXED + 2 * batch + 1; }
    static int masks(int batch, int tileCapacity) { return tiles(batch) + 3 * tileCapacity; }
    static int modAt(int steps, int b, int step) { return MOD_KINDS + steps + b * steps + step; }

    /**
     * Row {@code e} of the staging arrays goes to pool row {@code rows[e]} (an element index: KV
     * head × pool tokens + token, times the dimension, added to the pool's offset on the host).
     */
    static void scatter(KernelContext ctx, FloatArray keyPool, FloatArray valuePool, FloatArray stagedKeys, FloatArray stagedValues,
                        IntArray stagedRows, IntArray meta) {
        int e = ctx.globalIdx;
        int n = meta.get(STAGED);
        if (e < n) {
            int d = meta.get(HEAD_DIM), dv = meta.get(VALUE_DIM);
            int row = stagedRows.get(e);
            int kBase = meta.get(KEY_OFF) + row * d, vBase = meta.get(VALUE_OFF) + row * dv;
            for (int x = 0; x < d; x++) {
                keyPool.set(kBase + x, stagedKeys.get(e * d + x));
            }
            for (int x = 0; x < dv; x++) {
                valuePool.set(vBase + x, stagedValues.get(e * dv + x));
            }
        }
    }

    /** {@link #scatter} of half-precision rows (16-bit patterns, copied as they are). */
    static void scatterHalf(KernelContext ctx, ShortArray keyPool, ShortArray valuePool, ShortArray stagedKeys, ShortArray stagedValues,
                            IntArray stagedRows, IntArray meta) {
        int e = ctx.globalIdx;
        int n = meta.get(STAGED);
        if (e < n) {
            int d = meta.get(HEAD_DIM), dv = meta.get(VALUE_DIM);
            int row = stagedRows.get(e);
            int kBase = meta.get(KEY_OFF) + row * d, vBase = meta.get(VALUE_OFF) + row * dv;
            for (int x = 0; x < d; x++) {
                keyPool.set(kBase + x, stagedKeys.get(e * d + x));
            }
            for (int x = 0; x < dv; x++) {
                valuePool.set(vBase + x, stagedValues.get(e * dv + x));
            }
        }
    }

    /**
     * q {@code [B, H, qLen, D]} contiguous; scale in {@code scale[0]}, its base-2 form in
     * {@code scale[1]}. Writes, per (sequence, KV head, split) and row of that KV head's
     * {@code G·qLen} rows, the unnormalized output ({@code partO}, Dv floats) and the running max and
     * sum ({@code partML}, two floats); a split that sees no allowed key writes 0, −∞, 0.
     */
    static void decode(KernelContext ctx, FloatArray q, FloatArray keyPool, FloatArray valuePool, FloatArray partO, FloatArray partML,
                       IntArray meta, FloatArray scale, IntArray mods, FloatArray modValues) {
        float[] qLocal = ctx.allocateFloatLocalArray(MAX_ROWS * MAX_HEAD_DIM);
        float[] oLocal = ctx.allocateFloatLocalArray(MAX_ROWS * MAX_HEAD_DIM);
        float[] probs = ctx.allocateFloatLocalArray(MAX_ROWS * CHUNK);
        float[] rowMax = ctx.allocateFloatLocalArray(MAX_ROWS);
        float[] rowSum = ctx.allocateFloatLocalArray(MAX_ROWS);
        float[] rowAlpha = ctx.allocateFloatLocalArray(MAX_ROWS);

        int item = ctx.localIdx;
        int groupId = ctx.groupIdx;
        int batch = meta.get(BATCH), heads = meta.get(HEADS), qLen = meta.get(Q_LEN), g = meta.get(GROUP);
        int kvHeads = meta.get(KV_HEADS), splits = meta.get(SPLITS);
        int d = meta.get(HEAD_DIM), dv = meta.get(VALUE_DIM), pageSize = meta.get(PAGE_SIZE), words = meta.get(MASK_WORDS);
        int poolTokens = meta.get(POOL_TOKENS), tileCapacity = meta.get(TILE_CAPACITY);
        int split = groupId % splits;
        int bhk = groupId / splits;
        int b = bhk / kvHeads;
        int hk = bhk % kvHeads;
        int rowCount = g * qLen;
        // Uniform across the group: a step that only stages rows runs no slab (barriers stay uniform).
        int rowsToRun = 0;
        if (meta.get(RUN_DECODE) != 0) {
            rowsToRun = rowCount;
        }
        int length = meta.get(FIXED + batch + 1 + b);
        int tileBase = FIXED + 2 * batch + 1;
        int maskBase = tileBase + 3 * tileCapacity;
        int t0 = meta.get(FIXED + b);
        int tileCount = meta.get(FIXED + b + 1) - t0;
        int firstTile = t0 + tileCount * split / splits;
        int endTile = t0 + tileCount * (split + 1) / splits;
        int kHead = meta.get(KEY_OFF) + hk * poolTokens * d;
        int vHead = meta.get(VALUE_OFF) + hk * poolTokens * dv;
        float sc = scale.get(0);
        float sc2 = scale.get(1);
        int steps = mods.get(MOD_STEPS);
        int partRow0 = (bhk * splits + split) * rowCount;

        for (int slab = 0; slab < rowsToRun; slab += MAX_ROWS) {
            int rows = Math.min(MAX_ROWS, rowCount - slab);
            for (int e = item; e < rows * d; e += GROUP_SIZE) {
                int r = e / d;
                int x = e - r * d;
                int row = slab + r;
                int h = hk * g + row / qLen;
                int i = row % qLen;
                qLocal[r * MAX_HEAD_DIM + x] = q.get(((b * heads + h) * qLen + i) * d + x);
            }
            for (int e = item; e < rows * dv; e += GROUP_SIZE) {
                int r = e / dv;
                int x = e - r * dv;
                oLocal[r * MAX_HEAD_DIM + x] = 0f;
            }
            for (int r = item; r < rows; r += GROUP_SIZE) {
                rowMax[r] = Float.NEGATIVE_INFINITY;
                rowSum[r] = 0f;
            }
            ctx.localBarrier();
            for (int t = firstTile; t < endTile; t++) {
                int page = meta.get(tileBase + 3 * t);
                int logical = meta.get(tileBase + 3 * t + 1);
                int mask = meta.get(tileBase + 3 * t + 2);
                int tokens = Math.min(pageSize, length - logical * pageSize);
                int kPage = kHead + page * pageSize * d;
                int vPage = vHead + page * pageSize * dv;
                for (int c0 = 0; c0 < tokens; c0 += CHUNK) {
                    int cn = Math.min(CHUNK, tokens - c0);
                    // Scores of the chunk: one (row, key) per item. Straight-line on purpose (see
                    // AttentionKernel): the dot is always computed and masking is a select.
                    for (int e = item; e < rows * cn; e += GROUP_SIZE) {
                        int r = e / cn;
                        int j = e - r * cn;
                        int row = slab + r;
                        int i = row % qLen;
                        int c = c0 + j;
                        int allowed = 1;
                        if (mask >= 0) {
                            allowed = (meta.get(maskBase + mask + i * words + (c >> 5)) >>> (c & 31)) & 1;
                        }
                        int kRow = kPage + c * d;
                        int qRow = r * MAX_HEAD_DIM;
                        // Eight interleaved partial sums (dimension x into sum x mod 8 for the
                        // multiples of 8, the tail into sum 0), added pairwise: independent chains
                        // the device compiler can put in one vector register.
                        float a0 = 0f;
                        float a1 = 0f;
                        float a2 = 0f;
                        float a3 = 0f;
                        float a4 = 0f;
                        float a5 = 0f;
                        float a6 = 0f;
                        float a7 = 0f;
                        int x8 = 0;
                        for (; x8 + 8 <= d; x8 += 8) {
                            a0 += qLocal[qRow + x8] * keyPool.get(kRow + x8);
                            a1 += qLocal[qRow + x8 + 1] * keyPool.get(kRow + x8 + 1);
                            a2 += qLocal[qRow + x8 + 2] * keyPool.get(kRow + x8 + 2);
                            a3 += qLocal[qRow + x8 + 3] * keyPool.get(kRow + x8 + 3);
                            a4 += qLocal[qRow + x8 + 4] * keyPool.get(kRow + x8 + 4);
                            a5 += qLocal[qRow + x8 + 5] * keyPool.get(kRow + x8 + 5);
                            a6 += qLocal[qRow + x8 + 6] * keyPool.get(kRow + x8 + 6);
                            a7 += qLocal[qRow + x8 + 7] * keyPool.get(kRow + x8 + 7);
                        }
                        for (int x = x8; x < d; x++) {
                            a0 += qLocal[qRow + x] * keyPool.get(kRow + x);
                        }
                        float dot = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
                        float score = sc * dot;
                        if (steps > 0) {
                            int h = hk * g + row / qLen;
                            int key = logical * pageSize + c;
                            int position = length - qLen + i;
                            float score2 = sc2 * dot;
                            for (int st = 0; st < steps; st++) {
                                int kind = mods.get(MOD_KINDS + st);
                                int at = mods.get(MOD_KINDS + steps + b * steps + st);
                                if (kind == AttentionKernel.MOD_LINEAR) {
                                    score2 = score2 + (float) (key - position) * modValues.get(at + h);
                                } else if (kind == AttentionKernel.MOD_DISTANCE) {
                                    score2 = score2 + modValues.get(at + h * (qLen + length - 1) + i - key + length - 1);
                                } else if (kind == AttentionKernel.MOD_KEY) {
                                    score2 = score2 + modValues.get(at + h * length + key);
                                } else {
                                    score2 = TornadoMath.tanh(score2 * modValues.get(at + 1)) * modValues.get(at);
                                }
                            }
                            score = score2 * AttentionKernel.LN2;
                        }
                        if (allowed == 0) {
                            score = Float.NEGATIVE_INFINITY;
                        }
                        probs[r * CHUNK + j] = score;
                    }
                    ctx.localBarrier();
                    // One item per row: the online softmax update. A chunk with nothing allowed
                    // changes nothing (and keeps exp(−∞ − (−∞)) = NaN out).
                    for (int r = item; r < rows; r += GROUP_SIZE) {
                        float chunkMax = Float.NEGATIVE_INFINITY;
                        for (int j = 0; j < cn; j++) {
                            chunkMax = Math.max(chunkMax, probs[r * CHUNK + j]);
                        }
                        float alpha = 1f;
                        if (chunkMax > Float.NEGATIVE_INFINITY) {
                            float m = rowMax[r];
                            float mNew = Math.max(m, chunkMax);
                            alpha = TornadoMath.exp(m - mNew);
                            float sum = 0f;
                            for (int j = 0; j < cn; j++) {
                                float p = TornadoMath.exp(probs[r * CHUNK + j] - mNew);
                                probs[r * CHUNK + j] = p;
                                sum += p;
                            }
                            rowSum[r] = rowSum[r] * alpha + sum;
                            rowMax[r] = mNew;
                        } else {
                            for (int j = 0; j < cn; j++) {
                                probs[r * CHUNK + j] = 0f;
                            }
                        }
                        rowAlpha[r] = alpha;
                    }
                    ctx.localBarrier();
                    // Values: one (row, 8 value dimensions) per item, the dimensions fastest; eight
                    // independent accumulators, one per dimension (a short last block goes one by one).
                    int blocks = (dv + 7) / 8;
                    for (int e = item; e < rows * blocks; e += GROUP_SIZE) {
                        int r = e / blocks;
                        int x0 = (e - r * blocks) * 8;
                        int o = r * MAX_HEAD_DIM + x0;
                        float alpha = rowAlpha[r];
                        if (x0 + 8 <= dv) {
                            float o0 = oLocal[o] * alpha;
                            float o1 = oLocal[o + 1] * alpha;
                            float o2 = oLocal[o + 2] * alpha;
                            float o3 = oLocal[o + 3] * alpha;
                            float o4 = oLocal[o + 4] * alpha;
                            float o5 = oLocal[o + 5] * alpha;
                            float o6 = oLocal[o + 6] * alpha;
                            float o7 = oLocal[o + 7] * alpha;
                            for (int j = 0; j < cn; j++) {
                                // A key the row may not attend has probability 0 and its value, which
                                // may be anything (NaN), is not read.
                                float p = probs[r * CHUNK + j];
                                if (p > 0f) {
                                    int vRow = vPage + (c0 + j) * dv + x0;
                                    o0 += p * valuePool.get(vRow);
                                    o1 += p * valuePool.get(vRow + 1);
                                    o2 += p * valuePool.get(vRow + 2);
                                    o3 += p * valuePool.get(vRow + 3);
                                    o4 += p * valuePool.get(vRow + 4);
                                    o5 += p * valuePool.get(vRow + 5);
                                    o6 += p * valuePool.get(vRow + 6);
                                    o7 += p * valuePool.get(vRow + 7);
                                }
                            }
                            oLocal[o] = o0;
                            oLocal[o + 1] = o1;
                            oLocal[o + 2] = o2;
                            oLocal[o + 3] = o3;
                            oLocal[o + 4] = o4;
                            oLocal[o + 5] = o5;
                            oLocal[o + 6] = o6;
                            oLocal[o + 7] = o7;
                        } else {
                            for (int x = x0; x < dv; x++) {
                                float acc = oLocal[r * MAX_HEAD_DIM + x] * alpha;
                                for (int j = 0; j < cn; j++) {
                                    float p = probs[r * CHUNK + j];
                                    if (p > 0f) {
                                        acc += p * valuePool.get(vPage + (c0 + j) * dv + x);
                                    }
                                }
                                oLocal[r * MAX_HEAD_DIM + x] = acc;
                            }
                        }
                    }
                    ctx.localBarrier();
                }
            }
            for (int e = item; e < rows * dv; e += GROUP_SIZE) {
                int r = e / dv;
                int x = e - r * dv;
                partO.set((partRow0 + slab + r) * dv + x, oLocal[r * MAX_HEAD_DIM + x]);
            }
            for (int r = item; r < rows; r += GROUP_SIZE) {
                partML.set(2 * (partRow0 + slab + r), rowMax[r]);
                partML.set(2 * (partRow0 + slab + r) + 1, rowSum[r]);
            }
            ctx.localBarrier();
        }
    }

    /**
     * {@link #decode} over half-precision pools (F16 or BF16, the raw 16-bit patterns): every key
     * and value element is widened to float32 exactly through {@code widen} (65,536 entries: the
     * float of each bit pattern), then everything runs in float32 as in {@code decode}. A table,
     * because TornadoVM 5.2's OpenCL backend reinterprets no bits ({@code Float.intBitsToFloat})
     * and its {@code HalfFloat} computes in OpenCL {@code half}, which needs cl_khr_fp16. Generated
     * from {@code decode} (same body, loads widened): change both together.
     */
    static void decodeHalf(KernelContext ctx, FloatArray q, ShortArray keyPool, ShortArray valuePool, FloatArray widen, FloatArray partO,
                           FloatArray partML, IntArray meta, FloatArray scale, IntArray mods, FloatArray modValues) {
        float[] qLocal = ctx.allocateFloatLocalArray(MAX_ROWS * MAX_HEAD_DIM);
        float[] oLocal = ctx.allocateFloatLocalArray(MAX_ROWS * MAX_HEAD_DIM);
        float[] probs = ctx.allocateFloatLocalArray(MAX_ROWS * CHUNK);
        float[] rowMax = ctx.allocateFloatLocalArray(MAX_ROWS);
        float[] rowSum = ctx.allocateFloatLocalArray(MAX_ROWS);
        float[] rowAlpha = ctx.allocateFloatLocalArray(MAX_ROWS);

        int item = ctx.localIdx;
        int groupId = ctx.groupIdx;
        int batch = meta.get(BATCH), heads = meta.get(HEADS), qLen = meta.get(Q_LEN), g = meta.get(GROUP);
        int kvHeads = meta.get(KV_HEADS), splits = meta.get(SPLITS);
        int d = meta.get(HEAD_DIM), dv = meta.get(VALUE_DIM), pageSize = meta.get(PAGE_SIZE), words = meta.get(MASK_WORDS);
        int poolTokens = meta.get(POOL_TOKENS), tileCapacity = meta.get(TILE_CAPACITY);
        int split = groupId % splits;
        int bhk = groupId / splits;
        int b = bhk / kvHeads;
        int hk = bhk % kvHeads;
        int rowCount = g * qLen;
        // Uniform across the group: a step that only stages rows runs no slab (barriers stay uniform).
        int rowsToRun = 0;
        if (meta.get(RUN_DECODE) != 0) {
            rowsToRun = rowCount;
        }
        int length = meta.get(FIXED + batch + 1 + b);
        int tileBase = FIXED + 2 * batch + 1;
        int maskBase = tileBase + 3 * tileCapacity;
        int t0 = meta.get(FIXED + b);
        int tileCount = meta.get(FIXED + b + 1) - t0;
        int firstTile = t0 + tileCount * split / splits;
        int endTile = t0 + tileCount * (split + 1) / splits;
        int kHead = meta.get(KEY_OFF) + hk * poolTokens * d;
        int vHead = meta.get(VALUE_OFF) + hk * poolTokens * dv;
        float sc = scale.get(0);
        float sc2 = scale.get(1);
        int steps = mods.get(MOD_STEPS);
        int partRow0 = (bhk * splits + split) * rowCount;

        for (int slab = 0; slab < rowsToRun; slab += MAX_ROWS) {
            int rows = Math.min(MAX_ROWS, rowCount - slab);
            for (int e = item; e < rows * d; e += GROUP_SIZE) {
                int r = e / d;
                int x = e - r * d;
                int row = slab + r;
                int h = hk * g + row / qLen;
                int i = row % qLen;
                qLocal[r * MAX_HEAD_DIM + x] = q.get(((b * heads + h) * qLen + i) * d + x);
            }
            for (int e = item; e < rows * dv; e += GROUP_SIZE) {
                int r = e / dv;
                int x = e - r * dv;
                oLocal[r * MAX_HEAD_DIM + x] = 0f;
            }
            for (int r = item; r < rows; r += GROUP_SIZE) {
                rowMax[r] = Float.NEGATIVE_INFINITY;
                rowSum[r] = 0f;
            }
            ctx.localBarrier();
            for (int t = firstTile; t < endTile; t++) {
                int page = meta.get(tileBase + 3 * t);
                int logical = meta.get(tileBase + 3 * t + 1);
                int mask = meta.get(tileBase + 3 * t + 2);
                int tokens = Math.min(pageSize, length - logical * pageSize);
                int kPage = kHead + page * pageSize * d;
                int vPage = vHead + page * pageSize * dv;
                for (int c0 = 0; c0 < tokens; c0 += CHUNK) {
                    int cn = Math.min(CHUNK, tokens - c0);
                    // Scores of the chunk: one (row, key) per item. Straight-line on purpose (see
                    // AttentionKernel): the dot is always computed and masking is a select.
                    for (int e = item; e < rows * cn; e += GROUP_SIZE) {
                        int r = e / cn;
                        int j = e - r * cn;
                        int row = slab + r;
                        int i = row % qLen;
                        int c = c0 + j;
                        int allowed = 1;
                        if (mask >= 0) {
                            allowed = (meta.get(maskBase + mask + i * words + (c >> 5)) >>> (c & 31)) & 1;
                        }
                        int kRow = kPage + c * d;
                        int qRow = r * MAX_HEAD_DIM;
                        // Eight interleaved partial sums (dimension x into sum x mod 8 for the
                        // multiples of 8, the tail into sum 0), added pairwise: independent chains
                        // the device compiler can put in one vector register.
                        float a0 = 0f;
                        float a1 = 0f;
                        float a2 = 0f;
                        float a3 = 0f;
                        float a4 = 0f;
                        float a5 = 0f;
                        float a6 = 0f;
                        float a7 = 0f;
                        int x8 = 0;
                        for (; x8 + 8 <= d; x8 += 8) {
                            a0 += qLocal[qRow + x8] * widen.get(keyPool.get(kRow + x8) & 0xFFFF);
                            a1 += qLocal[qRow + x8 + 1] * widen.get(keyPool.get(kRow + x8 + 1) & 0xFFFF);
                            a2 += qLocal[qRow + x8 + 2] * widen.get(keyPool.get(kRow + x8 + 2) & 0xFFFF);
                            a3 += qLocal[qRow + x8 + 3] * widen.get(keyPool.get(kRow + x8 + 3) & 0xFFFF);
                            a4 += qLocal[qRow + x8 + 4] * widen.get(keyPool.get(kRow + x8 + 4) & 0xFFFF);
                            a5 += qLocal[qRow + x8 + 5] * widen.get(keyPool.get(kRow + x8 + 5) & 0xFFFF);
                            a6 += qLocal[qRow + x8 + 6] * widen.get(keyPool.get(kRow + x8 + 6) & 0xFFFF);
                            a7 += qLocal[qRow + x8 + 7] * widen.get(keyPool.get(kRow + x8 + 7) & 0xFFFF);
                        }
                        for (int x = x8; x < d; x++) {
                            a0 += qLocal[qRow + x] * widen.get(keyPool.get(kRow + x) & 0xFFFF);
                        }
                        float dot = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
                        float score = sc * dot;
                        if (steps > 0) {
                            int h = hk * g + row / qLen;
                            int key = logical * pageSize + c;
                            int position = length - qLen + i;
                            float score2 = sc2 * dot;
                            for (int st = 0; st < steps; st++) {
                                int kind = mods.get(MOD_KINDS + st);
                                int at = mods.get(MOD_KINDS + steps + b * steps + st);
                                if (kind == AttentionKernel.MOD_LINEAR) {
                                    score2 = score2 + (float) (key - position) * modValues.get(at + h);
                                } else if (kind == AttentionKernel.MOD_DISTANCE) {
                                    score2 = score2 + modValues.get(at + h * (qLen + length - 1) + i - key + length - 1);
                                } else if (kind == AttentionKernel.MOD_KEY) {
                                    score2 = score2 + modValues.get(at + h * length + key);
                                } else {
                                    score2 = TornadoMath.tanh(score2 * modValues.get(at + 1)) * modValues.get(at);
                                }
                            }
                            score = score2 * AttentionKernel.LN2;
                        }
                        if (allowed == 0) {
                            score = Float.NEGATIVE_INFINITY;
                        }
                        probs[r * CHUNK + j] = score;
                    }
                    ctx.localBarrier();
                    // One item per row: the online softmax update. A chunk with nothing allowed
                    // changes nothing (and keeps exp(−∞ − (−∞)) = NaN out).
                    for (int r = item; r < rows; r += GROUP_SIZE) {
                        float chunkMax = Float.NEGATIVE_INFINITY;
                        for (int j = 0; j < cn; j++) {
                            chunkMax = Math.max(chunkMax, probs[r * CHUNK + j]);
                        }
                        float alpha = 1f;
                        if (chunkMax > Float.NEGATIVE_INFINITY) {
                            float m = rowMax[r];
                            float mNew = Math.max(m, chunkMax);
                            alpha = TornadoMath.exp(m - mNew);
                            float sum = 0f;
                            for (int j = 0; j < cn; j++) {
                                float p = TornadoMath.exp(probs[r * CHUNK + j] - mNew);
                                probs[r * CHUNK + j] = p;
                                sum += p;
                            }
                            rowSum[r] = rowSum[r] * alpha + sum;
                            rowMax[r] = mNew;
                        } else {
                            for (int j = 0; j < cn; j++) {
                                probs[r * CHUNK + j] = 0f;
                            }
                        }
                        rowAlpha[r] = alpha;
                    }
                    ctx.localBarrier();
                    // Values: one (row, 8 value dimensions) per item, the dimensions fastest; eight
                    // independent accumulators, one per dimension (a short last block goes one by one).
                    int blocks = (dv + 7) / 8;
                    for (int e = item; e < rows * blocks; e += GROUP_SIZE) {
                        int r = e / blocks;
                        int x0 = (e - r * blocks) * 8;
                        int o = r * MAX_HEAD_DIM + x0;
                        float alpha = rowAlpha[r];
                        if (x0 + 8 <= dv) {
                            float o0 = oLocal[o] * alpha;
                            float o1 = oLocal[o + 1] * alpha;
                            float o2 = oLocal[o + 2] * alpha;
                            float o3 = oLocal[o + 3] * alpha;
                            float o4 = oLocal[o + 4] * alpha;
                            float o5 = oLocal[o + 5] * alpha;
                            float o6 = oLocal[o + 6] * alpha;
                            float o7 = oLocal[o + 7] * alpha;
                            for (int j = 0; j < cn; j++) {
                                // A key the row may not attend has probability 0 and its value, which
                                // may be anything (NaN), is not read.
                                float p = probs[r * CHUNK + j];
                                if (p > 0f) {
                                    int vRow = vPage + (c0 + j) * dv + x0;
                                    o0 += p * widen.get(valuePool.get(vRow) & 0xFFFF);
                                    o1 += p * widen.get(valuePool.get(vRow + 1) & 0xFFFF);
                                    o2 += p * widen.get(valuePool.get(vRow + 2) & 0xFFFF);
                                    o3 += p * widen.get(valuePool.get(vRow + 3) & 0xFFFF);
                                    o4 += p * widen.get(valuePool.get(vRow + 4) & 0xFFFF);
                                    o5 += p * widen.get(valuePool.get(vRow + 5) & 0xFFFF);
                                    o6 += p * widen.get(valuePool.get(vRow + 6) & 0xFFFF);
                                    o7 += p * widen.get(valuePool.get(vRow + 7) & 0xFFFF);
                                }
                            }
                            oLocal[o] = o0;
                            oLocal[o + 1] = o1;
                            oLocal[o + 2] = o2;
                            oLocal[o + 3] = o3;
                            oLocal[o + 4] = o4;
                            oLocal[o + 5] = o5;
                            oLocal[o + 6] = o6;
                            oLocal[o + 7] = o7;
                        } else {
                            for (int x = x0; x < dv; x++) {
                                float acc = oLocal[r * MAX_HEAD_DIM + x] * alpha;
                                for (int j = 0; j < cn; j++) {
                                    float p = probs[r * CHUNK + j];
                                    if (p > 0f) {
                                        acc += p * widen.get(valuePool.get(vPage + (c0 + j) * dv + x) & 0xFFFF);
                                    }
                                }
                                oLocal[r * MAX_HEAD_DIM + x] = acc;
                            }
                        }
                    }
                    ctx.localBarrier();
                }
            }
            for (int e = item; e < rows * dv; e += GROUP_SIZE) {
                int r = e / dv;
                int x = e - r * dv;
                partO.set((partRow0 + slab + r) * dv + x, oLocal[r * MAX_HEAD_DIM + x]);
            }
            for (int r = item; r < rows; r += GROUP_SIZE) {
                partML.set(2 * (partRow0 + slab + r), rowMax[r]);
                partML.set(2 * (partRow0 + slab + r) + 1, rowSum[r]);
            }
            ctx.localBarrier();
        }
    }

    /**
     * One item per element of {@code out} {@code [B, H, qLen, Dv]} (contiguous): the row's splits
     * combined in split order; rows that attended nothing get 0 and LSE −∞.
     */
    static void merge(KernelContext ctx, FloatArray partO, FloatArray partML, FloatArray out, FloatArray lse, IntArray meta) {
        int e = ctx.globalIdx;
        int batch = meta.get(BATCH), heads = meta.get(HEADS), qLen = meta.get(Q_LEN), dv = meta.get(VALUE_DIM);
        if (meta.get(RUN_DECODE) != 0 && e < batch * heads * qLen * dv) {
            int g = meta.get(GROUP), kvHeads = meta.get(KV_HEADS), splits = meta.get(SPLITS);
            int row = e / dv;
            int x = e - row * dv;
            int b = row / (heads * qLen);
            int h = (row / qLen) % heads;
            int i = row % qLen;
            int hk = h / g;
            int rowCount = g * qLen;
            int r = (h - hk * g) * qLen + i;
            int first = (b * kvHeads + hk) * splits;
            float max = Float.NEGATIVE_INFINITY;
            for (int s = 0; s < splits; s++) {
                max = Math.max(max, partML.get(2 * ((first + s) * rowCount + r)));
            }
            float o = 0f;
            float l = 0f;
            if (max > Float.NEGATIVE_INFINITY) {
                for (int s = 0; s < splits; s++) {
                    int pr = (first + s) * rowCount + r;
                    float m = partML.get(2 * pr);
                    if (m > Float.NEGATIVE_INFINITY) {
                        float w = TornadoMath.exp(m - max);
                        l += w * partML.get(2 * pr + 1);
                        o += w * partO.get(pr * dv + x);
                    }
                }
            }
            float inv = 0f;
            if (l > 0f) {
                inv = 1f / l;
            }
            out.set(e, o * inv);
            if (x == 0 && meta.get(HAS_LSE) != 0) {
                float logSumExp = Float.NEGATIVE_INFINITY;
                if (l > 0f) {
                    logSumExp = max + TornadoMath.log(l);
                }
                lse.set(row, logSumExp);
            }
        }
    }
}
