package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;

/**
 * A positive feature map φ with softmax-free attention {@code out_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j)}.
 */
interface FeatureMap {
    /** Feature count m for head dim d. */
    int features(int headDim);

    /**
     * Writes φ of the rows of {@code x} ([rows, D] view) into {@code dst} ([rows, m], contiguous).
     * {@code keyShift} is subtracted inside the exponent of exponential maps (a numerical
     * stabilizer shared by all keys of a head); others ignore it.
     */
    void apply(Backend backend, Tensor x, boolean query, float keyShift, Tensor dst);

    /** The stabilizer for the keys of one head (the max exponent over them), or 0 when unused; scratch is [chunk, m]. */
    default float keyShift(Backend backend, Tensor keys, Tensor scratch) { return 0f; }
}
