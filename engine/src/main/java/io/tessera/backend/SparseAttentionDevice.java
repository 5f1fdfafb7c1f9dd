package io.tessera.backend;

import io.tessera.layout.CsrMatrix;
import io.tessera.tensor.Tensor;

/**
 * A backend that runs the explicit sparse path (SDDMM → row softmax → SpMM) on its device. The
 * explicit sparse variants ({@code SparseAttention}, {@code TopKAttention}) hand their calls to the
 * backend they run on when it implements this (the CPU backends and the tornado backend do).
 * Implementations validate their arguments with {@link AttentionGeometry#checked(Tensor, Tensor,
 * Tensor, CsrMatrix, float, Tensor, Tensor)}.
 */
public interface SparseAttentionDevice {

    /**
     * Attention restricted to the entries of {@code pattern}, one CSR pattern ({@code [Nq, Nkv]})
     * for every (batch, head): q, k, v, out and lse ({@code [B,H,Nq]} or null) as in
     * {@link Backend#attention}; rows without entries give 0 and LSE −∞.
     */
    void sparseAttention(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse);
}
