package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;

/**
 * A positive feature map φ with softmax-free attention {@code out_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j)}.
 * Each feature is a fixed function of one pre-activation u: {@code e^u} for exponential maps
 * (FAVOR+, where u is the exponent) and {@code elu(u) + 1} otherwise; {@link FeatureAttention}
 * evaluates it scaled, in the log domain, so that it neither underflows nor overflows.
 */
interface FeatureMap {
    /** Feature count m for head dim d. */
    int features(int headDim);

    /** True when φ = e^u (u is the log of the feature), false when φ = elu(u) + 1. */
    boolean exponential();

    /** Writes the pre-activations of the rows of {@code x} ([rows, D] view) into {@code dst} ([rows, m], contiguous). */
    void preActivations(Backend backend, Tensor x, Tensor dst);

    /**
     * {@link #preActivations} into the heap array {@code dst} (rows × m, row-major), the same
     * values bit for bit; {@code scratch} ([rows, m], contiguous) may be used on the way. The
     * forward pass's element-wise kernels work on heap rows: this saves the copy out of a tensor.
     */
    void preActivations(Backend backend, Tensor x, Tensor scratch, float[] dst);

    /**
     * True when the pre-activations are the input rows themselves (u = x, m = D): the forward pass
     * may then read the rows straight from the input and fold its first pass over them into the copy.
     */
    default boolean identity() { return false; }

    /**
     * {@link #preActivations(Backend, Tensor, Tensor, float[])} for query rows of the forward pass,
     * whose values may differ from it by a constant per row: a query weighs its features by
     * φ(u)·e^(σ − M) with M the row's largest log-weight, so a row constant cancels (e^(u + c) = e^u·e^c
     * and M moves by c). The Performer leaves out its ‖x‖²/(2√D) there.
     */
    default void queryPreActivations(Backend backend, Tensor x, Tensor scratch, float[] dst) {
        preActivations(backend, x, scratch, dst);
    }

    /**
     * The backward pass of {@link #preActivations}: {@code dx = (∂u/∂x)ᵀ du} for the rows of
     * {@code x} ([rows, D] view), given {@code du} ([rows, m]); written into {@code dx} ([rows, D],
     * unit-stride rows), or added to it when {@code accumulate}.
     */
    void preActivationsBackward(Backend backend, Tensor x, Tensor du, Tensor dx, boolean accumulate);
}
