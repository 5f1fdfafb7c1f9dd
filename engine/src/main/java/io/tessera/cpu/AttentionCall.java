package io.tessera.cpu;

import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.GradientGeometry;
import io.tessera.layout.HeadLayouts;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * One validated attention call, forward or backward: the segments, the geometry and the layouts.
 * Built once per call by the backends; the kernels read its fields. The gradient fields are null
 * for a forward call.
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
    }

    /** Above this many (batch, head, key block) entries the kernels check each tile as they load it. */
    private static final long MAX_VALUE_BLOCK_ENTRIES = 1 << 16;

    /** Index into valueBlockFinite. */
    int valueBlock(int b, int hk, int kvBlock) {
        return (b * g.shape().kvHeads() + hk) * keyBlocks + kvBlock;
    }

    /** A forward call; validates every argument, naming the offending one. */
    static AttentionCall of(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
        AttentionGeometry g = AttentionGeometry.checked(q, k, v, layouts, scale, out, lse);
        return new AttentionCall(g, q, k, v, out, lse, layouts, null, null, null, null, null);
    }

    /** A backward call; validates every argument, naming the offending one. */
    static AttentionCall backward(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse,
                                  Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        GradientGeometry gg = GradientGeometry.checked(q, k, v, layouts, scale, out, lse, dOut, dq, dk, dv);
        return new AttentionCall(gg.forward(), q, k, v, out, lse, layouts, gg, dOut, dq, dk, dv);
    }

    /** Every segment the call reads or writes (for the worker pool's confinement check). */
    MemorySegment[] segments() {
        return new MemorySegment[] {q, k, v, out, lse, dOut, dq, dk, dv};
    }
}
