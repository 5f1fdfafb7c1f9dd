package io.tessera.bench.peers;

/**
 * A peer that can also run a training step of attention: the forward pass and the gradients of
 * {@code Σ dOut ∘ output} with respect to q, k and v, through the library's own autograd, as its
 * users would. Same lifecycle as {@link Peer}; {@link #prepareGradient} after {@link #prepare}.
 */
public interface TrainingPeer extends Peer {

    /** The loss gradient {@code [heads, n, headDim]} that every step back-propagates. */
    void prepareGradient(float[] dOut) throws Exception;

    /** One forward and backward pass on the prepared inputs. */
    void step() throws Exception;

    /** dq, dk, dv {@code [heads, n, headDim]} of the last step. */
    float[][] gradients() throws Exception;
}
