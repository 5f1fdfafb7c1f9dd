package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.AttentionOperator;

/**
 * Performer attention with FAVOR+ (Choromanski et al. 2021): softmax attention approximated by
 * m positive (optionally orthogonal) random features in O(n·m·Dv) time and O(m·Dv) state;
 * bidirectional or causal (prefix sums). Features are drawn once per head dim from the seed and
 * kept; {@link #redraw} draws new ones.
 */
public final class Performer implements AttentionOperator {
    private final int features;
    private final boolean orthogonal, causal;
    private final long seed;
    private final Backend backend;
    private volatile RandomFeatures drawn;

    private Performer(int features, boolean orthogonal, boolean causal, long seed, Backend backend) {
        if (features < 1) throw new IllegalArgumentException("features m must be >= 1, got " + features);
        this.features = features;
        this.orthogonal = orthogonal;
        this.causal = causal;
        this.seed = seed;
        this.backend = backend;
    }

    /** m random features, orthogonal, bidirectional, seed 0. */
    public static Performer withFeatures(int m) { return new Performer(m, true, false, 0, null); }

    public Performer orthogonal(boolean orthogonal) { return new Performer(features, orthogonal, causal, seed, backend); }

    public Performer causal(boolean causal) { return new Performer(features, orthogonal, causal, seed, backend); }

    /** The same Performer with features redrawn from {@code seed}. */
    public Performer redraw(long seed) { return new Performer(features, orthogonal, causal, seed, backend); }

    @Override
    public Performer on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new Performer(features, orthogonal, causal, seed, backend);
    }

    public int features() { return features; }

    RandomFeatures featuresFor(int headDim) {
        RandomFeatures f = drawn;
        if (f == null || f.headDim() != headDim) {
            drawn = f = new RandomFeatures(features, headDim, orthogonal, seed);
        }
        return f;
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        int headDim = Checks.attention(q, "k", k, "v", v, out).headDim();
        FeatureAttention.forward(backend != null ? backend : Backend.best(), featuresFor(headDim), causal, q, k, v, out);
    }
}
