package io.tessera.backend;

import io.tessera.layout.CsrMatrix;
import io.tessera.variant.sparse.SparseAttention;

import io.tessera.tensor.Tensor;

/**
 * A backend that runs the explicit sparse path (SDDMM → row softmax → SpMM) itself, on its device.
 * {@link SparseAttention#forward(io.tessera.backend.Backend, Tensor, Tensor, Tensor, CsrMatrix, float, Tensor, Tensor)}
 * hands the call to backends that implement this; the others get the CPU path. Implementations
 * validate their arguments with {@link SparseAttention#checked}.
 */
public interface SparseAttentionDevice {

    /** {@link SparseAttention#forward} on the device: one CSR pattern for every (batch, head). */
    void sparseAttention(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse);
}
