package io.tessera.cpu;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The decode kernel in plain Java: the readable twin of {@link SimdDecodeKernel}, bit for bit.
 *
 * <p>One work item of a {@link DecodeCall}: the rows of one key/value head (its G query heads ×
 * qLen queries) against the tiles of one split, walking the layout's tiles (one per page) in order
 * and each page in chunks of {@link #CHUNK} keys (one mask word). Per row and chunk, the fused
 * kernel's base-2 online softmax: scores with the queries pre-scaled by scale·log2(e) (an fma chain
 * in dimension order), masked keys −∞, the chunk max, probabilities by the shared 2^x polynomial
 * ({@link ScalarAttentionKernel#exp2}), their sum in {@link #PARTIALS} interleaved partial sums
 * (key j into partial j mod 16: a vector of any width up to 16 lanes keeps the same sums in its
 * lanes), then output += Σ_j p_j·v_j by fmas in key order, skipping zero probabilities so a key a
 * row does not attend contributes nothing, NaN or not.
 */
final class ScalarDecodeKernel {
    private ScalarDecodeKernel() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Keys per chunk: one 64-bit word of a tile's mask row. */
    static final int CHUNK = 64;
    /** Interleaved partial sums of a chunk's probabilities (the SIMD kernel's lanes, for widths up to 16). */
    static final int PARTIALS = 16;

    static final class Scratch {
        float[] q = new float[0], o = new float[0], m = new float[0], l = new float[0];
        final float[] p = new float[CHUNK], partial = new float[PARTIALS];
        long[] mask = new long[0];

        void ensure(int rows, int d, int dv, int maskWords) {
            if (q.length < rows * d) q = new float[rows * d];
            if (o.length < rows * dv) o = new float[rows * dv];
            if (m.length < rows) { m = new float[rows]; l = new float[rows]; }
            if (mask.length < maskWords) mask = new long[maskWords];
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static void item(DecodeCall c, int item) {
        int run = item / c.kvHeads, hk = item % c.kvHeads, b = c.runSeq[run];
        BlockLayout lay = c.layouts[b];
        int[] table = c.tables[b], cols = lay.colIndices();
        byte[] kinds = lay.kinds();
        int rows = c.rows, d = c.d, dv = c.dv, qLen = c.qLen, words = lay.maskWordsPerRow(), pageSize = c.pageSize;
        Scratch s = SCRATCH.get();
        s.ensure(rows, d, dv, qLen * words);
        float qScale = c.scale * ScalarAttentionKernel.LOG2E;
        for (int r = 0; r < rows; r++) {
            long row = c.queryRow(b, hk, r);
            for (int x = 0; x < d; x++) s.q[r * d + x] = c.q.getAtIndex(FLOAT, row + x) * qScale;
        }
        Arrays.fill(s.m, 0, rows, Float.NEGATIVE_INFINITY);
        Arrays.fill(s.l, 0, rows, 0f);
        Arrays.fill(s.o, 0, rows * dv, 0f);
        for (int t = c.runFrom[run]; t < c.runTo[run]; t++) {
            int page = cols[t], tokens = Math.min(pageSize, lay.kvLen() - page * pageSize);
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial) lay.fillTileMask(t, s.mask);
            long slot0 = (long) table[page] * pageSize;
            for (int c0 = 0; c0 < tokens; c0 += CHUNK) {
                int n = Math.min(CHUNK, tokens - c0);
                long chunkBits = n == 64 ? -1L : (1L << n) - 1;
                for (int r = 0; r < rows; r++) {
                    long bits = partial ? s.mask[(r % qLen) * words + (c0 >>> 6)] & chunkBits : chunkBits;
                    if (bits == 0) continue;   // no key of this chunk for this row: its state is unchanged
                    float max = Float.NEGATIVE_INFINITY;
                    for (int j = 0; j < n; j++) {
                        float score = Float.NEGATIVE_INFINITY;
                        if ((bits & (1L << j)) != 0) {
                            long kRow = c.keyRow(hk, slot0 + c0 + j);
                            score = 0f;
                            for (int x = 0; x < d; x++) score = Math.fma(s.q[r * d + x], c.k.getAtIndex(FLOAT, kRow + x), score);
                        }
                        s.p[j] = score;
                        max = Math.max(max, score);
                    }
                    float mOld = s.m[r], mNew = Math.max(mOld, max), shift = mNew == Float.NEGATIVE_INFINITY ? 0f : mNew;
                    Arrays.fill(s.partial, 0f);
                    for (int j = 0; j < n; j++) {
                        s.p[j] = ScalarAttentionKernel.exp2(s.p[j] - shift);
                        s.partial[j & (PARTIALS - 1)] += s.p[j];
                    }
                    float alpha = ScalarAttentionKernel.exp2(mOld - shift);
                    s.l[r] = Math.fma(alpha, s.l[r], sumPartials(s.partial));
                    s.m[r] = mNew;
                    int o = r * dv;
                    if (alpha != 1f) for (int x = 0; x < dv; x++) s.o[o + x] *= alpha;
                    for (int j = 0; j < n; j++) {
                        float p = s.p[j];
                        if (p == 0f) continue;
                        long vRow = c.valueRow(hk, slot0 + c0 + j);
                        for (int x = 0; x < dv; x++) s.o[o + x] = Math.fma(p, c.v.getAtIndex(FLOAT, vRow + x), s.o[o + x]);
                    }
                }
            }
        }
        c.storePartial(item, s.o, s.m, s.l);
    }

    /** The chunk's probability sum from its interleaved partials, added in partial order (both kernels). */
    static float sumPartials(float[] partial) {
        float sum = 0f;
        for (int i = 0; i < PARTIALS; i++) sum += partial[i];
        return sum;
    }
}
