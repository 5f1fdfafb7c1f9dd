package io.tessera.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The fused block-sparse online-softmax attention kernel for TornadoVM: the device twin of the
 * CPU kernels, driven by the same compiled {@code BlockLayout} CSR (dense = the full layout).
 *
 * <p>One work-group per (batch, head, query block); each work-item owns one query row at a time
 * (rows {@code slot·groupSize + localId} of the block), keeping the running max and sum in
 * registers and the unnormalized output in its row of {@code out}. Each tile of keys is walked in
 * chunks of {@link #CHUNK} keys that the group stages into local memory together (barriers on both
 * sides), so every K/V element is read from global memory once per group, not once per row.
 * All shapes, strides and the scale travel in {@code params}/{@code scale} arrays rather than scalars,
 * so one compiled kernel serves every shape.
 *
 * <p>Score modifiers: without any, a score is {@code scale·q·k} and the softmax runs in natural
 * units. With some, the score is taken in base 2 as the CPU kernels take it ({@code scale·log2(e)},
 * rounded once, times {@code q·k}), the steps are applied in those units to the tables
 * {@code ScoreMod.Plan} prepared (soft-capping with the device's tanh), and the result is converted
 * back to natural units for the softmax.
 *
 * <p>Limits fixed at compile time because local arrays need constant sizes: head and value dims up
 * to {@link #MAX_HEAD_DIM}, work-groups up to {@link #MAX_WORK_GROUP} items. Any block sizes work:
 * blocks taller than the group take several row slots.
 */
final class AttentionKernel {
    private AttentionKernel() {}

    static final int CHUNK = 16;
    static final int MAX_HEAD_DIM = 256;
    static final int MAX_WORK_GROUP = 64;

    // Indices into params after the common geometry (DeviceGeometry).
    static final int BLOCK_Q = DeviceGeometry.COMMON, BLOCK_KV = BLOCK_Q + 1, Q_BLOCKS = BLOCK_Q + 2;
    static final int MASK_WORDS = BLOCK_Q + 3, WORK_GROUP = BLOCK_Q + 4;
    static final int EXTRA_PARAMS = 5;

    // Score modifiers (ScoreMod.Plan, in the CPU kernels' base-2 units): mods holds the step count,
    // the query offset of the modifier's alignment, then per step its kind and the index of its
    // values in modValues. LINEAR: one log2(e)·slope per query head; DISTANCE: per query head a
    // table over i − j + kvLen − 1; KEY: per query head one value per key; SOFT_CAP: log2(e)·cap
    // and its inverse.
    static final int MOD_STEPS = 0, MOD_QUERY_OFFSET = 1, MOD_FIRST = 2;
    static final int MOD_LINEAR = 4, MOD_DISTANCE = 0, MOD_KEY = 1, MOD_SOFT_CAP = 2;
    static final float LN2 = 0.6931471805599453f;

    /**
     * The modified base-2 score of query row {@code row} and key {@code key}: the plan's steps in
     * order. The forward kernel and both backward kernels call this one definition (TornadoVM
     * inlines it), so the backward recomputes exactly the scores the forward saw.
     */
    static float modified(float score2, int row, int key, int h, int qLen, int kvLen, int queryOffset, IntArray mods, FloatArray modValues) {
        int steps = mods.get(MOD_STEPS);
        float s = score2;
        for (int st = 0; st < steps; st++) {
            int kind = mods.get(MOD_FIRST + 2 * st);
            int at = mods.get(MOD_FIRST + 2 * st + 1);
            if (kind == MOD_LINEAR) {
                s = s + (float) (key - row - queryOffset) * modValues.get(at + h);
            } else if (kind == MOD_DISTANCE) {
                s = s + modValues.get(at + h * (qLen + kvLen - 1) + row - key + kvLen - 1);
            } else if (kind == MOD_KEY) {
                s = s + modValues.get(at + h * kvLen + key);
            } else {
                s = TornadoMath.tanh(s * modValues.get(at + 1)) * modValues.get(at);
            }
        }
        return s;
    }

    /**
     * @param rowStart  per head h and query block qb, the first tile of that row of blocks at
     *                  {@code h·(qBlocks+1) + qb} (CSR row pointers of every head's layout, concatenated)
     * @param cols      key block of each tile
     * @param maskStart first mask word of each PARTIAL tile, −1 for FULL tiles
     * @param maskBits  PARTIAL tile masks: {@code blockQ} rows of {@code MASK_WORDS} 32-bit words, bit c of a
     *                  row = that query may attend key c of the tile
     * @param scale     the scale, then scale·log2(e) rounded once (the base-2 scale of modified scores)
     * @param mods      the score modifier's steps (indices MOD_*); step count 0: none
     * @param modValues the steps' values, base 2
     */
    static void attention(KernelContext ctx, FloatArray q, FloatArray k, FloatArray v, FloatArray out, FloatArray lse,
                          IntArray params, FloatArray scale, IntArray rowStart, IntArray cols, IntArray maskStart, IntArray maskBits,
                          IntArray mods, FloatArray modValues) {
        float[] kChunk = ctx.allocateFloatLocalArray(CHUNK * MAX_HEAD_DIM);
        float[] vChunk = ctx.allocateFloatLocalArray(CHUNK * MAX_HEAD_DIM);
        float[] probs = ctx.allocateFloatLocalArray(MAX_WORK_GROUP * CHUNK);

        int heads = params.get(DeviceGeometry.HEADS), qLen = params.get(DeviceGeometry.Q_LEN), kvLen = params.get(DeviceGeometry.KV_LEN);
        int d = params.get(DeviceGeometry.HEAD_DIM), dv = params.get(DeviceGeometry.VALUE_DIM);
        int blockQ = params.get(BLOCK_Q), blockKV = params.get(BLOCK_KV), qBlocks = params.get(Q_BLOCKS);
        int words = params.get(MASK_WORDS), groupSize = params.get(WORK_GROUP);
        float s = scale.get(0);
        float s2 = scale.get(1);
        int steps = mods.get(MOD_STEPS);
        int queryOffset = mods.get(MOD_QUERY_OFFSET);

        int item = ctx.localIdx;
        int group = ctx.groupIdx;
        int qb = group % qBlocks;
        int bh = group / qBlocks;
        int b = bh / heads;
        int h = bh % heads;
        int hk = h / params.get(DeviceGeometry.QUERY_HEADS_PER_KV_HEAD);
        int qBase = params.get(DeviceGeometry.Q_OFF) + b * params.get(DeviceGeometry.Q_B) + h * params.get(DeviceGeometry.Q_H);
        int kBase = params.get(DeviceGeometry.K_OFF) + b * params.get(DeviceGeometry.K_B) + hk * params.get(DeviceGeometry.K_H);
        int vBase = params.get(DeviceGeometry.V_OFF) + b * params.get(DeviceGeometry.V_B) + hk * params.get(DeviceGeometry.V_H);
        int oBase = params.get(DeviceGeometry.O_OFF) + b * params.get(DeviceGeometry.O_B) + h * params.get(DeviceGeometry.O_H);
        int kRow = params.get(DeviceGeometry.K_ROW), vRow = params.get(DeviceGeometry.V_ROW);
        int firstTile = rowStart.get(h * (qBlocks + 1) + qb);
        int endTile = rowStart.get(h * (qBlocks + 1) + qb + 1);
        int slots = (blockQ + groupSize - 1) / groupSize;

        for (int slot = 0; slot < slots; slot++) {
            int rowInBlock = slot * groupSize + item;
            int row = qb * blockQ + rowInBlock;
            boolean active = rowInBlock < blockQ && row < qLen;
            int qRow = qBase + row * params.get(DeviceGeometry.Q_ROW);
            int oRow = oBase + row * params.get(DeviceGeometry.O_ROW);
            float m = Float.NEGATIVE_INFINITY;
            float l = 0f;
            if (active) {
                for (int x = 0; x < dv; x++) {
                    out.set(oRow + x, 0f);
                }
            }
            for (int t = firstTile; t < endTile; t++) {
                int kv0 = cols.get(t) * blockKV;
                int n = Math.min(blockKV, kvLen - kv0);
                int mask = maskStart.get(t);
                for (int c0 = 0; c0 < n; c0 += CHUNK) {
                    int cn = Math.min(CHUNK, n - c0);
                    ctx.localBarrier();
                    // The group stages the chunk's keys and values together, item by item. Written
                    // out in each kernel (here and twice in AttentionBackwardKernel): TornadoVM 5.2
                    // does not keep a local array local when it is passed to a helper method (a
                    // shared stageRows gave wrong outputs on PoCL without a bailout), while helpers
                    // over scalars and global arrays, like modified(), are inlined correctly.
                    for (int e = item; e < cn * d; e += groupSize) {
                        int j = e / d;
                        int x = e - j * d;
                        kChunk[j * MAX_HEAD_DIM + x] = k.get(kBase + (kv0 + c0 + j) * kRow + x);
                    }
                    for (int e = item; e < cn * dv; e += groupSize) {
                        int j = e / dv;
                        int x = e - j * dv;
                        vChunk[j * MAX_HEAD_DIM + x] = v.get(vBase + (kv0 + c0 + j) * vRow + x);
                    }
                    ctx.localBarrier();
                    if (active) {
                        float chunkMax = Float.NEGATIVE_INFINITY;
                        for (int j = 0; j < cn; j++) {
                            // Straight-line on purpose: with the dot product inside "if (allowed)"
                            // TornadoVM 5.2 emitted OpenCL in which the masked path fell through into
                            // the unmasked one, so the dot is always computed and masking is a select.
                            int allowed = 1;
                            if (mask >= 0) {
                                int c = c0 + j;
                                allowed = (maskBits.get(mask + rowInBlock * words + (c >> 5)) >>> (c & 31)) & 1;
                            }
                            float dot = 0f;
                            for (int x = 0; x < d; x++) {
                                dot += q.get(qRow + x) * kChunk[j * MAX_HEAD_DIM + x];
                            }
                            float score = s * dot;
                            if (steps > 0) {
                                int key = kv0 + c0 + j;
                                score = modified(s2 * dot, row, key, h, qLen, kvLen, queryOffset, mods, modValues) * LN2;
                            }
                            if (allowed == 0) {
                                score = Float.NEGATIVE_INFINITY;
                            }
                            probs[item * CHUNK + j] = score;
                            chunkMax = Math.max(chunkMax, score);
                        }
                        // A chunk with nothing allowed changes nothing; skipping it also keeps
                        // exp(−∞ − (−∞)) = NaN out of rows that have seen only masked keys.
                        if (chunkMax > Float.NEGATIVE_INFINITY) {
                            float mNew = Math.max(m, chunkMax);
                            float alpha = TornadoMath.exp(m - mNew);
                            float sum = 0f;
                            for (int j = 0; j < cn; j++) {
                                float p = TornadoMath.exp(probs[item * CHUNK + j] - mNew);
                                probs[item * CHUNK + j] = p;
                                sum += p;
                            }
                            l = l * alpha + sum;
                            for (int x = 0; x < dv; x++) {
                                float acc = out.get(oRow + x) * alpha;
                                for (int j = 0; j < cn; j++) {
                                    // Selected, not multiplied: a masked key's value (NaN, ±∞) must not reach the row.
                                    float p = probs[item * CHUNK + j];
                                    float term = p * vChunk[j * MAX_HEAD_DIM + x];
                                    if (p == 0f) {
                                        term = 0f;
                                    }
                                    acc += term;
                                }
                                out.set(oRow + x, acc);
                            }
                            m = mNew;
                        }
                    }
                }
            }
            if (active) {
                float inv = 0f;
                if (l > 0f) {
                    inv = 1f / l;
                }
                for (int x = 0; x < dv; x++) {
                    out.set(oRow + x, out.get(oRow + x) * inv);
                }
                if (params.get(DeviceGeometry.HAS_LSE) != 0) {
                    float logSumExp = Float.NEGATIVE_INFINITY;
                    if (l > 0f) {
                        logSumExp = m + TornadoMath.log(l);
                    }
                    lse.set(params.get(DeviceGeometry.L_OFF) + b * params.get(DeviceGeometry.L_B) + h * params.get(DeviceGeometry.L_H) + row * params.get(DeviceGeometry.L_ROW), logSumExp);
                }
            }
        }
    }
}
