package io.tessera.variant.tensorized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.internal.HalfInputs;
import java.lang.foreign.Arena;
import java.util.Arrays;

/**
 * Multi-linear attention with block-term tensor decomposition (Ma et al. 2019, "A Tensorized
 * Transformer for Language Modeling"). Projections are CP-factored and shared by every block:
 * {@code Q = X_q·A_q·B_qᵀ} (rank S; likewise K, V), giving factor matrices of shape n × R. Block p
 * has a diagonal core g_p of rank R, and its single-block attention is the third-order tensor
 * {@code T_p = Σ_r g_p[r] · Q[:,r] ∘ K[:,r] ∘ V[:,r]} (n × n × n). The output is
 * {@code Y = SplitConcat((1/P)·Σ_p T_p) · W_O} with SplitConcat(T)[a, b·n + e] = T[a, b, e].
 *
 * <p>It is not softmax attention: its contract is its own definition, checked against an explicit
 * float64 einsum. Computed without materializing T: with ḡ = mean_p g_p,
 * {@code Y = (Q·diag(ḡ))·Z} and {@code Z[r, c] = Σ_{b,e} K[b,r]·V[e,r]·W_O[b·n+e, c]}, all GEMMs:
 * O(n·d·S + R·n²·C) time, O(R·n²) scratch — W_O itself has n²·C entries, so n stays moderate.
 */
public final class TensorizedAttention implements AttentionOperator {
    private final int n, modelDim, rank, cpRank, blocks, outDim;
    private final Tensor aq, bq, ak, bk, av, bv;   // CP factors: A [modelDim, S], B [R, S]
    private final float[][] cores;                  // [blocks][rank]
    private final Tensor wo;                        // [n², outDim]
    private final Backend backend;

    private TensorizedAttention(int n, int modelDim, int rank, int cpRank, int blocks, int outDim, Tensor[] factors, float[][] cores, Tensor wo, Backend backend) {
        this.n = n;
        this.modelDim = modelDim;
        this.rank = rank;
        this.cpRank = cpRank;
        this.blocks = blocks;
        this.outDim = outDim;
        this.aq = factors[0]; this.bq = factors[1];
        this.ak = factors[2]; this.bk = factors[3];
        this.av = factors[4]; this.bv = factors[5];
        this.cores = cores;
        this.wo = wo;
        this.backend = backend;
    }

    /** Seeded initialization (Gaussian factors scaled by 1/√fan-in, cores uniform in [0, 1) as in the paper). */
    public static TensorizedAttention random(int n, int modelDim, int rank, int cpRank, int blocks, int outDim, long seed) {
        check("n", n);
        check("modelDim", modelDim);
        check("rank R", rank);
        check("CP rank S", cpRank);
        check("blocks P", blocks);
        check("outDim", outDim);
        if ((long) n * n > Integer.MAX_VALUE / Math.max(1, outDim)) throw new IllegalArgumentException("W_O would have n²·outDim = " + (long) n * n * outDim + " entries; n=" + n + " is too long for tensorized attention");
        Arena arena = Arena.ofAuto();
        Tensor[] factors = new Tensor[6];
        for (int f = 0; f < 6; f += 2) {
            factors[f] = Tensor.randomNormal(arena, seed + f, (float) (1 / Math.sqrt(modelDim)), modelDim, cpRank);
            factors[f + 1] = Tensor.randomNormal(arena, seed + f + 1, (float) (1 / Math.sqrt(cpRank)), rank, cpRank);
        }
        java.util.SplittableRandom random = new java.util.SplittableRandom(seed + 7);
        float[][] cores = new float[blocks][rank];
        for (float[] core : cores) for (int r = 0; r < rank; r++) core[r] = (float) random.nextDouble();
        Tensor wo = Tensor.randomNormal(arena, seed + 8, (float) (1 / Math.sqrt((double) n * n)), (long) n * n, outDim);
        return new TensorizedAttention(n, modelDim, rank, cpRank, blocks, outDim, factors, cores, wo, null);
    }

    private static void check(String name, int v) {
        if (v < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + v);
    }

    @Override
    public TensorizedAttention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new TensorizedAttention(n, modelDim, rank, cpRank, blocks, outDim, new Tensor[] {aq, bq, ak, bk, av, bv}, cores, wo, backend);
    }

    /** The parameters, for reference computations: index 0–5 = A_q, B_q, A_k, B_k, A_v, B_v. */
    public Tensor factor(int index) { return new Tensor[] {aq, bq, ak, bk, av, bv}[index]; }
    public float[] core(int block) { return cores[block].clone(); }
    public Tensor outputProjection() { return wo; }
    public int blocks() { return blocks; }
    public int rank() { return rank; }

    /** {@code [n, outDim]}, for inputs xq, xk, xv of shape {@code [n, modelDim]} (checked). */
    @Override
    public long[] outputShape(Tensor xq, Tensor xk, Tensor xv) {
        for (Tensor x : new Tensor[] {xq, xk, xv}) {
            if (x == null) throw new NullPointerException("input");
            if (x.rank() != 2 || x.size(0) != n || x.size(1) != modelDim) {
                throw new IllegalArgumentException("inputs must be [n=" + n + ", modelDim=" + modelDim + "], got " + Arrays.toString(x.shape()));
            }
        }
        return new long[] {n, outDim};
    }

    /** xq, xk, xv [n, modelDim] → out [n, outDim]. */
    @Override
    public void forward(Tensor xq, Tensor xk, Tensor xv, Tensor out) {
        String[] names = {"xq", "xk", "xv"};
        Tensor[] inputs = {xq, xk, xv};
        for (int i = 0; i < 3; i++) {
            Tensor x = inputs[i];
            if (x == null) throw new NullPointerException(names[i]);
            if (x.rank() != 2 || x.size(0) != n || x.size(1) != modelDim) {
                throw new IllegalArgumentException(names[i] + " must be [n=" + n + ", modelDim=" + modelDim + "], got " + Arrays.toString(x.shape()));
            }
        }
        if (out == null) throw new NullPointerException("out");
        if (out.rank() != 2 || out.size(0) != n || out.size(1) != outDim) {
            throw new IllegalArgumentException("out must be [" + n + ", " + outDim + "], got " + Arrays.toString(out.shape()));
        }
        if (HalfInputs.any(xq, xk, xv, out)) {
            // Half-precision storage: float32 copies in, one rounding out (out may still alias an input: the copies are read).
            HalfInputs.widened(xq, xk, xv, out, this::forward);
            return;
        }
        // out may be the memory of an input: the inputs are fully read (projected into scratch) before out is written.
        Backend be = backend != null ? backend : Backend.best();
        try (Arena arena = Arena.ofShared()) {
            Tensor q = project(be, arena, xq, aq, bq), k = project(be, arena, xk, ak, bk), v = project(be, arena, xv, av, bv);
            // Z[r, b·n+e] rows: the rank-1 products K[:,r] ∘ V[:,r], flattened, then times W_O.
            Tensor kv = Tensor.zeros(arena, rank, (long) n * n), z = Tensor.zeros(arena, rank, outDim);
            for (int r = 0; r < rank; r++) {
                for (int b = 0; b < n; b++) {
                    float kb = k.get(b, r);
                    for (int e = 0; e < n; e++) kv.set(kb * v.get(e, r), r, (long) b * n + e);
                }
            }
            be.gemm(kv, false, wo, false, z, 1f, 0f);
            // Q·diag(ḡ), ḡ the mean core over the P blocks.
            for (int r = 0; r < rank; r++) {
                float g = 0;
                for (float[] core : cores) g += core[r];
                g /= blocks;
                for (int a = 0; a < n; a++) q.set(q.get(a, r) * g, a, r);
            }
            be.gemm(q, false, z, false, out, 1f, 0f);
        }
    }

    private Tensor project(Backend be, Arena arena, Tensor x, Tensor a, Tensor b) {
        Tensor low = Tensor.zeros(arena, n, cpRank), full = Tensor.zeros(arena, n, rank);
        be.gemm(x, false, a, false, low, 1f, 0f);
        be.gemm(low, false, b, true, full, 1f, 0f);
        return full;
    }
}
