package io.tessera.cpu;

import io.tessera.backend.AttentionGeometry;

import io.tessera.layout.HeadLayouts;
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
        AttentionGeometry g = AttentionGeometry.checked(q, k, v, layouts, scale, out, lse);
        return new AttentionCall(g, q, k, v, out, lse, layouts);
    }
}
