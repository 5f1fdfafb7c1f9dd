package io.tessera.cpu;

import static io.tessera.cpu.ScalarDecodeKernel.CHUNK;
import static io.tessera.cpu.ScalarDecodeKernel.PARTIALS;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The decode kernel on the Vector API: few query rows against a long paged cache.
 *
 * <p>Keys sit in vector lanes, not queries: with one or a few queries per head, query lanes would
 * stay mostly empty. The rows of an item are the G query heads that share a key/value head times
 * the qLen queries, so each K/V chunk is read from the pool once for all of them. Per chunk of
 * {@link ScalarDecodeKernel#CHUNK} keys of a page (read in place from the pool), the keys are
 * transposed once into lane groups by the fused kernel's {@code packTransposed}, and the fused
 * kernel's QKᵀ micro-kernel {@code scores} runs with the roles swapped — the query rows broadcast,
 * the keys in lanes. The softmax step is the fused kernel's base-2 one (same 2^x polynomial and
 * constants, from the scalar twin) per row over key lanes; its sum is kept in 16 interleaved
 * partials, so the result does not depend on the vector width. Values are read in place, their
 * dimension in lanes. Every float is the one {@link ScalarDecodeKernel} computes.
 */
final class SimdDecodeKernel {
    private SimdDecodeKernel() {}

    private static final VectorSpecies<Float> F = VectorConfig.FLOATS;
    private static final int L = F.length();
    private static final int GROUP = SimdAttentionKernel.GROUP;
    /** Query rows per step of the QKᵀ micro-kernel (it always computes whole steps). */
    private static final int STEP = 6;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final float NEG_INF = Float.NEGATIVE_INFINITY;

    static {
        // The interleaved partial sums are whole vectors, and a chunk a whole number of lane groups.
        if (PARTIALS % L != 0 || CHUNK % GROUP != 0) throw new IllegalStateException(F + ": the decode kernel needs at most 16 lanes");
    }

    static final class Scratch {
        float[] qRows = new float[0];   // [rows rounded up to STEP][D]  queries · scale · log2(e)
        float[] kRows = new float[0];   // [CHUNK][D]                  the chunk's keys as rows (packTransposed's copy)
        float[] kT = new float[0];      // [CHUNK / GROUP][D][GROUP]   the chunk's keys, transposed into lane groups
        float[] sT = new float[0];      // [rows rounded up to STEP][GROUP] one lane group's scores
        float[] p = new float[0];       // [rows][CHUNK]               scores, then probabilities
        float[] o = new float[0], m = new float[0], l = new float[0];
        final float[] partial = new float[PARTIALS], lanes = new float[L];
        long[] mask = new long[0];
        final int[] columnOfD = new int[L];
        int columnD = -1;

        void ensure(int rows, int d, int dv, int maskWords) {
            int stepRows = (rows + STEP - 1) / STEP * STEP;
            if (qRows.length < stepRows * d) qRows = new float[stepRows * d];   // rows past `rows` stay 0
            if (kRows.length < CHUNK * d) { kRows = new float[CHUNK * d]; kT = new float[CHUNK * d]; }
            if (sT.length < stepRows * GROUP) sT = new float[stepRows * GROUP];
            if (p.length < rows * CHUNK) p = new float[rows * CHUNK];
            if (o.length < rows * dv) o = new float[rows * dv];
            if (m.length < rows) { m = new float[rows]; l = new float[rows]; }
            if (mask.length < maskWords) mask = new long[maskWords];
            if (columnD != d) {
                for (int lane = 0; lane < L; lane++) columnOfD[lane] = lane * d;
                columnD = d;
            }
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
            for (int x = 0; x < d; x++) s.qRows[r * d + x] = c.q.getAtIndex(FLOAT, row + x) * qScale;
        }
        Arrays.fill(s.m, 0, rows, NEG_INF);
        Arrays.fill(s.l, 0, rows, 0f);
        Arrays.fill(s.o, 0, rows * dv, 0f);
        for (int t = c.runFrom[run]; t < c.runTo[run]; t++) {
            int page = cols[t], tokens = Math.min(pageSize, lay.kvLen() - page * pageSize);
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial) lay.fillTileMask(t, s.mask);
            long slot0 = (long) table[page] * pageSize;
            for (int c0 = 0; c0 < tokens; c0 += CHUNK) {
                int n = Math.min(CHUNK, tokens - c0), groups = (n + GROUP - 1) / GROUP;
                long chunkBits = n == 64 ? -1L : (1L << n) - 1;
                // Keys in lanes: transpose the chunk once, then score every row against each lane group.
                SimdAttentionKernel.packTransposed(c.k, io.tessera.tensor.ElementType.F32, c.keyRow(hk, slot0 + c0), c.kT, d, n, 1f, s.kRows, s.kT, s.columnOfD);
                for (int grp = 0; grp < groups; grp++) {
                    SimdAttentionKernel.scores(s.qRows, 0, rows, d, s.kT, grp * d * GROUP, s.sT);
                    for (int r = 0; r < rows; r++) System.arraycopy(s.sT, r * GROUP, s.p, r * CHUNK + grp * GROUP, GROUP);
                }
                int lanesUsed = (n + L - 1) / L * L;
                long vChunk = c.valueRow(hk, slot0 + c0);
                for (int r = 0; r < rows; r++) {
                    long bits = partial ? s.mask[(r % qLen) * words + (c0 >>> 6)] & chunkBits : chunkBits;
                    if (bits == 0) continue;   // no key of this chunk for this row: its state is unchanged
                    int pRow = r * CHUNK;
                    if (bits != chunkBits) {
                        for (long blocked = chunkBits & ~bits; blocked != 0; blocked &= blocked - 1) s.p[pRow + Long.numberOfTrailingZeros(blocked)] = NEG_INF;
                    }
                    Arrays.fill(s.p, pRow + n, pRow + lanesUsed, NEG_INF);   // padded lanes of the last vector
                    softmaxRow(s, r, pRow, lanesUsed, dv);
                    accumulateRow(c, s, pRow, n, vChunk, r * dv, dv);
                }
            }
        }
        c.storePartial(item, s.o, s.m, s.l);
    }

    /**
     * The online softmax step of row r over its chunk's scores p[pRow, pRow + width): chunk max,
     * probabilities in place, sum into the running sum and rescaled output, exactly as the scalar
     * twin. The 2^x is written out inline, as in the fused kernel (as a method, C2 declined to
     * inline it and boxed a vector per call).
     */
    private static void softmaxRow(Scratch s, int r, int pRow, int width, int dv) {
        float[] p = s.p;
        FloatVector maxV = FloatVector.broadcast(F, NEG_INF);
        for (int j = 0; j < width; j += L) maxV = maxV.max(FloatVector.fromArray(F, p, pRow + j));
        maxV.intoArray(s.lanes, 0);
        float max = NEG_INF;
        for (int lane = 0; lane < L; lane++) max = Math.max(max, s.lanes[lane]);   // max is exact: any order gives the same
        float mOld = s.m[r], mNew = Math.max(mOld, max), shift = mNew == NEG_INF ? 0f : mNew;
        FloatVector shiftV = FloatVector.broadcast(F, shift);
        Arrays.fill(s.partial, 0f);
        for (int j = 0; j < width; j += L) {
            FloatVector x = FloatVector.fromArray(F, p, pRow + j).sub(shiftV);
            // 2^x exactly as SimdAttentionKernel's and ScalarAttentionKernel.exp2: clamp at −127, k = round(x)
            // in the low bits of x + 1.5·2^23, f = x − k, 2^f by polynomial, 2^k shifted into the exponent field.
            x = x.blend(EXP2_MIN_ARGUMENT, x.compare(VectorOperators.LT, EXP2_MIN_ARGUMENT));
            FloatVector rounded = x.add(ROUND_MAGIC);
            FloatVector f = x.sub(rounded.sub(ROUND_MAGIC));
            FloatVector poly = f.fma(EXP2_P0, EXP2_P1).fma(f, EXP2_P2).fma(f, EXP2_P3).fma(f, EXP2_P4).fma(f, EXP2_P5);
            FloatVector e = f.fma(poly, ONE).mul(rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats());
            e.intoArray(p, pRow + j);
            int part = j & (PARTIALS - 1);   // key j + lane goes to partial (j + lane) mod 16
            FloatVector.fromArray(F, s.partial, part).add(e).intoArray(s.partial, part);
        }
        float alpha = ScalarAttentionKernel.exp2(mOld - shift);
        s.l[r] = Math.fma(alpha, s.l[r], ScalarDecodeKernel.sumPartials(s.partial));
        s.m[r] = mNew;
        if (alpha != 1f) {
            int o = r * dv, x = 0;
            for (int bound = F.loopBound(dv); x < bound; x += L) FloatVector.fromArray(F, s.o, o + x).mul(alpha).intoArray(s.o, o + x);
            for (; x < dv; x++) s.o[o + x] *= alpha;
        }
    }

    /**
     * o[oRow..] += Σ_j p_j · v_j over the chunk's n keys in order, values read in place with their
     * dimension in lanes, four vectors of accumulators per pass; a zero probability is skipped, so a
     * key the row does not attend contributes nothing even if its value holds a NaN.
     */
    private static void accumulateRow(DecodeCall c, Scratch s, int pRow, int n, long vChunk, int oRow, int dv) {
        float[] p = s.p, o = s.o;
        long vT = c.vT;
        int x = 0;
        for (; x + 4 * L <= dv; x += 4 * L) {
            FloatVector a0 = FloatVector.fromArray(F, o, oRow + x), a1 = FloatVector.fromArray(F, o, oRow + x + L);
            FloatVector a2 = FloatVector.fromArray(F, o, oRow + x + 2 * L), a3 = FloatVector.fromArray(F, o, oRow + x + 3 * L);
            for (int j = 0; j < n; j++) {
                float pj = p[pRow + j];
                if (pj == 0f) continue;
                long at = (vChunk + j * vT + x) * Float.BYTES;
                FloatVector w = FloatVector.broadcast(F, pj);
                a0 = w.fma(FloatVector.fromMemorySegment(F, c.v, at, ORDER), a0);
                a1 = w.fma(FloatVector.fromMemorySegment(F, c.v, at + L * Float.BYTES, ORDER), a1);
                a2 = w.fma(FloatVector.fromMemorySegment(F, c.v, at + 2L * L * Float.BYTES, ORDER), a2);
                a3 = w.fma(FloatVector.fromMemorySegment(F, c.v, at + 3L * L * Float.BYTES, ORDER), a3);
            }
            a0.intoArray(o, oRow + x); a1.intoArray(o, oRow + x + L);
            a2.intoArray(o, oRow + x + 2 * L); a3.intoArray(o, oRow + x + 3 * L);
        }
        for (; x + L <= dv; x += L) {
            FloatVector a = FloatVector.fromArray(F, o, oRow + x);
            for (int j = 0; j < n; j++) {
                float pj = p[pRow + j];
                if (pj != 0f) a = FloatVector.broadcast(F, pj).fma(FloatVector.fromMemorySegment(F, c.v, (vChunk + j * vT + x) * Float.BYTES, ORDER), a);
            }
            a.intoArray(o, oRow + x);
        }
        for (; x < dv; x++) {
            float a = o[oRow + x];
            for (int j = 0; j < n; j++) {
                float pj = p[pRow + j];
                if (pj != 0f) a = Math.fma(pj, c.v.getAtIndex(FLOAT, vChunk + j * vT + x), a);
            }
            o[oRow + x] = a;
        }
    }

    // The base-2 softmax constants of the fused kernels, from the scalar twin.
    private static final float ROUND_MAGIC = ScalarAttentionKernel.ROUND_MAGIC;
    private static final float EXP2_MIN_ARGUMENT = ScalarAttentionKernel.EXP2_MIN_ARGUMENT;
    private static final int EXPONENT_BIAS_BITS = ScalarAttentionKernel.EXPONENT_BIAS_BITS;
    private static final FloatVector ONE = FloatVector.broadcast(F, 1f);
    private static final FloatVector EXP2_P0 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P0), EXP2_P1 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P1);
    private static final FloatVector EXP2_P2 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P2), EXP2_P3 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P3);
    private static final FloatVector EXP2_P4 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P4), EXP2_P5 = FloatVector.broadcast(F, ScalarAttentionKernel.EXP2_P5);
}
