package io.tessera.kernel;

import io.tessera.attention.AttentionShape;
import io.tessera.pattern.HeadLayouts;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * One validated attention call: the segments, the geometry and the layouts. Built once per call by
 * the backends; the kernels read its fields.
 */
final class AttentionCall {
    final AttentionGeometry g;
    final MemorySegment q, k, v, out, lse;   // lse may be null
    final HeadLayouts layouts;

    private AttentionCall(AttentionGeometry g, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, HeadLayouts layouts) {
        this.g = g;
        this.q = q.segment();
        this.k = k.segment();
        this.v = v.segment();
        this.out = out.segment();
        this.lse = lse == null ? null : lse.segment();
        this.layouts = layouts;
    }

    /** Validates every argument, naming the offending one. */
    static AttentionCall of(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
        AttentionShape s = AttentionShape.of(q, k, v);
        if (layouts == null) throw new NullPointerException("layouts");
        if (out == null) throw new NullPointerException("out");
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        s.checkOutput("out", out, s.outputShape());
        if (lse != null) s.checkOutput("lse", lse, s.lseShape());
        layouts.check(s.heads(), s.qLen(), s.kvLen());
        AttentionGeometry g = AttentionGeometry.of(s, scale, q, k, v, out, lse);
        return new AttentionCall(g, q, k, v, out, lse, layouts);
    }
}
