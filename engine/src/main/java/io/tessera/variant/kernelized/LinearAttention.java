package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;

/**
 * Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"): softmax replaced by the
 * kernel φ(q)·φ(k) with φ(x) = elu(x) + 1, in O(n·D·Dv) time; causal through prefix sums.
 * A different function from softmax attention: its contract is its own quadratic definition.
 */
public final class LinearAttention implements AttentionOperator {
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

    /** q [B,H,N,D], k [B,Hkv,N,D], v [B,Hkv,N,Dv] → out [B,H,N,Dv]. */
    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        FeatureAttention.forward(backend != null ? backend : Backend.best(), new EluFeatureMap(), causal, q, k, v, out);
    }
}
