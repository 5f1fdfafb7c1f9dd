package io.tessera.kernel;

import io.tessera.pattern.BlockLayout;
import io.tessera.pattern.TileKind;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fused block-sparse attention kernel on the Vector API.
 *
 * <p>Queries sit in vector lanes: a <em>lane group</em> of {@link #GROUP} = 4 vectors of queries is
 * processed against every tile of its layout row. Working key-major (scores as Sᵀ[key][query])
 * means K and V are read as scalars and broadcast, so neither needs packing or transposing; only
 * the group's queries are transposed once, and the online-softmax state (running max, running sum,
 * rescaling) is per lane, hence vectorized for free. The output accumulator Oᵀ[dv][query] is
 * transposed back once per group. Ragged key tiles are just shorter loops; a ragged query group
 * runs in padded lanes that are never written out.
 */
final class SimdAttentionKernel {
    private SimdAttentionKernel() {}

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    /** Queries per lane group: 4 vectors, so the QKᵀ micro-kernel keeps 4×4 accumulators in registers. */
    static final int GROUP = 4 * L;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final float NEG_INF = Float.NEGATIVE_INFINITY;

    /** Per-thread buffers, grown on demand and reused across calls. */
    static final class Scratch {
        float[] qT = new float[0];      // [D][GROUP]  scaled queries, transposed
        float[] sT = new float[0];      // [blockKV][GROUP]  scores, then probabilities
        float[] oT = new float[0];      // [Dv][GROUP]  output accumulator, transposed
        final float[] m = new float[GROUP];   // running max of the scaled logits
        final float[] l = new float[GROUP];   // running softmax denominator
        long[] rowMask = new long[0];   // [blockQ][words]  tile mask as the layout writes it
        long[] laneMask = new long[0];  // [blockKV]  per key: bit i = query lane i may attend

        void ensure(int d, int dv, int blockQ, int blockKV, int words) {
            if (qT.length < d * GROUP) qT = new float[d * GROUP];
            if (sT.length < blockKV * GROUP) sT = new float[blockKV * GROUP];
            if (oT.length < dv * GROUP) oT = new float[dv * GROUP];
            if (rowMask.length < blockQ * words) rowMask = new long[blockQ * words];
            if (laneMask.length < blockKV) laneMask = new long[blockKV];
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** Computes the output rows (and LSE) of one query block of one (batch, head). */
    static void queryBlock(AttentionCall c, int b, int h, int qBlock) {
        AttentionGeometry g = c.g;
        BlockLayout lay = c.layouts.forHead(h);
        int d = g.shape().headDim(), dv = g.shape().valueDim();
        Scratch s = SCRATCH.get();
        s.ensure(d, dv, lay.blockQ(), lay.blockKV(), lay.maskWordsPerRow());
        int q0 = qBlock * lay.blockQ();
        int rows = Math.min(lay.blockQ(), g.shape().qLen() - q0);
        int hk = g.shape().kvHeadOf(h);
        for (int g0 = 0; g0 < rows; g0 += GROUP) {
            laneGroup(c, lay, s, b, h, hk, qBlock, g0, Math.min(GROUP, rows - g0));
        }
    }

    private static void laneGroup(AttentionCall c, BlockLayout lay, Scratch s, int b, int h, int hk, int qBlock, int g0, int lanes) {
        AttentionGeometry g = c.g;
        int d = g.shape().headDim(), dv = g.shape().valueDim(), kvLen = g.shape().kvLen();
        int blockKV = lay.blockKV();
        int firstRow = qBlock * lay.blockQ() + g0;
        packQueries(c.q, g.qBase(b, h) + (long) firstRow * g.qRow(), g.qRow(), d, lanes, g.scale(), s.qT);
        Arrays.fill(s.oT, 0, dv * GROUP, 0f);
        Arrays.fill(s.m, NEG_INF);
        Arrays.fill(s.l, 0f);
        int[] offsets = lay.rowOffsets(), cols = lay.colIndices();
        byte[] kinds = lay.kinds();
        long kHead = g.kBase(b, hk), vHead = g.vBase(b, hk);
        for (int t = offsets[qBlock]; t < offsets[qBlock + 1]; t++) {
            int kv0 = cols[t] * blockKV;
            int n = Math.min(blockKV, kvLen - kv0);
            boolean partial = kinds[t] == TileKind.PARTIAL.code();
            if (partial && !laneMasks(lay, t, s, g0, lanes, n)) continue;   // nothing allowed for these lanes
            scores(c.k, kHead + (long) kv0 * g.kRow(), g.kRow(), n, d, s.qT, s.sT);
            softmaxStep(s, n, dv, partial);
            accumulate(c.v, vHead + (long) kv0 * g.vRow(), g.vRow(), n, dv, s.sT, s.oT);
        }
        writeRows(c, g.oBase(b, h) + (long) firstRow * g.oRow(), g.oRow(),
                c.lse == null ? -1 : g.lBase(b, h) + (long) firstRow * g.lRow(), g.lRow(), dv, lanes, s);
    }

    /** qT[i][lane] = scale · q[lane][i]; padded lanes are zero. */
    private static void packQueries(MemorySegment q, long base, long rowStride, int d, int lanes, float scale, float[] qT) {
        Arrays.fill(qT, 0, d * GROUP, 0f);
        for (int lane = 0; lane < lanes; lane++) {
            long row = base + lane * rowStride;
            for (int i = 0; i < d; i++) qT[i * GROUP + lane] = scale * q.getAtIndex(FLOAT, row + i);
        }
    }

    /**
     * Transposes the tile's row-major mask bits into one word per key over the group's lanes.
     * Returns false when no lane of this group may attend to any key of the tile.
     */
    private static boolean laneMasks(BlockLayout lay, int tile, Scratch s, int g0, int lanes, int n) {
        lay.fillTileMask(tile, s.rowMask);
        int words = lay.maskWordsPerRow();
        long[] lane = s.laneMask;
        Arrays.fill(lane, 0, n, 0L);
        long any = 0;
        for (int i = 0; i < lanes; i++) {
            int rowStart = (g0 + i) * words;
            for (int w = 0; w < words; w++) {
                long bits = s.rowMask[rowStart + w];
                any |= bits;
                while (bits != 0) {
                    int j = (w << 6) + Long.numberOfTrailingZeros(bits);
                    lane[j] |= 1L << i;
                    bits &= bits - 1;
                }
            }
        }
        return any != 0;
    }

    /** sT[j][lane] = Σ_i K[j][i] · qT[i][lane] for keys j < n: 4 keys × 4 vectors per step. */
    static void scores(MemorySegment k, long base, long rowStride, int n, int d, float[] qT, float[] sT) {
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            long r0 = base + j * rowStride, r1 = r0 + rowStride, r2 = r1 + rowStride, r3 = r2 + rowStride;
            FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
            FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
            FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            for (int i = 0; i < d; i++) {
                int qi = i * GROUP;
                FloatVector q0 = FloatVector.fromArray(F, qT, qi);
                FloatVector q1 = FloatVector.fromArray(F, qT, qi + L);
                FloatVector q2 = FloatVector.fromArray(F, qT, qi + 2 * L);
                FloatVector q3 = FloatVector.fromArray(F, qT, qi + 3 * L);
                FloatVector k0 = FloatVector.broadcast(F, k.getAtIndex(FLOAT, r0 + i));
                FloatVector k1 = FloatVector.broadcast(F, k.getAtIndex(FLOAT, r1 + i));
                FloatVector k2 = FloatVector.broadcast(F, k.getAtIndex(FLOAT, r2 + i));
                FloatVector k3 = FloatVector.broadcast(F, k.getAtIndex(FLOAT, r3 + i));
                a00 = q0.fma(k0, a00); a01 = q1.fma(k0, a01); a02 = q2.fma(k0, a02); a03 = q3.fma(k0, a03);
                a10 = q0.fma(k1, a10); a11 = q1.fma(k1, a11); a12 = q2.fma(k1, a12); a13 = q3.fma(k1, a13);
                a20 = q0.fma(k2, a20); a21 = q1.fma(k2, a21); a22 = q2.fma(k2, a22); a23 = q3.fma(k2, a23);
                a30 = q0.fma(k3, a30); a31 = q1.fma(k3, a31); a32 = q2.fma(k3, a32); a33 = q3.fma(k3, a33);
            }
            int o = j * GROUP;
            a00.intoArray(sT, o); a01.intoArray(sT, o + L); a02.intoArray(sT, o + 2 * L); a03.intoArray(sT, o + 3 * L);
            o += GROUP;
            a10.intoArray(sT, o); a11.intoArray(sT, o + L); a12.intoArray(sT, o + 2 * L); a13.intoArray(sT, o + 3 * L);
            o += GROUP;
            a20.intoArray(sT, o); a21.intoArray(sT, o + L); a22.intoArray(sT, o + 2 * L); a23.intoArray(sT, o + 3 * L);
            o += GROUP;
            a30.intoArray(sT, o); a31.intoArray(sT, o + L); a32.intoArray(sT, o + 2 * L); a33.intoArray(sT, o + 3 * L);
        }
        for (; j < n; j++) {
            long r = base + j * rowStride;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < d; i++) {
                int qi = i * GROUP;
                FloatVector kj = FloatVector.broadcast(F, k.getAtIndex(FLOAT, r + i));
                a0 = FloatVector.fromArray(F, qT, qi).fma(kj, a0);
                a1 = FloatVector.fromArray(F, qT, qi + L).fma(kj, a1);
                a2 = FloatVector.fromArray(F, qT, qi + 2 * L).fma(kj, a2);
                a3 = FloatVector.fromArray(F, qT, qi + 3 * L).fma(kj, a3);
            }
            int o = j * GROUP;
            a0.intoArray(sT, o); a1.intoArray(sT, o + L); a2.intoArray(sT, o + 2 * L); a3.intoArray(sT, o + 3 * L);
        }
    }

    /**
     * Online softmax over one tile, per lane: masks, new running max, probabilities in place of the
     * scores, rescaled running sum and output. A lane that has seen only masked keys keeps max −∞;
     * it subtracts 0 instead so that exp(−∞ − (−∞)) never produces NaN.
     */
    private static void softmaxStep(Scratch s, int n, int dv, boolean partial) {
        float[] sT = s.sT, oT = s.oT;
        FloatVector negInf = FloatVector.broadcast(F, NEG_INF);
        for (int v = 0; v < 4; v++) {
            int lane0 = v * L;
            FloatVector max = negInf;
            if (partial) {
                for (int j = 0; j < n; j++) {
                    VectorMask<Float> allowed = VectorMask.fromLong(F, s.laneMask[j] >>> lane0);
                    FloatVector x = FloatVector.fromArray(F, sT, j * GROUP + lane0).blend(negInf, allowed.not());
                    x.intoArray(sT, j * GROUP + lane0);
                    max = max.max(x);
                }
            } else {
                for (int j = 0; j < n; j++) max = max.max(FloatVector.fromArray(F, sT, j * GROUP + lane0));
            }
            FloatVector mOld = FloatVector.fromArray(F, s.m, lane0);
            FloatVector mNew = mOld.max(max);
            FloatVector shift = mNew.blend(0f, mNew.eq(NEG_INF));
            FloatVector sum = FloatVector.zero(F);
            for (int j = 0; j < n; j++) {
                int o = j * GROUP + lane0;
                FloatVector p = FloatVector.fromArray(F, sT, o).sub(shift).lanewise(VectorOperators.EXP);
                p.intoArray(sT, o);
                sum = sum.add(p);
            }
            FloatVector alpha = mOld.sub(shift).lanewise(VectorOperators.EXP);
            alpha.mul(FloatVector.fromArray(F, s.l, lane0)).add(sum).intoArray(s.l, lane0);
            mNew.intoArray(s.m, lane0);
            if (alpha.compare(VectorOperators.NE, 1f).anyTrue()) {
                for (int i = 0; i < dv; i++) {
                    int o = i * GROUP + lane0;
                    FloatVector.fromArray(F, oT, o).mul(alpha).intoArray(oT, o);
                }
            }
        }
    }

    /** oT[i][lane] += Σ_j V[j][i] · sT[j][lane]: 4 value columns × 4 vectors per step. */
    static void accumulate(MemorySegment v, long base, long rowStride, int n, int dv, float[] sT, float[] oT) {
        int i = 0;
        for (; i + 4 <= dv; i += 4) {
            int o0 = i * GROUP, o1 = o0 + GROUP, o2 = o1 + GROUP, o3 = o2 + GROUP;
            FloatVector a00 = FloatVector.fromArray(F, oT, o0), a01 = FloatVector.fromArray(F, oT, o0 + L), a02 = FloatVector.fromArray(F, oT, o0 + 2 * L), a03 = FloatVector.fromArray(F, oT, o0 + 3 * L);
            FloatVector a10 = FloatVector.fromArray(F, oT, o1), a11 = FloatVector.fromArray(F, oT, o1 + L), a12 = FloatVector.fromArray(F, oT, o1 + 2 * L), a13 = FloatVector.fromArray(F, oT, o1 + 3 * L);
            FloatVector a20 = FloatVector.fromArray(F, oT, o2), a21 = FloatVector.fromArray(F, oT, o2 + L), a22 = FloatVector.fromArray(F, oT, o2 + 2 * L), a23 = FloatVector.fromArray(F, oT, o2 + 3 * L);
            FloatVector a30 = FloatVector.fromArray(F, oT, o3), a31 = FloatVector.fromArray(F, oT, o3 + L), a32 = FloatVector.fromArray(F, oT, o3 + 2 * L), a33 = FloatVector.fromArray(F, oT, o3 + 3 * L);
            long row = base + i;
            for (int j = 0; j < n; j++, row += rowStride) {
                int pj = j * GROUP;
                FloatVector p0 = FloatVector.fromArray(F, sT, pj);
                FloatVector p1 = FloatVector.fromArray(F, sT, pj + L);
                FloatVector p2 = FloatVector.fromArray(F, sT, pj + 2 * L);
                FloatVector p3 = FloatVector.fromArray(F, sT, pj + 3 * L);
                FloatVector v0 = FloatVector.broadcast(F, v.getAtIndex(FLOAT, row));
                FloatVector v1 = FloatVector.broadcast(F, v.getAtIndex(FLOAT, row + 1));
                FloatVector v2 = FloatVector.broadcast(F, v.getAtIndex(FLOAT, row + 2));
                FloatVector v3 = FloatVector.broadcast(F, v.getAtIndex(FLOAT, row + 3));
                a00 = p0.fma(v0, a00); a01 = p1.fma(v0, a01); a02 = p2.fma(v0, a02); a03 = p3.fma(v0, a03);
                a10 = p0.fma(v1, a10); a11 = p1.fma(v1, a11); a12 = p2.fma(v1, a12); a13 = p3.fma(v1, a13);
                a20 = p0.fma(v2, a20); a21 = p1.fma(v2, a21); a22 = p2.fma(v2, a22); a23 = p3.fma(v2, a23);
                a30 = p0.fma(v3, a30); a31 = p1.fma(v3, a31); a32 = p2.fma(v3, a32); a33 = p3.fma(v3, a33);
            }
            a00.intoArray(oT, o0); a01.intoArray(oT, o0 + L); a02.intoArray(oT, o0 + 2 * L); a03.intoArray(oT, o0 + 3 * L);
            a10.intoArray(oT, o1); a11.intoArray(oT, o1 + L); a12.intoArray(oT, o1 + 2 * L); a13.intoArray(oT, o1 + 3 * L);
            a20.intoArray(oT, o2); a21.intoArray(oT, o2 + L); a22.intoArray(oT, o2 + 2 * L); a23.intoArray(oT, o2 + 3 * L);
            a30.intoArray(oT, o3); a31.intoArray(oT, o3 + L); a32.intoArray(oT, o3 + 2 * L); a33.intoArray(oT, o3 + 3 * L);
        }
        for (; i < dv; i++) {
            int o = i * GROUP;
            FloatVector a0 = FloatVector.fromArray(F, oT, o), a1 = FloatVector.fromArray(F, oT, o + L);
            FloatVector a2 = FloatVector.fromArray(F, oT, o + 2 * L), a3 = FloatVector.fromArray(F, oT, o + 3 * L);
            long row = base + i;
            for (int j = 0; j < n; j++, row += rowStride) {
                int pj = j * GROUP;
                FloatVector vj = FloatVector.broadcast(F, v.getAtIndex(FLOAT, row));
                a0 = FloatVector.fromArray(F, sT, pj).fma(vj, a0);
                a1 = FloatVector.fromArray(F, sT, pj + L).fma(vj, a1);
                a2 = FloatVector.fromArray(F, sT, pj + 2 * L).fma(vj, a2);
                a3 = FloatVector.fromArray(F, sT, pj + 3 * L).fma(vj, a3);
            }
            a0.intoArray(oT, o); a1.intoArray(oT, o + L); a2.intoArray(oT, o + 2 * L); a3.intoArray(oT, o + 3 * L);
        }
    }

    /** out[lane][i] = oT[i][lane] / l[lane]; rows with no allowed key get 0 and LSE −∞. */
    private static void writeRows(AttentionCall c, long outBase, long outRow, long lseBase, long lseRow, int dv, int lanes, Scratch s) {
        for (int lane = 0; lane < lanes; lane++) {
            float sum = s.l[lane];
            float inv = sum > 0 ? 1f / sum : 0f;
            long row = outBase + lane * outRow;
            for (int i = 0; i < dv; i++) c.out.setAtIndex(FLOAT, row + i, s.oT[i * GROUP + lane] * inv);
            if (lseBase >= 0) {
                float lse = sum > 0 ? s.m[lane] + (float) Math.log(sum) : NEG_INF;
                c.lse.setAtIndex(FLOAT, lseBase + lane * lseRow, lse);
            }
        }
    }
}
