package io.tessera.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The backward pass of {@link AttentionKernel} (FlashAttention-2 style), as two device kernels that
 * read the same compiled layout and recompute the probabilities from q, k and the forward's LSE:
 * P = exp(s − lse), dP = dO·v, D = rowsum(dO ∘ O), dS = P·(dP − D) (through the score modifier's
 * derivatives). Every gradient element has exactly one writer and is summed in a fixed order, so
 * there are no atomics and the result does not depend on scheduling:
 * <ul>
 * <li>{@link #queryGradients}: one work-group per (batch, head, query block), one work-item per row
 *     (as the forward), dq = scale·Σ_j dS_ij·k_j over the row's tiles in key-block order;</li>
 * <li>{@link #keyGradients}: one work-group per (batch, key/value head, key block), one work-item
 *     per key, over the block's key-major index (the layout's CSC) of every query head sharing the
 *     key/value head (GQA), in head then query-block then row order:
 *     dv_j = Σ_i P_ij·dO_i, dk_j = scale·Σ_i dS_ij·q_i. A learnable relative-bias table's gradient
 *     is summed per (batch, query head, key block, bucket) by the one item that owns the bucket,
 *     from the group's dS tile in local memory; the host adds those partial sums in a fixed order.</li>
 * </ul>
 * Masked pairs and fully masked rows (LSE −∞) contribute exactly 0, selected rather than
 * multiplied, so garbage in keys, values or queries a pair does not attend never reaches a gradient.
 */
final class AttentionBackwardKernel {
    private AttentionBackwardKernel() {}

    static final int CHUNK = AttentionKernel.CHUNK;
    static final int MAX_HEAD_DIM = AttentionKernel.MAX_HEAD_DIM;
    static final int MAX_WORK_GROUP = AttentionKernel.MAX_WORK_GROUP;

    // Indices into params after the common geometry (DeviceGeometry): the forward's block
    // parameters at the same places, then the key-major grid and the gradients' offsets/strides.
    static final int BLOCK_Q = AttentionKernel.BLOCK_Q, BLOCK_KV = AttentionKernel.BLOCK_KV, Q_BLOCKS = AttentionKernel.Q_BLOCKS;
    static final int MASK_WORDS = AttentionKernel.MASK_WORDS, QUERY_GROUP = AttentionKernel.WORK_GROUP;
    static final int KV_BLOCKS = DeviceGeometry.COMMON + 5, KEY_GROUP = KV_BLOCKS + 1;
    static final int DO_OFF = KEY_GROUP + 1, DO_B = DO_OFF + 1, DO_H = DO_OFF + 2, DO_ROW = DO_OFF + 3;
    static final int DQ_OFF = DO_OFF + 4, DQ_B = DQ_OFF + 1, DQ_H = DQ_OFF + 2, DQ_ROW = DQ_OFF + 3;
    static final int DK_OFF = DQ_OFF + 4, DK_B = DK_OFF + 1, DK_H = DK_OFF + 2, DK_ROW = DK_OFF + 3;
    static final int DV_OFF = DK_OFF + 4, DV_B = DV_OFF + 1, DV_H = DV_OFF + 2, DV_ROW = DV_OFF + 3;
    static final int LEARNED = DV_OFF + 4;
    static final int EXTRA_PARAMS = LEARNED + 1 - DeviceGeometry.COMMON;

    // Per modifier step in `learn`: where its bucket map starts in `bucketOf` (−1: not a learnable
    // table), its bucket count, and where its partial sums start in `partials`.
    static final int LEARN_MAP = 0, LEARN_BUCKETS = 1, LEARN_PARTIALS = 2, LEARN_STRIDE = 3;

    /**
     * The product of the soft-capping steps' derivatives 1 − tanh² from step {@code first} on (the
     * chain rule's factor between step {@code first}'s input and the final score), recomputing the
     * steps before them; 1 when there are none.
     */
    static float capSlope(float score2, int first, int row, int key, int h, int qLen, int kvLen, int queryOffset, IntArray mods, FloatArray modValues) {
        int steps = mods.get(AttentionKernel.MOD_STEPS);
        float s = score2;
        float slope = 1f;
        for (int st = 0; st < steps; st++) {
            int kind = mods.get(AttentionKernel.MOD_FIRST + 2 * st);
            int at = mods.get(AttentionKernel.MOD_FIRST + 2 * st + 1);
            if (kind == AttentionKernel.MOD_LINEAR) {
                s = s + (float) (key - row - queryOffset) * modValues.get(at + h);
            } else if (kind == AttentionKernel.MOD_DISTANCE) {
                s = s + modValues.get(at + h * (qLen + kvLen - 1) + row - key + kvLen - 1);
            } else if (kind == AttentionKernel.MOD_KEY) {
                s = s + modValues.get(at + h * kvLen + key);
            } else {
                float t = TornadoMath.tanh(s * modValues.get(at + 1));
                s = t * modValues.get(at);
                if (st >= first) {
                    slope = slope * (1f - t * t);
                }
            }
        }
        return slope;
    }

    /** dq of one (batch, head, query block): one item per row, the tiles' keys and values staged chunk by chunk in local memory. */
    static void queryGradients(KernelContext ctx, FloatArray q, FloatArray k, FloatArray v, FloatArray out, FloatArray lse, FloatArray dOut, FloatArray dq,
                               IntArray params, FloatArray scale, IntArray rowStart, IntArray cols, IntArray maskStart, IntArray maskBits,
                               IntArray mods, FloatArray modValues) {
        float[] kChunk = ctx.allocateFloatLocalArray(CHUNK * MAX_HEAD_DIM);
        float[] vChunk = ctx.allocateFloatLocalArray(CHUNK * MAX_HEAD_DIM);
        float[] ds = ctx.allocateFloatLocalArray(MAX_WORK_GROUP * CHUNK);

        int heads = params.get(DeviceGeometry.HEADS), qLen = params.get(DeviceGeometry.Q_LEN), kvLen = params.get(DeviceGeometry.KV_LEN);
        int d = params.get(DeviceGeometry.HEAD_DIM), dv = params.get(DeviceGeometry.VALUE_DIM);
        int blockQ = params.get(BLOCK_Q), blockKV = params.get(BLOCK_KV), qBlocks = params.get(Q_BLOCKS);
        int words = params.get(MASK_WORDS), groupSize = params.get(QUERY_GROUP);
        float s = scale.get(0);
        float s2 = scale.get(1);
        int steps = mods.get(AttentionKernel.MOD_STEPS);
        int queryOffset = mods.get(AttentionKernel.MOD_QUERY_OFFSET);

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
        int lBase = params.get(DeviceGeometry.L_OFF) + b * params.get(DeviceGeometry.L_B) + h * params.get(DeviceGeometry.L_H);
        int dOBase = params.get(DO_OFF) + b * params.get(DO_B) + h * params.get(DO_H);
        int dqBase = params.get(DQ_OFF) + b * params.get(DQ_B) + h * params.get(DQ_H);
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
            int dORow = dOBase + row * params.get(DO_ROW);
            int dqRow = dqBase + row * params.get(DQ_ROW);
            float rowLse = Float.NEGATIVE_INFINITY;
            float delta = 0f;
            if (active) {
                rowLse = lse.get(lBase + row * params.get(DeviceGeometry.L_ROW));
                for (int x = 0; x < dv; x++) {
                    delta += dOut.get(dORow + x) * out.get(oRow + x);
                }
                for (int x = 0; x < d; x++) {
                    dq.set(dqRow + x, 0f);
                }
            }
            // A fully masked row (LSE −∞) has no probabilities: all its gradients are 0.
            boolean attends = rowLse > Float.NEGATIVE_INFINITY;
            for (int t = firstTile; t < endTile; t++) {
                int kv0 = cols.get(t) * blockKV;
                int n = Math.min(blockKV, kvLen - kv0);
                int mask = maskStart.get(t);
                for (int c0 = 0; c0 < n; c0 += CHUNK) {
                    int cn = Math.min(CHUNK, n - c0);
                    ctx.localBarrier();
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
                        for (int j = 0; j < cn; j++) {
                            int allowed = 1;
                            if (mask >= 0) {
                                int c = c0 + j;
                                allowed = (maskBits.get(mask + rowInBlock * words + (c >> 5)) >>> (c & 31)) & 1;
                            }
                            int key = kv0 + c0 + j;
                            float dot = 0f;
                            for (int x = 0; x < d; x++) {
                                dot += q.get(qRow + x) * kChunk[j * MAX_HEAD_DIM + x];
                            }
                            float score = s * dot;
                            float slope = 1f;
                            if (steps > 0) {
                                score = AttentionKernel.modified(s2 * dot, row, key, h, qLen, kvLen, queryOffset, mods, modValues) * AttentionKernel.LN2;
                                slope = capSlope(s2 * dot, 0, row, key, h, qLen, kvLen, queryOffset, mods, modValues);
                            }
                            float dp = 0f;
                            for (int x = 0; x < dv; x++) {
                                dp += dOut.get(dORow + x) * vChunk[j * MAX_HEAD_DIM + x];
                            }
                            float p = TornadoMath.exp(score - rowLse);
                            float g = p * (dp - delta) * slope;
                            if (allowed == 0 || !attends) {
                                g = 0f;
                            }
                            ds[item * CHUNK + j] = g;
                        }
                        for (int x = 0; x < d; x++) {
                            float acc = dq.get(dqRow + x);
                            for (int j = 0; j < cn; j++) {
                                float g = ds[item * CHUNK + j];
                                float term = g * kChunk[j * MAX_HEAD_DIM + x];
                                if (g == 0f) {
                                    term = 0f;
                                }
                                acc += term;
                            }
                            dq.set(dqRow + x, acc);
                        }
                    }
                }
            }
            if (active) {
                for (int x = 0; x < d; x++) {
                    dq.set(dqRow + x, dq.get(dqRow + x) * s);
                }
            }
        }
    }

    /**
     * dk and dv of one (batch, key/value head, key block), and the learnable tables' partial sums:
     * one item per key (keys in chunks of the group's size), the query rows of each tile staged
     * {@link #CHUNK} at a time in local memory with their LSE and D.
     *
     * @param colStart  per query head h and key block kb, the first key-major entry at {@code h·(kvBlocks+1) + kb}
     * @param colRows   query block of each key-major entry
     * @param colMask   first mask word of each key-major entry's tile, −1 for a FULL tile
     * @param learn     per modifier step, {@link #LEARN_STRIDE} ints (LEARN_*)
     * @param bucketOf  the learnable tables' bucket of each distance index i − j + kvLen − 1
     * @param partials  per learnable step, per (batch, query head, key block) its buckets' partial sums
     */
    static void keyGradients(KernelContext ctx, FloatArray q, FloatArray k, FloatArray v, FloatArray out, FloatArray lse, FloatArray dOut,
                             FloatArray dk, FloatArray dvGrad, IntArray params, FloatArray scale, IntArray colStart, IntArray colRows, IntArray colMask,
                             IntArray maskBits, IntArray mods, FloatArray modValues, IntArray learn, IntArray bucketOf, FloatArray partials) {
        float[] qChunk = ctx.allocateFloatLocalArray(CHUNK * MAX_HEAD_DIM);
        float[] dOChunk = ctx.allocateFloatLocalArray(CHUNK * MAX_HEAD_DIM);
        float[] rowLse = ctx.allocateFloatLocalArray(CHUNK);
        float[] rowDelta = ctx.allocateFloatLocalArray(CHUNK);
        float[] dsTile = ctx.allocateFloatLocalArray(CHUNK * MAX_WORK_GROUP);
        float[] scoreTile = ctx.allocateFloatLocalArray(CHUNK * MAX_WORK_GROUP);

        int heads = params.get(DeviceGeometry.HEADS), qLen = params.get(DeviceGeometry.Q_LEN), kvLen = params.get(DeviceGeometry.KV_LEN);
        int kvHeads = heads / params.get(DeviceGeometry.QUERY_HEADS_PER_KV_HEAD);
        int perKv = params.get(DeviceGeometry.QUERY_HEADS_PER_KV_HEAD);
        int d = params.get(DeviceGeometry.HEAD_DIM), dv = params.get(DeviceGeometry.VALUE_DIM);
        int blockQ = params.get(BLOCK_Q), blockKV = params.get(BLOCK_KV), kvBlocks = params.get(KV_BLOCKS);
        int words = params.get(MASK_WORDS), groupSize = params.get(KEY_GROUP);
        int learned = params.get(LEARNED);
        float s = scale.get(0);
        float s2 = scale.get(1);
        int steps = mods.get(AttentionKernel.MOD_STEPS);
        int queryOffset = mods.get(AttentionKernel.MOD_QUERY_OFFSET);

        int item = ctx.localIdx;
        int group = ctx.groupIdx;
        int kb = group % kvBlocks;
        int bhk = group / kvBlocks;
        int b = bhk / kvHeads;
        int hk = bhk % kvHeads;
        int kv0 = kb * blockKV;
        int n = Math.min(blockKV, kvLen - kv0);
        int kBase = params.get(DeviceGeometry.K_OFF) + b * params.get(DeviceGeometry.K_B) + hk * params.get(DeviceGeometry.K_H);
        int vBase = params.get(DeviceGeometry.V_OFF) + b * params.get(DeviceGeometry.V_B) + hk * params.get(DeviceGeometry.V_H);
        int dkBase = params.get(DK_OFF) + b * params.get(DK_B) + hk * params.get(DK_H);
        int dvBase = params.get(DV_OFF) + b * params.get(DV_B) + hk * params.get(DV_H);
        int kRow = params.get(DeviceGeometry.K_ROW), vRow = params.get(DeviceGeometry.V_ROW);
        int dkRow = params.get(DK_ROW), dvRow = params.get(DV_ROW);

        // This group's partial sums: zeroed by the item that owns each bucket, which alone adds to it.
        if (learned > 0) {
            for (int st = 0; st < steps; st++) {
                int buckets = learn.get(st * LEARN_STRIDE + LEARN_BUCKETS);
                if (learn.get(st * LEARN_STRIDE + LEARN_MAP) >= 0) {
                    for (int h = hk * perKv; h < hk * perKv + perKv; h++) {
                        int base = learn.get(st * LEARN_STRIDE + LEARN_PARTIALS) + ((b * heads + h) * kvBlocks + kb) * buckets;
                        for (int bk = item; bk < buckets; bk += groupSize) {
                            partials.set(base + bk, 0f);
                        }
                    }
                }
            }
        }

        for (int k0 = 0; k0 < n; k0 += groupSize) {
            int j = k0 + item;
            boolean active = j < n;
            int key = kv0 + j;
            int kRowAt = kBase + key * kRow;
            int vRowAt = vBase + key * vRow;
            int dkRowAt = dkBase + key * dkRow;
            int dvRowAt = dvBase + key * dvRow;
            if (active) {
                for (int x = 0; x < d; x++) {
                    dk.set(dkRowAt + x, 0f);
                }
                for (int x = 0; x < dv; x++) {
                    dvGrad.set(dvRowAt + x, 0f);
                }
            }
            for (int h = hk * perKv; h < hk * perKv + perKv; h++) {
                int qBase = params.get(DeviceGeometry.Q_OFF) + b * params.get(DeviceGeometry.Q_B) + h * params.get(DeviceGeometry.Q_H);
                int oBase = params.get(DeviceGeometry.O_OFF) + b * params.get(DeviceGeometry.O_B) + h * params.get(DeviceGeometry.O_H);
                int lBase = params.get(DeviceGeometry.L_OFF) + b * params.get(DeviceGeometry.L_B) + h * params.get(DeviceGeometry.L_H);
                int dOBase = params.get(DO_OFF) + b * params.get(DO_B) + h * params.get(DO_H);
                int firstEntry = colStart.get(h * (kvBlocks + 1) + kb);
                int endEntry = colStart.get(h * (kvBlocks + 1) + kb + 1);
                for (int e = firstEntry; e < endEntry; e++) {
                    int q0 = colRows.get(e) * blockQ;
                    int rows = Math.min(blockQ, qLen - q0);
                    int mask = colMask.get(e);
                    for (int r0 = 0; r0 < rows; r0 += CHUNK) {
                        int rn = Math.min(CHUNK, rows - r0);
                        ctx.localBarrier();
                        for (int el = item; el < rn * d; el += groupSize) {
                            int r = el / d;
                            int x = el - r * d;
                            qChunk[r * MAX_HEAD_DIM + x] = q.get(qBase + (q0 + r0 + r) * params.get(DeviceGeometry.Q_ROW) + x);
                        }
                        for (int el = item; el < rn * dv; el += groupSize) {
                            int r = el / dv;
                            int x = el - r * dv;
                            dOChunk[r * MAX_HEAD_DIM + x] = dOut.get(dOBase + (q0 + r0 + r) * params.get(DO_ROW) + x);
                        }
                        ctx.localBarrier();
                        for (int r = item; r < rn; r += groupSize) {
                            int row = q0 + r0 + r;
                            float delta = 0f;
                            int oRow = oBase + row * params.get(DeviceGeometry.O_ROW);
                            for (int x = 0; x < dv; x++) {
                                delta += dOChunk[r * MAX_HEAD_DIM + x] * out.get(oRow + x);
                            }
                            rowDelta[r] = delta;
                            rowLse[r] = lse.get(lBase + row * params.get(DeviceGeometry.L_ROW));
                        }
                        ctx.localBarrier();
                        for (int r = 0; r < rn; r++) {
                            int rowInBlock = r0 + r;
                            int row = q0 + rowInBlock;
                            float g = 0f;
                            float dot = 0f;
                            if (active) {
                                int allowed = 1;
                                if (mask >= 0) {
                                    allowed = (maskBits.get(mask + rowInBlock * words + (j >> 5)) >>> (j & 31)) & 1;
                                }
                                for (int x = 0; x < d; x++) {
                                    dot += qChunk[r * MAX_HEAD_DIM + x] * k.get(kRowAt + x);
                                }
                                float score = s * dot;
                                float slope = 1f;
                                if (steps > 0) {
                                    score = AttentionKernel.modified(s2 * dot, row, key, h, qLen, kvLen, queryOffset, mods, modValues) * AttentionKernel.LN2;
                                    slope = capSlope(s2 * dot, 0, row, key, h, qLen, kvLen, queryOffset, mods, modValues);
                                }
                                float dp = 0f;
                                for (int x = 0; x < dv; x++) {
                                    dp += dOChunk[r * MAX_HEAD_DIM + x] * v.get(vRowAt + x);
                                }
                                float p = TornadoMath.exp(score - rowLse[r]);
                                g = p * (dp - rowDelta[r]);
                                if (allowed == 0 || !(rowLse[r] > Float.NEGATIVE_INFINITY)) {
                                    p = 0f;
                                    g = 0f;
                                }
                                float dS = g * slope;
                                for (int x = 0; x < dv; x++) {
                                    float term = p * dOChunk[r * MAX_HEAD_DIM + x];
                                    if (p == 0f) {
                                        term = 0f;
                                    }
                                    dvGrad.set(dvRowAt + x, dvGrad.get(dvRowAt + x) + term);
                                }
                                for (int x = 0; x < d; x++) {
                                    float term = dS * qChunk[r * MAX_HEAD_DIM + x];
                                    if (dS == 0f) {
                                        term = 0f;
                                    }
                                    dk.set(dkRowAt + x, dk.get(dkRowAt + x) + term);
                                }
                            }
                            dsTile[r * MAX_WORK_GROUP + item] = g;
                            scoreTile[r * MAX_WORK_GROUP + item] = s2 * dot;
                        }
                        if (learned > 0) {
                            ctx.localBarrier();
                            // The item owning bucket bk adds the tile's dS of every pair in that bucket, rows then keys.
                            for (int st = 0; st < steps; st++) {
                                int map = learn.get(st * LEARN_STRIDE + LEARN_MAP);
                                int buckets = learn.get(st * LEARN_STRIDE + LEARN_BUCKETS);
                                if (map >= 0) {
                                    int base = learn.get(st * LEARN_STRIDE + LEARN_PARTIALS) + ((b * heads + h) * kvBlocks + kb) * buckets;
                                    for (int bk = item; bk < buckets; bk += groupSize) {
                                        float sum = partials.get(base + bk);
                                        for (int r = 0; r < rn; r++) {
                                            int row = q0 + r0 + r;
                                            for (int jj = 0; jj < groupSize; jj++) {
                                                int pairKey = kv0 + k0 + jj;
                                                float g = dsTile[r * MAX_WORK_GROUP + jj];
                                                if (k0 + jj < n && g != 0f) {
                                                    if (bucketOf.get(map + row - pairKey + kvLen - 1) == bk) {
                                                        sum += g * capSlope(scoreTile[r * MAX_WORK_GROUP + jj], st + 1, row, pairKey, h, qLen, kvLen,
                                                                queryOffset, mods, modValues);
                                                    }
                                                }
                                            }
                                        }
                                        partials.set(base + bk, sum);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if (active) {
                for (int x = 0; x < d; x++) {
                    dk.set(dkRowAt + x, dk.get(dkRowAt + x) * s);
                }
            }
        }
    }
}
