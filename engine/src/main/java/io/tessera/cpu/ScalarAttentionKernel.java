package io.tessera.cpu;

import io.tessera.backend.AttentionGeometry;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The fused block-sparse attention kernel in plain Java: the readable reference for
 * {@link SimdAttentionKernel}. Same algorithm (tiles from the layout, online softmax, no score
 * matrix beyond one tile), one query row at a time.
 */
final class ScalarAttentionKernel {
    private ScalarAttentionKernel() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    static final class Scratch {
        float[] q = new float[0], scores = new float[0], acc = new float[0], max = new float[0], sum = new float[0];
        long[] mask = new long[0];

        void ensure(int d, int dv, int blockQ, int blockKV, int words) {
            if (q.length < d) q = new float[d];
            if (scores.length < blockKV) scores = new float[blockKV];
            if (acc.length < blockQ * dv) acc = new float[blockQ * dv];
            if (max.length < blockQ) { max = new float[blockQ]; sum = new float[blockQ]; }
            if (mask.length < blockQ * words) mask = new long[blockQ * words];
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static void queryBlock(AttentionCall c, int b, int h, int qBlock) {
        AttentionGeometry g = c.g;
        BlockLayout lay = c.layouts.forHead(h);
        int d = g.shape().headDim(), dv = g.shape().valueDim(), kvLen = g.shape().kvLen();
        int blockQ = lay.blockQ(), blockKV = lay.blockKV(), words = lay.maskWordsPerRow();
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, blockQ, blockKV, words);
        int hk = g.shape().kvHeadOf(h);
        int q0 = qBlock * blockQ, rows = Math.min(blockQ, g.shape().qLen() - q0);
        int[] offsets = lay.rowOffsets(), cols = lay.colIndices();
        byte[] kinds = lay.kinds();
        Arrays.fill(s.max, 0, rows, Float.NEGATIVE_INFINITY);
        Arrays.fill(s.sum, 0, rows, 0f);
        Arrays.fill(s.acc, 0, rows * dv, 0f);
        for (int t = offsets[qBlock]; t < offsets[qBlock + 1]; t++) {
            int kv0 = cols[t] * blockKV, n = Math.min(blockKV, kvLen - kv0);
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial) lay.fillTileMask(t, s.mask);
            for (int r = 0; r < rows; r++) {
                long qRow = g.qBase(b, h) + (q0 + r) * g.qRow();
                for (int x = 0; x < d; x++) s.q[x] = g.scale() * c.q.getAtIndex(FLOAT, qRow + x);
                // Scores of this row of the tile, masked to −∞, and their max.
                float tileMax = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) {
                    if (partial && (s.mask[r * words + (j >>> 6)] & (1L << j)) == 0) {
                        s.scores[j] = Float.NEGATIVE_INFINITY;
                        continue;
                    }
                    long kRow = g.kBase(b, hk) + (kv0 + j) * g.kRow();
                    float dot = 0f;
                    for (int x = 0; x < d; x++) dot += s.q[x] * c.k.getAtIndex(FLOAT, kRow + x);
                    s.scores[j] = dot;
                    tileMax = Math.max(tileMax, dot);
                }
                float oldMax = s.max[r], newMax = Math.max(oldMax, tileMax);
                if (newMax == Float.NEGATIVE_INFINITY) continue;   // nothing allowed yet: the row stays empty
                float alpha = (float) Math.exp(oldMax - newMax);   // exp(−∞) = 0 on the first allowed tile
                float sum = s.sum[r] * alpha;
                int acc = r * dv;
                for (int x = 0; x < dv; x++) s.acc[acc + x] *= alpha;
                for (int j = 0; j < n; j++) {
                    float p = (float) Math.exp(s.scores[j] - newMax);
                    if (p == 0f) continue;
                    sum += p;
                    long vRow = g.vBase(b, hk) + (kv0 + j) * g.vRow();
                    for (int x = 0; x < dv; x++) s.acc[acc + x] += p * c.v.getAtIndex(FLOAT, vRow + x);
                }
                s.sum[r] = sum;
                s.max[r] = newMax;
            }
        }
        for (int r = 0; r < rows; r++) {
            long oRow = g.oBase(b, h) + (q0 + r) * g.oRow();
            float sum = s.sum[r], inv = sum > 0 ? 1f / sum : 0f;
            for (int x = 0; x < dv; x++) c.out.setAtIndex(FLOAT, oRow + x, s.acc[r * dv + x] * inv);
            if (c.lse != null) {
                c.lse.setAtIndex(FLOAT, g.lBase(b, h) + (q0 + r) * g.lRow(), sum > 0 ? s.max[r] + (float) Math.log(sum) : Float.NEGATIVE_INFINITY);
            }
        }
    }
}
