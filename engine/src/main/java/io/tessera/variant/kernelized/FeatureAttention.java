package io.tessera.variant.kernelized;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The linear-time core shared by linear attention and the Performer: with a positive feature map
 * φ, {@code out_i = φ(q_i)ᵀ S / φ(q_i)ᵀ z} where {@code S = Σ_j φ(k_j) v_jᵀ} and {@code z = Σ_j φ(k_j)}
 * (sums over j ≤ i when causal). Rows are processed in chunks of {@link #CHUNK}, every product is a
 * {@link Backend#gemm}, and the causal case is the chunked prefix-sum form: the previous chunks'
 * state plus a masked C×C product inside the chunk. Memory: O(chunk·m + m·Dv) per head.
 */
final class FeatureAttention {
    private FeatureAttention() {}

    static final int CHUNK = 128;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    static void forward(Backend backend, FeatureMap phi, boolean causal, Tensor q, Tensor k, Tensor v, Tensor out) {
        AttentionShape s = AttentionShape.of(q, k, v);
        if (out == null) throw new NullPointerException("out");
        s.checkOutput("out", out, s.outputShape());
        if (causal && s.qLen() != s.kvLen()) {
            throw new IllegalArgumentException("causal linear attention needs qLen == kvLen, got qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        }
        int m = phi.features(s.headDim()), dv = s.valueDim();
        try (Arena arena = Arena.ofShared()) {
            Tensor state = Tensor.zeros(arena, m, dv), z = Tensor.zeros(arena, 1, m);
            Tensor phiK = Tensor.zeros(arena, CHUNK, m), phiQ = Tensor.zeros(arena, CHUNK, m);
            Tensor ones = Tensor.zeros(arena, 1, CHUNK);
            ones.fill(1f);
            Tensor scores = Tensor.zeros(arena, CHUNK, CHUNK), num = Tensor.zeros(arena, CHUNK, dv), den = Tensor.zeros(arena, CHUNK, 1);
            Tensor zColumn = Tensor.zeros(arena, m, 1), shiftScratch = Tensor.zeros(arena, CHUNK, m);
            for (int b = 0; b < s.batch(); b++) {
                for (int h = 0; h < s.heads(); h++) {
                    int hk = s.kvHeadOf(h);
                    Tensor qh = q.select(0, b).select(0, h), kh = k.select(0, b).select(0, hk), vh = v.select(0, b).select(0, hk);
                    Tensor oh = out.select(0, b).select(0, h);
                    float shift = phi.keyShift(backend, kh, shiftScratch);
                    state.fill(0f);
                    z.fill(0f);
                    if (!causal) {
                        for (int c0 = 0; c0 < s.kvLen(); c0 += CHUNK) {
                            int rows = Math.min(CHUNK, s.kvLen() - c0);
                            Tensor fk = phiK.slice(0, 0, rows);
                            phi.apply(backend, kh.slice(0, c0, c0 + rows), false, shift, fk);
                            backend.gemm(fk, true, vh.slice(0, c0, c0 + rows), false, state, 1f, 1f);
                            backend.gemm(ones.slice(1, 0, rows), false, fk, false, z, 1f, 1f);
                        }
                    }
                    zColumn.copyFrom(z.transpose(0, 1));
                    for (int c0 = 0; c0 < s.qLen(); c0 += CHUNK) {
                        int rows = Math.min(CHUNK, s.qLen() - c0);
                        Tensor fq = phiQ.slice(0, 0, rows), n = num.slice(0, 0, rows), d = den.slice(0, 0, rows);
                        phi.apply(backend, qh.slice(0, c0, c0 + rows), true, 0f, fq);
                        backend.gemm(fq, false, state, false, n, 1f, 0f);
                        backend.gemm(fq, false, zColumn, false, d, 1f, 0f);
                        if (causal) {
                            // Inside the chunk: tril(φ(Q_c) φ(K_c)ᵀ) V_c, then fold the chunk into the state.
                            Tensor fk = phiK.slice(0, 0, rows), sc = scores.slice(0, 0, rows).slice(1, 0, rows);
                            Tensor vc = vh.slice(0, c0, c0 + rows);
                            phi.apply(backend, kh.slice(0, c0, c0 + rows), false, shift, fk);
                            backend.gemm(fq, false, fk, true, sc, 1f, 0f);
                            keepLowerTriangle(sc);
                            backend.gemm(sc, false, vc, false, n, 1f, 1f);
                            backend.gemm(sc, false, ones.slice(1, 0, rows).transpose(0, 1), false, d, 1f, 1f);
                            backend.gemm(fk, true, vc, false, state, 1f, 1f);
                            backend.gemm(ones.slice(1, 0, rows), false, fk, false, z, 1f, 1f);
                            zColumn.copyFrom(z.transpose(0, 1));
                        }
                        divideRows(n, d, oh.slice(0, c0, c0 + rows));
                    }
                }
            }
        }
    }

    private static void keepLowerTriangle(Tensor square) {
        MemorySegment seg = square.segment();
        int n = (int) square.size(0);
        for (int i = 0; i < n; i++) {
            long row = square.offset() + i * square.stride(0);
            for (int j = i + 1; j < n; j++) seg.setAtIndex(FLOAT, row + j, 0f);
        }
    }

    private static void divideRows(Tensor num, Tensor den, Tensor out) {
        int rows = (int) num.size(0), dv = (int) num.size(1);
        MemorySegment n = num.segment(), d = den.segment(), o = out.segment();
        for (int r = 0; r < rows; r++) {
            float inv = 1f / d.getAtIndex(FLOAT, den.offset() + r * den.stride(0));
            long nr = num.offset() + r * num.stride(0), or = out.offset() + r * out.stride(0);
            for (int c = 0; c < dv; c++) o.setAtIndex(FLOAT, or + c, n.getAtIndex(FLOAT, nr + c) * inv);
        }
    }
}
