package io.tessera.cpu;

import java.util.Arrays;

/**
 * The decode kernel in plain Java: the readable twin of {@link SimdDecodeKernel}, bit for bit.
 *
 * <p>One work item of a {@link DecodeCall}: the rows of one key/value head (its G query heads ×
 * qLen queries) against the tiles of one split, walking the layout's tiles (one per page) in order
 * in chunks of {@link #CHUNK} keys ({@link DecodeCall.Chunks}: a chunk runs across page boundaries,
 * so small pages share one softmax step; only a split's last chunk is short). Per row and chunk, the fused
 * kernel's base-2 online softmax: scores with the queries pre-scaled by scale·log2(e), each a dot
 * product over {@link #PARTIALS} interleaved partial sums (dimension x into partial x mod 16 by an
 * fma chain in dimension order, the dimensions padded with zeros to a multiple of 16) folded as a
 * halving tree ({@link #dot}: what the SIMD kernel's lanes compute at any width up to 16, with the
 * head dimension in lanes), masked keys −∞, the chunk max, probabilities by the shared 2^x
 * polynomial ({@link ScalarAttentionKernel#exp2}), their sum in 16 interleaved partial sums (key j
 * into partial j mod 16), then output += Σ_j p_j·v_j by fmas in key order, skipping zero
 * probabilities so a key a row does not attend contributes nothing, NaN or not. Keys and values of
 * a half-precision cache (BF16, F16) are widened exactly to float32 as they are read.
 */
final class ScalarDecodeKernel {
    private ScalarDecodeKernel() {}

    /** Keys per chunk: one 64-bit word of a tile's mask row. */
    static final int CHUNK = 64;
    /** Interleaved partial sums of a chunk's probabilities (the SIMD kernel's lanes, for widths up to 16). */
    static final int PARTIALS = 16;

    static final class Scratch {
        float[] q = new float[0], o = new float[0], m = new float[0], l = new float[0], k = new float[0];
        final float[] p = new float[CHUNK], partial = new float[PARTIALS], dotPartial = new float[PARTIALS];
        final DecodeCall.Chunks chunks = new DecodeCall.Chunks();

        void ensure(int rows, int d, int dv) {
            int dPad = paddedDim(d);
            if (q.length < rows * dPad) q = new float[rows * dPad];
            if (k.length < dPad) k = new float[dPad];   // one key row, widened; zeros past d
            if (o.length < rows * dv) o = new float[rows * dv];
            if (m.length < rows) { m = new float[rows]; l = new float[rows]; }
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static void item(DecodeCall c, int item) {
        int run = item / c.kvHeads, hk = item % c.kvHeads, b = c.runSeq[run];
        int rows = c.rows, d = c.d, dv = c.dv, qLen = c.qLen;
        Scratch s = SCRATCH.get();
        s.ensure(rows, d, dv);
        float qScale = c.scale * ScalarAttentionKernel.LOG2E;
        int dPad = paddedDim(d);
        for (int r = 0; r < rows; r++) {
            long row = c.queryRow(b, hk, r);
            for (int x = 0; x < dPad; x++) s.q[r * dPad + x] = x < d ? c.qType.get(c.q, row + x) * qScale : 0f;
        }
        Arrays.fill(s.k, d, dPad, 0f);
        Arrays.fill(s.m, 0, rows, Float.NEGATIVE_INFINITY);
        Arrays.fill(s.l, 0, rows, 0f);
        Arrays.fill(s.o, 0, rows * dv, 0f);
        DecodeCall.Chunks chunks = s.chunks;
        chunks.start(c, run);
        while (chunks.next()) {
            int n = chunks.n;
            for (int r = 0; r < rows; r++) {
                long bits = chunks.queryBits[r % qLen];
                if (bits == 0) continue;   // no key of this chunk for this row: its state is unchanged
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) {
                    float score = Float.NEGATIVE_INFINITY;
                    if ((bits & (1L << j)) != 0) {
                        long kRow = c.keyRow(hk, chunks.slot[j]);
                        for (int x = 0; x < d; x++) s.k[x] = c.kType.get(c.k, kRow + x);
                        score = dot(s.q, r * dPad, s.k, dPad, s.dotPartial);
                        if (c.mod != null) score = c.modified(b, hk, r, chunks.key[j], score);
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
                    long vRow = c.valueRow(hk, chunks.slot[j]);
                    for (int x = 0; x < dv; x++) s.o[o + x] = Math.fma(p, c.vType.get(c.v, vRow + x), s.o[o + x]);
                }
            }
        }
        c.storePartial(item, s.o, s.m, s.l);
    }

    /** The head dimension padded with zeros to a whole number of {@link #PARTIALS}: the dot product's length. */
    static int paddedDim(int d) { return (d + PARTIALS - 1) / PARTIALS * PARTIALS; }

    /**
     * q·k over {@code dPad} dimensions: partial i = fma chain over dimensions x ≡ i (mod 16) in
     * order, then the 16 partials folded as a halving tree (p[i] + p[i+8], then + p[i+4], …),
     * exactly the order of the SIMD kernel's lanes and its transposing reduction.
     */
    static float dot(float[] q, int qOff, float[] k, int dPad, float[] partial) {
        Arrays.fill(partial, 0f);
        for (int x = 0; x < dPad; x++) partial[x & (PARTIALS - 1)] = Math.fma(q[qOff + x], k[x], partial[x & (PARTIALS - 1)]);
        for (int half = PARTIALS / 2; half >= 1; half >>= 1) {
            for (int i = 0; i < half; i++) partial[i] = partial[i] + partial[i + half];
        }
        return partial[0];
    }

    /** The chunk's probability sum from its interleaved partials, added in partial order (both kernels). */
    static float sumPartials(float[] partial) {
        float sum = 0f;
        for (int i = 0; i < PARTIALS; i++) sum += partial[i];
        return sum;
    }
}
