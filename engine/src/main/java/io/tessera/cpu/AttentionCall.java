package io.tessera.cpu;

import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.GradientGeometry;
import io.tessera.layout.BlockLayout;
import io.tessera.layout.HeadLayouts;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * One validated attention call, forward or backward: the segments, the geometry and the layouts.
 * Built once per call by the backends; the kernels read its fields. The gradient fields are null
 * for a forward call. q, k, v, out and dOut carry their element types (the kernels widen them while
 * packing and round the output when writing it); lse, dq, dk and dv are always float32.
 */
final class AttentionCall {
    final AttentionGeometry g;
    final MemorySegment q, k, v, out, lse;   // lse may be null in a forward call
    final HeadLayouts layouts;
    final GradientGeometry gg;               // null: forward
    final MemorySegment dOut, dq, dk, dv;
    /**
     * Forward calls: per (batch, key/value head, key block) whether the block's value rows are all
     * finite (1), not (2) or not yet known (0), filled by the SIMD kernel the first time any query
     * block meets the key block, so the check runs once per block and call instead of once per
     * query block. Threads racing on an entry write the same value. Null when not used.
     */
    final byte[] valueBlockFinite;
    private final int keyBlocks;
    /** The first (batch, head, query row), in that order, whose scores overflowed float32; MAX_VALUE: none. */
    private final java.util.concurrent.atomic.AtomicLong firstOverflow = new java.util.concurrent.atomic.AtomicLong(Long.MAX_VALUE);
    /** The score modifier at this call's sizes, or null (then nothing below is used). */
    ScoreMod.Plan mods;
    /**
     * Backward with learnable modifier tables: each key-major item's partial sums of each table's
     * gradient, [table step][batch][kv head][key block][query head of it][bucket]; partialBase[step]
     * is where a table step's block starts (−1: not learnable).
     */
    float[] modPartials;
    int[] partialBase;
    final ElementType qType, kType, vType, outType, dOutType;   // dOutType is F32 in a forward call
    /**
     * Distinguishes this call from every other in the process: a thread's packed key/value panels
     * (SimdAttentionKernel.headPanels) are reused only by the call that packed them.
     */
    final long id = IDS.incrementAndGet();
    private static final java.util.concurrent.atomic.AtomicLong IDS = new java.util.concurrent.atomic.AtomicLong();

    private AttentionCall(AttentionGeometry g, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, HeadLayouts layouts,
                          GradientGeometry gg, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        this.g = g;
        this.q = q.segment();
        this.k = k.segment();
        this.v = v.segment();
        this.out = out.segment();
        this.lse = lse == null ? null : lse.segment();
        this.layouts = layouts;
        this.gg = gg;
        this.dOut = dOut == null ? null : dOut.segment();
        this.dq = dq == null ? null : dq.segment();
        this.dk = dk == null ? null : dk.segment();
        this.dv = dv == null ? null : dv.segment();
        int blockKV = layouts.first().blockKV(), kvLen = g.shape().kvLen();
        this.keyBlocks = (kvLen + blockKV - 1) / blockKV;
        long entries = (long) g.shape().batch() * g.shape().kvHeads() * keyBlocks;
        this.valueBlockFinite = gg == null && entries <= MAX_VALUE_BLOCK_ENTRIES ? new byte[(int) entries] : null;
        this.qType = q.type();
        this.kType = k.type();
        this.vType = v.type();
        this.outType = out.type();
        this.dOutType = dOut == null ? ElementType.F32 : dOut.type();
    }

    /** Above this many (batch, head, key block) entries the kernels check each tile as they load it. */
    private static final long MAX_VALUE_BLOCK_ENTRIES = 1 << 16;

    /**
     * Judges a finished row whose softmax sum is not positive; true when the row must read NaN.
     * A NaN sum with a running max of +∞ means a score reached +∞; a sum of 0 on a row that has
     * allowed keys means every allowed score reached −∞ (unless a score modifier is present: one may
     * return −∞ to mask, as FlexAttention's score_mod may, and the row is then fully masked). If the row's query and every key it may
     * attend are finite, q·k·scale left float32's range: the row is recorded and the call throws
     * when it ends ({@link #throwIfScoresOverflowed}). If one of them is infinite, that is garbage
     * in the row's own inputs and the row reads NaN, like a NaN input, with LSE NaN: −∞ stays the
     * mark of a fully masked row, and garbage in other rows never turns into an error here. Rare:
     * the kernels call this only for rows whose sum is not positive.
     */
    boolean rowIsUndefined(int b, int h, int row, float sum, float max, BlockLayout layout) {
        boolean scoresLeftRange;
        if (sum != sum) scoresLeftRange = max == Float.POSITIVE_INFINITY;
        else if (sum == 0f) scoresLeftRange = mods == null && layout.rowHasAllowedKey(row);   // a modifier may mask with −∞
        else return false;
        if (scoresLeftRange && rowInputsFinite(b, h, row, layout)) {
            long code = ((long) b * g.shape().heads() + h) * g.shape().qLen() + row;
            firstOverflow.accumulateAndGet(code, Math::min);
        }
        return sum != sum || scoresLeftRange;
    }

    /** Whether query row {@code row} of (b, h) and every key row it may attend hold only finite values. */
    private boolean rowInputsFinite(int b, int h, int row, BlockLayout layout) {
        int d = g.shape().headDim(), hk = g.shape().kvHeadOf(h);
        if (!finite(q, qType, g.qBase(b, h) + (long) row * g.qRow(), d)) return false;
        int blockQ = layout.blockQ(), blockKV = layout.blockKV(), words = layout.maskWordsPerRow(), kvLen = g.shape().kvLen();
        int[] offsets = layout.rowOffsets(), cols = layout.colIndices();
        long[] mask = new long[layout.rowsPerBlock() * words];
        int qBlock = row / blockQ, r = row % blockQ;
        for (int t = offsets[qBlock]; t < offsets[qBlock + 1]; t++) {
            layout.fillTileMask(t, mask);
            int kv0 = cols[t] * blockKV, n = Math.min(blockKV, kvLen - kv0);
            for (int j = 0; j < n; j++) {
                if ((mask[r * words + (j >>> 6)] & (1L << j)) != 0 && !finite(k, kType, g.kBase(b, hk) + (long) (kv0 + j) * g.kRow(), d)) return false;
            }
        }
        return true;
    }

    private static boolean finite(MemorySegment segment, ElementType type, long index, int count) {
        for (int i = 0; i < count; i++) {
            if (!Float.isFinite(type.get(segment, index + i))) return false;
        }
        return true;
    }

    /** Throws, naming the first row, when rowIsUndefined found scores that left float32's range. */
    void throwIfScoresOverflowed() {
        long code = firstOverflow.get();
        if (code == Long.MAX_VALUE) return;
        int qLen = g.shape().qLen(), heads = g.shape().heads();
        long row = code % qLen, bh = code / qLen;
        throw new ArithmeticException("attention scores overflowed float32 at batch " + bh / heads + ", head " + bh % heads + ", query row " + row
                + ": q·k·scale (scale " + g.scale() + ") reached ±∞ for an allowed key, so the softmax is undefined in float32."
                + " Either |q|·|k|·scale exceeds 3.4e38 (scale q or k down) or q/k holds an infinity");
    }

    /** Index into valueBlockFinite. */
    int valueBlock(int b, int hk, int kvBlock) {
        return (b * g.shape().kvHeads() + hk) * keyBlocks + kvBlock;
    }

    /** A forward call; validates every argument, naming the offending one. */
    static AttentionCall of(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
        AttentionGeometry g = AttentionGeometry.checkedHalfStorage(q, k, v, layouts, scale, out, lse);
        return new AttentionCall(g, q, k, v, out, lse, layouts, null, null, null, null, null);
    }

    /** A backward call; validates every argument, naming the offending one. */
    static AttentionCall backward(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse,
                                  Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        GradientGeometry gg = GradientGeometry.checked(q, k, v, layouts, scale, out, lse, dOut, dq, dk, dv);
        return new AttentionCall(gg.forward(), q, k, v, out, lse, layouts, gg, dOut, dq, dk, dv);
    }

    /** This call with a score modifier (null: none) planned for {@code queryPadding} padded query rows. */
    AttentionCall withMods(ScoreMod mod, int queryPadding) {
        if (mod == null) return this;
        mods = mod.plan(g.shape().heads(), g.shape().qLen(), g.shape().kvLen(), queryPadding);
        if (gg == null || mods.parameterCount() == 0) return this;
        int steps = mods.steps();
        partialBase = new int[steps];
        long total = 0, perBucket = (long) g.shape().batch() * g.shape().heads() * layouts.first().kvBlocks();
        for (int st = 0; st < steps; st++) {
            partialBase[st] = -1;
            if (mods.parameter(st) < 0) continue;
            partialBase[st] = (int) Math.min(total, Integer.MAX_VALUE);
            total += perBucket * mods.bucketCount(st);
        }
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("the bias tables' per-item gradient sums need " + total + " floats (batch x heads x key blocks x buckets): too many");
        }
        modPartials = new float[(int) total];
        return this;
    }

    /** Where a key-major item's partial sums of step {@code step}'s table start, for query head {@code hi} of kv head {@code hk}. */
    int partialOffset(int step, int b, int hk, int kvBlock, int hi) {
        int kvHeads = g.shape().kvHeads(), perKv = g.shape().queryHeadsPerKvHead(), kvBlocks = layouts.first().kvBlocks();
        long item = (((long) b * kvHeads + hk) * kvBlocks + kvBlock) * perKv + hi;
        return (int) (partialBase[step] + item * mods.bucketCount(step));
    }

    /** Every segment the call reads or writes (for the worker pool's confinement check). */
    MemorySegment[] segments() {
        return new MemorySegment[] {q, k, v, out, lse, dOut, dq, dk, dv};
    }
}
