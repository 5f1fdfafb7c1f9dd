package io.tessera.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The device decode step over a paged KV cache whose pools stay on the device between steps.
 *
 * <p>Two tasks, one execution plan per (shape, page size, pool): {@link #scatter} writes the rows
 * the host staged (tokens appended since the last step, one row per token and KV head) into the
 * resident pools, then {@link #decode} attends. Everything that changes per step — live lengths,
 * the pages each sequence reaches, the masks of PARTIAL pages, the staged-row count — is data in
 * one int array ({@code meta}) sent on every execution, so a plan serves every position.
 *
 * <p>{@code decode}: one work-item per (sequence, query head, query row) walks the pages its
 * sequence reaches, with an online softmax in natural units, page by page (running max and sum in
 * registers, the page's scores in scratch, the unnormalized output in its row of {@code out}). Grouped-query heads read their KV head's rows;
 * split-KV is not done on the device (the parallelism is B·H·qLen work-items).
 */
final class DecodeKernel {
    private DecodeKernel() {}

    // meta: fixed parameters, then per sequence the first tile (B + 1 entries) and the live length
    // (B entries), then per tile the pool page, its index in the sequence and its first mask word
    // (−1: FULL), then the PARTIAL pages' mask words (qLen rows of MASK_WORDS 32-bit words; bit j of
    // a row: that query may attend token j of the page).
    static final int STAGED = 0, RUN_DECODE = 1, BATCH = 2, HEADS = 3, GROUP = 4, Q_LEN = 5, HEAD_DIM = 6, VALUE_DIM = 7;
    static final int POOL_TOKENS = 8, PAGE_SIZE = 9, MASK_WORDS = 10, HAS_LSE = 11, TILE_CAPACITY = 12, KEY_OFF = 13, VALUE_OFF = 14;
    static final int FIXED = 15;

    static int seqStart(int b) { return FIXED + b; }
    static int lengthOf(int batch, int b) { return FIXED + batch + 1 + b; }
    static int tiles(int batch) { return FIXED + 2 * batch + 1; }
    static int masks(int batch, int tileCapacity) { return tiles(batch) + 3 * tileCapacity; }

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

    /**
     * q {@code [B, H, qLen, D]}, out {@code [B, H, qLen, Dv]}, lse {@code [B, H, qLen]}, contiguous;
     * scale in {@code scale[0]}; {@code scores}: pageSize floats of scratch per query row.
     */
    static void decode(KernelContext ctx, FloatArray q, FloatArray keyPool, FloatArray valuePool, FloatArray out, FloatArray lse,
                       IntArray meta, FloatArray scale, FloatArray scores) {
        int r = ctx.globalIdx;
        int batch = meta.get(BATCH), heads = meta.get(HEADS), qLen = meta.get(Q_LEN);
        if (meta.get(RUN_DECODE) != 0 && r < batch * heads * qLen) {
            int d = meta.get(HEAD_DIM), dv = meta.get(VALUE_DIM), pageSize = meta.get(PAGE_SIZE), words = meta.get(MASK_WORDS);
            int poolTokens = meta.get(POOL_TOKENS), tileCapacity = meta.get(TILE_CAPACITY);
            int b = r / (heads * qLen);
            int h = (r / qLen) % heads;
            int i = r % qLen;
            int hk = h / meta.get(GROUP);
            int length = meta.get(FIXED + batch + 1 + b);
            int tileBase = FIXED + 2 * batch + 1;
            int maskBase = tileBase + 3 * tileCapacity;
            int kHead = meta.get(KEY_OFF) + hk * poolTokens * d;
            int vHead = meta.get(VALUE_OFF) + hk * poolTokens * dv;
            int qRow = r * d, oRow = r * dv;
            float s = scale.get(0);
            float m = Float.NEGATIVE_INFINITY;
            float l = 0f;
            for (int x = 0; x < dv; x++) {
                out.set(oRow + x, 0f);
            }
            int end = meta.get(FIXED + b + 1);
            // Per page: the scores first (in this row's slice of the scratch), then one rescale of
            // the running output, then the values weighted by the page's probabilities.
            int sRow = r * pageSize;
            for (int t = meta.get(FIXED + b); t < end; t++) {
                int page = meta.get(tileBase + 3 * t);
                int logical = meta.get(tileBase + 3 * t + 1);
                int mask = meta.get(tileBase + 3 * t + 2);
                int tokens = Math.min(pageSize, length - logical * pageSize);
                float pageMax = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < tokens; j++) {
                    int allowed = 1;
                    if (mask >= 0) {
                        allowed = (meta.get(maskBase + mask + i * words + (j >> 5)) >>> (j & 31)) & 1;
                    }
                    int kRow = kHead + (page * pageSize + j) * d;
                    float dot = 0f;
                    for (int x = 0; x < d; x++) {
                        dot += q.get(qRow + x) * keyPool.get(kRow + x);
                    }
                    float score = s * dot;
                    if (allowed == 0) {
                        score = Float.NEGATIVE_INFINITY;
                    }
                    scores.set(sRow + j, score);
                    pageMax = Math.max(pageMax, score);
                }
                // A page with nothing allowed changes nothing (and keeps exp(−∞ − (−∞)) out).
                if (pageMax > Float.NEGATIVE_INFINITY) {
                    float mNew = Math.max(m, pageMax);
                    float alpha = TornadoMath.exp(m - mNew);
                    float sum = 0f;
                    for (int j = 0; j < tokens; j++) {
                        float p = TornadoMath.exp(scores.get(sRow + j) - mNew);
                        scores.set(sRow + j, p);
                        sum += p;
                    }
                    l = l * alpha + sum;
                    for (int x = 0; x < dv; x++) {
                        float acc = out.get(oRow + x) * alpha;
                        for (int j = 0; j < tokens; j++) {
                            // A key the row may not attend has probability 0 and its value, which may
                            // be anything (NaN), is not read.
                            float p = scores.get(sRow + j);
                            if (p > 0f) {
                                acc += p * valuePool.get(vHead + (page * pageSize + j) * dv + x);
                            }
                        }
                        out.set(oRow + x, acc);
                    }
                    m = mNew;
                }
            }
            float inv = 0f;
            if (l > 0f) {
                inv = 1f / l;
            }
            for (int x = 0; x < dv; x++) {
                out.set(oRow + x, out.get(oRow + x) * inv);
            }
            if (meta.get(HAS_LSE) != 0) {
                float logSumExp = Float.NEGATIVE_INFINITY;
                if (l > 0f) {
                    logSumExp = m + TornadoMath.log(l);
                }
                lse.set(r, logSumExp);
            }
        }
    }
}
