package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.internal.HalfInputs;

/**
 * Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"): softmax replaced by the
 * kernel φ(q)·φ(k) with φ(x) = elu(x) + 1, in O(n·D·Dv) time; causal through prefix sums.
 * A different function from softmax attention: its contract is its own quadratic definition.
 * {@link #backward} gives the exact gradients of that function (every input row is attended, so
 * there are no fully masked rows; causal: dq of row i depends on positions ≤ i only).
 */
public final class LinearAttention implements AttentionOperator.Differentiable {
    private final boolean causal;
    private final Backend backend;

    private LinearAttention(boolean causal, Backend backend) {
        this.causal = causal;
        this.backend = backend;
    }

    public static LinearAttention bidirectional() { return new LinearAttention(false, null); }

    public static LinearAttention causal() { return new LinearAttention(true, null); }

    @Override
    public LinearAttention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new LinearAttention(causal, backend);
    }

    public boolean isCausal() { return causal; }

    /**
     * Floating-point operations of one {@link #forward} on inputs of shape {@code s}, a multiply-add
     * counted as 2: per query head 2·Nkv·D·Dv + Nkv·D for the state and its sums, 2·Nq·D·(Dv + 1)
     * for the queries, and when causal 2·c·(D + Dv + 1) per row for the masked in-chunk products
     * (chunks of c = 60 rows). The element-wise feature map is not counted.
     */
    public double forwardFlops(io.tessera.backend.AttentionShape s) {
        if (s == null) throw new NullPointerException("s");
        return FeatureAttention.flops(s, s.headDim(), causal);
    }

    /** q [B,H,N,D], k [B,Hkv,N,D], v [B,Hkv,N,Dv] → out [B,H,N,Dv]. */
    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        if (HalfInputs.forward(q, "k", k, "v", v, out, this::forward)) return;
        FeatureAttention.forward(backend != null ? backend : Backend.best(), new EluFeatureMap(), causal, q, k, v, out);
    }

    /**
     * The gradients of {@link #forward}, recomputed from q, k, v in the same O(n·D·Dv) time (two
     * passes over the chunks when causal); see {@link AttentionOperator.Differentiable#backward}.
     */
    @Override
    public void backward(Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (HalfInputs.backward(q, "k", k, "v", v, dOut, dq, dk, dv, this::backward)) return;
        FeatureAttention.backward(backend != null ? backend : Backend.best(), new EluFeatureMap(), causal, q, k, v, dOut, dq, dk, dv);
    }
}
