package io.tessera.cpu;

import static io.tessera.cpu.ScalarDecodeKernel.CHUNK;
import static io.tessera.cpu.ScalarDecodeKernel.PARTIALS;

import io.tessera.tensor.ElementType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The decode kernel on the Vector API: few query rows against a long paged cache.
 *
 * <p>The rows of an item are the G query heads that share a key/value head times the qLen
 * queries, so each K/V chunk is read from the pool once for all of them: per chunk of
 * {@link ScalarDecodeKernel#CHUNK} keys ({@link DecodeCall.Chunks}: across page boundaries, so pages
 * of 16 tokens share one softmax step and one pass over the output), the keys and values are staged
 * (half-precision ones widened in the same pass) into row-major scratch one key group (L keys) at a
 * time, by one bulk copy per span of consecutive pool rows, each group just before its scores: the
 * reads of the pool interleave with arithmetic instead of preceding it.
 *
 * <p>Scores: the head dimension in lanes, no transposition of keys. A block of 2 rows × 4 keys keeps
 * one accumulator vector per (row, key) for each L-lane part of the 16 interleaved partial sums of
 * the scalar twin's {@link ScalarDecodeKernel#dot} (dimension x into partial x mod 16), so q and k
 * are each loaded once per 8 fmas. The partials are folded in the twin's halving-tree order by a
 * transposing reduction across L keys (blend, lane swap, add: log2 L steps), which leaves the L
 * keys' scores in the lanes of one vector: no horizontal add, the same bits at any vector width.
 *
 * <p>The softmax step is the fused kernel's base-2 one (same 2^x polynomial and constants, from the
 * scalar twin) per row over key lanes; its sum is kept in 16 interleaved partials. Values: blocks of
 * 4 rows × 2L output dimensions in registers, each value vector loaded once for the 4 rows, in key
 * order; a zero probability is skipped per row, as in the twin. Every float is the one
 * {@link ScalarDecodeKernel} computes.
 */
final class SimdDecodeKernel {
    private SimdDecodeKernel() {}

    private static final VectorSpecies<Float> F = VectorConfig.FLOATS;
    private static final int L = F.length();
    /** Vectors per 16 interleaved partial sums of a dot product. */
    private static final int PARTS = PARTIALS / Math.min(L, PARTIALS);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final float NEG_INF = Float.NEGATIVE_INFINITY;

    static {
        // The interleaved partial sums are whole vectors, and a chunk a whole number of lane groups.
        if (PARTIALS % L != 0 || CHUNK % L != 0 || L < 4) throw new IllegalStateException(F + ": the decode kernel needs 4 to 16 lanes");
    }

    // The transposing reduction: at step st (segment s = L >> st, half h = s / 2), a and b give
    // a.blend(b, HIGH[st]) + b.blend(a, HIGH[st]).rearrange(SWAP[st]): lane i < h of each segment
    // holds a[i] + a[i + h] (a's key), lane i ≥ h holds b[i] + b[i − h] (b's key). NATURAL puts the
    // keys, which end up in a permuted lane order, back in order.
    private static final VectorMask<Float>[] HIGH;
    private static final VectorShuffle<Float>[] SWAP;
    private static final VectorShuffle<Float> NATURAL;

    static {
        int steps = Integer.numberOfTrailingZeros(L);
        @SuppressWarnings("unchecked") VectorMask<Float>[] high = new VectorMask[steps];
        @SuppressWarnings("unchecked") VectorShuffle<Float>[] swap = new VectorShuffle[steps];
        int[][] keyOf = new int[L][L];   // keyOf[vector][lane]
        for (int i = 0; i < L; i++) Arrays.fill(keyOf[i], i);
        for (int st = 0, count = L; count > 1; st++, count >>= 1) {
            int seg = L >> st, h = seg / 2, half = count / 2;
            boolean[] m = new boolean[L];
            int[] sw = new int[L];
            for (int lane = 0; lane < L; lane++) {
                m[lane] = lane % seg >= h;
                sw[lane] = lane ^ h;
            }
            high[st] = VectorMask.fromArray(F, m, 0);
            swap[st] = VectorShuffle.fromArray(F, sw, 0);
            for (int i = 0; i < half; i++) {
                for (int lane = 0; lane < L; lane++) keyOf[i][lane] = m[lane] ? keyOf[i + half][lane] : keyOf[i][lane];
            }
        }
        int[] natural = new int[L];
        for (int lane = 0; lane < L; lane++) natural[keyOf[0][lane]] = lane;
        HIGH = high;
        SWAP = swap;
        NATURAL = VectorShuffle.fromArray(F, natural, 0);
    }

    static final class Scratch {
        float[] qRows = new float[0];   // [rows rounded up to 4][dPad]  queries · scale · log2(e), zeros past d and past the rows
        float[] kRows = new float[0];   // [CHUNK][dPad]                 the chunk's keys, widened, zeros past d
        float[] vRows = new float[0];   // [CHUNK][vPad]                 the chunk's values, widened, zeros past dv
        float[] dots = new float[2 * L * PARTIALS];   // [2 rows][L keys][16 partials]
        float[] red = new float[L * L];               // the transposing reduction's vectors
        float[] p = new float[0];       // [rows rounded up to 4][CHUNK]  scores, then probabilities (0 in padded rows)
        float[] o = new float[0], m = new float[0], l = new float[0], alpha = new float[0];
        final float[] partial = new float[PARTIALS], lanes = new float[L];
        long[] bits = new long[0];
        /** Offsets in kRows of the chunk's keys (keys past n: key n − 1). */
        final int[] kAt = new int[CHUNK];
        final DecodeCall.Chunks chunks = new DecodeCall.Chunks();

        void ensure(int rows, int d, int dv) {
            int quadRows = (rows + 3) / 4 * 4, dPad = ScalarDecodeKernel.paddedDim(d), vPad = valuePad(dv);
            if (qRows.length < quadRows * dPad) qRows = new float[quadRows * dPad];
            if (kRows.length < CHUNK * dPad) kRows = new float[CHUNK * dPad];
            if (vRows.length < CHUNK * vPad) vRows = new float[CHUNK * vPad];
            if (p.length < quadRows * CHUNK) p = new float[quadRows * CHUNK];
            if (o.length < quadRows * vPad) o = new float[quadRows * vPad];
            if (m.length < quadRows) { m = new float[quadRows]; l = new float[quadRows]; alpha = new float[quadRows]; bits = new long[quadRows]; }
        }
    }

    /** Value dimensions padded to whole blocks of 2 vectors (the padding is zeros and never stored). */
    private static int valuePad(int dv) { return (dv + 2 * L - 1) / (2 * L) * (2 * L); }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static void item(DecodeCall c, int item) {
        int run = item / c.kvHeads, hk = item % c.kvHeads, b = c.runSeq[run];
        int rows = c.rows, d = c.d, dv = c.dv, qLen = c.qLen;
        int pairRows = (rows + 1) / 2 * 2, quadRows = (rows + 3) / 4 * 4;
        int dPad = ScalarDecodeKernel.paddedDim(d), vPad = valuePad(dv);
        Scratch s = SCRATCH.get();
        s.ensure(rows, d, dv);
        float qScale = c.scale * ScalarAttentionKernel.LOG2E;
        Arrays.fill(s.qRows, 0, quadRows * dPad, 0f);
        for (int r = 0; r < rows; r++) {
            long row = c.queryRow(b, hk, r);
            for (int x = 0; x < d; x++) s.qRows[r * dPad + x] = c.qType.get(c.q, row + x) * qScale;
        }
        Arrays.fill(s.m, 0, quadRows, NEG_INF);
        Arrays.fill(s.l, 0, quadRows, 0f);
        Arrays.fill(s.alpha, 0, quadRows, 1f);
        Arrays.fill(s.o, 0, quadRows * vPad, 0f);
        Arrays.fill(s.p, rows * CHUNK, quadRows * CHUNK, 0f);   // padded rows never attend
        DecodeCall.Chunks chunks = s.chunks;
        chunks.start(c, run);
        while (chunks.next()) {
            int n = chunks.n, nPad = (n + L - 1) / L * L;
            long chunkBits = n == 64 ? -1L : (1L << n) - 1, any = 0;
            for (int r = 0; r < rows; r++) any |= s.bits[r] = chunks.queryBits[r % qLen];
            if (any == 0) continue;   // no row attends a key of this chunk: nothing is read
            for (int j = 0; j < nPad; j++) s.kAt[j] = Math.min(j, n - 1) * dPad;
            // Staged a key group at a time, between the groups' scores: the hardware prefetcher streams
            // the next rows while the scores run, instead of the copy waiting for memory alone.
            for (int jg = 0; jg < nPad; jg += L) {
                int to = Math.min(jg + L, n);
                stageRows(c.k, c.kType, c, hk, chunks, jg, to, d, dPad, true, s.kRows);
                stageRows(c.v, c.vType, c, hk, chunks, jg, to, dv, vPad, false, s.vRows);
                scores(s, rows, pairRows, jg, dPad);
            }
            if (c.mod != null) {   // the scalar twin's modifier, score by score, on the keys each row attends
                for (int r = 0; r < rows; r++) c.modifyScores(b, hk, r, chunks.key, s.bits[r], s.p, r * CHUNK);
            }
            for (int r = 0; r < rows; r++) {
                long bits = s.bits[r];
                int pRow = r * CHUNK;
                if (bits == 0) {   // no key of this chunk for this row: its state is unchanged
                    Arrays.fill(s.p, pRow, pRow + n, 0f);
                    s.alpha[r] = 1f;
                    continue;
                }
                if (bits != chunkBits) {
                    for (long blocked = chunkBits & ~bits; blocked != 0; blocked &= blocked - 1) s.p[pRow + Long.numberOfTrailingZeros(blocked)] = NEG_INF;
                }
                Arrays.fill(s.p, pRow + n, pRow + nPad, NEG_INF);   // padded lanes of the last vector
                softmaxRow(s, r, pRow, nPad);
            }
            accumulate(s, quadRows, n, vPad);
        }
        c.storePartial(item, s.o, vPad, s.m, s.l);
    }

    /**
     * The chunk's n key (or value) rows of head hk, widened, into dst rows {@code pad} apart with
     * zeros past {@code width}: one bulk copy or widening per span of consecutive pool rows when
     * the rows are dense and need no padding (a per-row call costs more than its 512 bytes).
     */
    private static void stageRows(MemorySegment src, ElementType type, DecodeCall c, int hk, DecodeCall.Chunks chunks, int from, int to, int width, int pad, boolean keys, float[] dst) {
        long stride = keys ? c.kT : c.vT;
        boolean dense = stride == width && pad == width;
        for (int i = 0; i < chunks.spans; i++) {
            int s0 = chunks.spanStart[i], j0 = Math.max(s0, from), j1 = Math.min(chunks.spanStart[i + 1], to);
            if (j0 >= j1) continue;
            long slot = chunks.spanSlot[i] + (j0 - s0);
            long row0 = keys ? c.keyRow(hk, slot) : c.valueRow(hk, slot);
            if (dense) {
                int count = (j1 - j0) * width;
                if (type == ElementType.F32) MemorySegment.copy(src, FLOAT, row0 * Float.BYTES, dst, j0 * pad, count);
                else HalfRows.widenRow(src, type, row0, count, dst, j0 * pad);
                continue;
            }
            for (int j = j0; j < j1; j++) {
                long row = row0 + (j - j0) * stride;
                if (type == ElementType.F32) MemorySegment.copy(src, FLOAT, row * Float.BYTES, dst, j * pad, width);
                else HalfRows.widenRow(src, type, row, width, dst, j * pad);
                Arrays.fill(dst, j * pad + width, (j + 1) * pad, 0f);
            }
        }
    }

    /**
     * Scores of every row pair against the chunk's keys into p (rows CHUNK apart): per L keys and
     * 2 rows, 4 keys at a time, each of the PARTS lane parts of the 16 partial sums accumulated over
     * the dimensions (x in steps of 16), then folded and reduced across the L keys. Keys past n
     * repeat key n − 1 (their lanes are masked to −∞ afterwards).
     */
    static void scores(Scratch s, int rows, int pairRows, int jg, int dPad) {
        float[] q = s.qRows, k = s.kRows, dots = s.dots;
        int[] kAt = s.kAt;
        {
            for (int r0 = 0; r0 < pairRows; r0 += 2) {
                int q0 = r0 * dPad, q1 = q0 + dPad;
                for (int j4 = 0; j4 < L; j4 += 4) {
                    int j = jg + j4;
                    int k0 = kAt[j], k1 = kAt[j + 1], k2 = kAt[j + 2], k3 = kAt[j + 3];
                    for (int part = 0; part < PARTS; part++) {
                        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
                        for (int x = part * L; x < dPad; x += PARTIALS) {
                            FloatVector qa = FloatVector.fromArray(F, q, q0 + x), qb = FloatVector.fromArray(F, q, q1 + x);
                            FloatVector kv = FloatVector.fromArray(F, k, k0 + x);
                            a00 = qa.fma(kv, a00); a10 = qb.fma(kv, a10);
                            kv = FloatVector.fromArray(F, k, k1 + x);
                            a01 = qa.fma(kv, a01); a11 = qb.fma(kv, a11);
                            kv = FloatVector.fromArray(F, k, k2 + x);
                            a02 = qa.fma(kv, a02); a12 = qb.fma(kv, a12);
                            kv = FloatVector.fromArray(F, k, k3 + x);
                            a03 = qa.fma(kv, a03); a13 = qb.fma(kv, a13);
                        }
                        int d0 = j4 * PARTIALS + part * L, d1 = d0 + L * PARTIALS;
                        a00.intoArray(dots, d0); a01.intoArray(dots, d0 + PARTIALS);
                        a02.intoArray(dots, d0 + 2 * PARTIALS); a03.intoArray(dots, d0 + 3 * PARTIALS);
                        a10.intoArray(dots, d1); a11.intoArray(dots, d1 + PARTIALS);
                        a12.intoArray(dots, d1 + 2 * PARTIALS); a13.intoArray(dots, d1 + 3 * PARTIALS);
                    }
                }
                reduceScores(dots, 0, s.red, s.p, r0 * CHUNK + jg);
                if (r0 + 1 < rows) reduceScores(dots, 1, s.red, s.p, (r0 + 1) * CHUNK + jg);
            }
        }
    }

    /**
     * The scores of L keys of one row (its 16 partials per key in dots) into p[pOff, pOff + L):
     * the lane parts folded (p[i] + p[i + 8] … down to L partials), then the transposing reduction.
     */
    private static void reduceScores(float[] dots, int rowInPair, float[] red, float[] p, int pOff) {
        int base = rowInPair * L * PARTIALS;
        for (int i = 0; i < L; i++) {
            int at = base + i * PARTIALS;
            FloatVector v = FloatVector.fromArray(F, dots, at);
            if (PARTS == 2) v = v.add(FloatVector.fromArray(F, dots, at + L));
            else if (PARTS == 4) v = v.add(FloatVector.fromArray(F, dots, at + 2 * L)).add(FloatVector.fromArray(F, dots, at + L).add(FloatVector.fromArray(F, dots, at + 3 * L)));
            v.intoArray(red, i * L);
        }
        for (int st = 0, count = L; count > 1; st++, count >>= 1) {
            int half = count >> 1;
            VectorMask<Float> high = HIGH[st];
            VectorShuffle<Float> swap = SWAP[st];
            for (int i = 0; i < half; i++) {
                FloatVector a = FloatVector.fromArray(F, red, i * L), b = FloatVector.fromArray(F, red, (i + half) * L);
                a.blend(b, high).add(b.blend(a, high).rearrange(swap)).intoArray(red, i * L);
            }
        }
        FloatVector.fromArray(F, red, 0).rearrange(NATURAL).intoArray(p, pOff);
    }

    /**
     * o[r] = o[r]·α_r + Σ_j p_rj · v_j over the chunk's n keys in order, 4 rows × 2L dimensions of
     * accumulators at a time, each value vector loaded once for the 4 rows; a zero probability is
     * skipped per row, so a key a row does not attend contributes nothing even if its value holds a
     * NaN. (α·o then fmas: the twin's rescale-then-accumulate; multiplying by α = 1 changes no bit.)
     */
    private static void accumulate(Scratch s, int quadRows, int n, int vPad) {
        float[] p = s.p, o = s.o, v = s.vRows;
        for (int r0 = 0; r0 < quadRows; r0 += 4) {
            int p0 = r0 * CHUNK, p1 = p0 + CHUNK, p2 = p1 + CHUNK, p3 = p2 + CHUNK;
            float al0 = s.alpha[r0], al1 = s.alpha[r0 + 1], al2 = s.alpha[r0 + 2], al3 = s.alpha[r0 + 3];
            // Keys every one of the 4 rows gives a nonzero probability (the common case) take the
            // unconditional path; the others test each row.
            long allNonzero = 0;
            for (int j = 0; j < n; j++) {
                if (p[p0 + j] != 0f & p[p1 + j] != 0f & p[p2 + j] != 0f & p[p3 + j] != 0f) allNonzero |= 1L << j;
            }
            for (int x = 0; x < vPad; x += 2 * L) {
                int o0 = r0 * vPad + x, o1 = o0 + vPad, o2 = o1 + vPad, o3 = o2 + vPad;
                FloatVector a00 = FloatVector.fromArray(F, o, o0).mul(al0), a01 = FloatVector.fromArray(F, o, o0 + L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1).mul(al1), a11 = FloatVector.fromArray(F, o, o1 + L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2).mul(al2), a21 = FloatVector.fromArray(F, o, o2 + L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3).mul(al3), a31 = FloatVector.fromArray(F, o, o3 + L).mul(al3);
                for (int j = 0; j < n; j++) {
                    int at = j * vPad + x;
                    FloatVector v0 = FloatVector.fromArray(F, v, at), v1 = FloatVector.fromArray(F, v, at + L);
                    if ((allNonzero & (1L << j)) != 0) {
                        FloatVector b0 = FloatVector.broadcast(F, p[p0 + j]), b1 = FloatVector.broadcast(F, p[p1 + j]);
                        FloatVector b2 = FloatVector.broadcast(F, p[p2 + j]), b3 = FloatVector.broadcast(F, p[p3 + j]);
                        a00 = b0.fma(v0, a00); a01 = b0.fma(v1, a01);
                        a10 = b1.fma(v0, a10); a11 = b1.fma(v1, a11);
                        a20 = b2.fma(v0, a20); a21 = b2.fma(v1, a21);
                        a30 = b3.fma(v0, a30); a31 = b3.fma(v1, a31);
                    } else {
                        float w0 = p[p0 + j], w1 = p[p1 + j], w2 = p[p2 + j], w3 = p[p3 + j];
                        if (w0 != 0f) { FloatVector b0 = FloatVector.broadcast(F, w0); a00 = b0.fma(v0, a00); a01 = b0.fma(v1, a01); }
                        if (w1 != 0f) { FloatVector b1 = FloatVector.broadcast(F, w1); a10 = b1.fma(v0, a10); a11 = b1.fma(v1, a11); }
                        if (w2 != 0f) { FloatVector b2 = FloatVector.broadcast(F, w2); a20 = b2.fma(v0, a20); a21 = b2.fma(v1, a21); }
                        if (w3 != 0f) { FloatVector b3 = FloatVector.broadcast(F, w3); a30 = b3.fma(v0, a30); a31 = b3.fma(v1, a31); }
                    }
                }
                a00.intoArray(o, o0); a01.intoArray(o, o0 + L);
                a10.intoArray(o, o1); a11.intoArray(o, o1 + L);
                a20.intoArray(o, o2); a21.intoArray(o, o2 + L);
                a30.intoArray(o, o3); a31.intoArray(o, o3 + L);
            }
        }
    }

    /**
     * The online softmax step of row r over its chunk's scores p[pRow, pRow + width): chunk max,
     * probabilities in place, sum into the running sum, the output's rescale into alpha, exactly as the scalar
     * twin. The 2^x is written out inline, as in the fused kernel (as a method, C2 declined to
     * inline it and boxed a vector per call).
     */
    private static void softmaxRow(Scratch s, int r, int pRow, int width) {
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
        s.alpha[r] = alpha;   // the output's rescale, applied by accumulate
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
