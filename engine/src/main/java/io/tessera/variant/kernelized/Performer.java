package io.tessera.variant.kernelized;

import io.tessera.attention.Attention;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.internal.HalfInputs;
import io.tessera.variant.AttentionOperator;

/**
 * Performer attention with FAVOR+ (Choromanski et al. 2021): softmax attention approximated by
 * m positive (optionally orthogonal) random features in O(n·m·Dv) time and O(m·Dv) state;
 * bidirectional or causal (prefix sums). Features are drawn once per head dim from the seed and
 * kept; {@link #redraw} draws new ones. {@link #backward} differentiates the function
 * {@link #forward} computes (this estimator, its features held fixed), not softmax attention.
 */
public final class Performer implements AttentionOperator.Differentiable {
    private final int features;
    private final boolean orthogonal, causal;
    private final long seed;
    private final Backend backend;
    private volatile RandomFeatures drawn;
    /** The fused kernel of the bidirectional forward ({@link FeatureSoftmax}); kept so its compiled layouts are cached across calls. */
    private final Attention dense = Attention.dense();

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

    /**
     * A copy, in {@code arena}, of the random projection this Performer uses for head dim
     * {@code headDim}: {@code [m, headDim]}, row f = ω_f·D^(−1/4), so that feature f of a row x is
     * {@code exp(row_f·x − ‖x‖²/(2√D))/√m} (before the stabilizing shifts, which cancel).
     */
    public Tensor projection(Arena arena, int headDim) {
        if (arena == null) throw new NullPointerException("arena");
        if (headDim < 1) throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        return featuresFor(headDim).omega().contiguous(arena);
    }

    RandomFeatures featuresFor(int headDim) {
        RandomFeatures f = drawn;
        if (f == null || f.headDim() != headDim) {
            drawn = f = new RandomFeatures(features, headDim, orthogonal, seed);
        }
        return f;
    }

    /**
     * Floating-point operations of one {@link #forward} on inputs of shape {@code s}, a multiply-add
     * counted as 2: the random projections of every query and key row (2·D·m each, and 2·D for its
     * norm), then linear attention over the m features (see {@link LinearAttention#forwardFlops});
     * the exponentials are not counted.
     */
    public double forwardFlops(io.tessera.backend.AttentionShape s) {
        if (s == null) throw new NullPointerException("s");
        double rows = (double) s.batch() * s.heads() * (s.qLen() + s.kvLen());
        return rows * 2.0 * s.headDim() * (features + 1) + FeatureAttention.flops(s, features, causal);
    }

    /**
     * Bidirectional: the estimate as two softmax attentions through the m random directions
     * ({@link FeatureSoftmax}), in the fused dense kernel. Measured on the Intel Xeon (B = 1, H = 8,
     * n = 4096, D = 64, m = 256, two threads, alternating JVMs): 27.4–27.6 ms through the feature
     * matrices (four GEMMs and the element-wise exponentials), 20.9–21.2 ms this way. Causal: prefix
     * sums of the features ({@link FeatureAttention}).
     */
    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        if (HalfInputs.forward(q, "k", k, "v", v, out, this::forward)) return;
        AttentionShape s = Checks.attention(q, "k", k, "v", v, out);
        Backend be = backend != null ? backend : Backend.best();
        if (causal) FeatureAttention.forward(be, featuresFor(s.headDim()), true, q, k, v, out);
        else FeatureSoftmax.forward(be, featuresFor(s.headDim()), dense, s, q, k, v, out);
    }

    /**
     * The gradients of {@link #forward} with respect to q, k and v, the random features held fixed,
     * recomputed in O(n·m·(D+Dv)); see {@link AttentionOperator.Differentiable#backward}. Causal:
     * dq of row i depends on positions ≤ i only.
     */
    @Override
    public void backward(Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (HalfInputs.backward(q, "k", k, "v", v, dOut, dq, dk, dv, this::backward)) return;
        int headDim = Checks.backward(q, "k", k, "v", v, dOut, dq, dk, dv).headDim();
        FeatureAttention.backward(backend != null ? backend : Backend.best(), featuresFor(headDim), causal, q, k, v, dOut, dq, dk, dv);
    }
}
