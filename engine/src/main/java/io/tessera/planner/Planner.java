package io.tessera.planner;

import io.tessera.attention.Attention;
import io.tessera.layout.BlockLayout;
import io.tessera.pattern.Pattern;
import io.tessera.layout.CsrMatrix;
import io.tessera.variant.sparse.SparseAttention;
import io.tessera.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Chooses how to run a pattern: the fused block kernel (at which block sizes) or the explicit CSR
 * path (SDDMM → softmax → SpMM), from a cost model with constants measured on the machine, and says
 * why ({@link Plan#explain()}) instead of hiding a threshold. The fused kernel pays for whole tiles
 * (plus a mask per PARTIAL tile) at SIMD speed; the CSR path pays only for allowed pairs but at a
 * much higher cost per pair, so it wins for scattered patterns whose tiles are nearly empty.
 */
public final class Planner {
    private Planner() {}

    /**
     * Measured costs. {@link #MEASURED}: this project's machine (2-core Intel Xeon, AVX-512, JDK 25),
     * 2026-11-24: fused dense attention n = 4096, H = 8, D = 64 in 154 ms on 2 threads → 0.018 ns per
     * (pair · head dim); an all-PARTIAL strided layout at n = 4096 runs in 65 ms, less than its
     * computed pairs would cost (80 ms), because PARTIAL tiles skip the keys no lane attends — so
     * no extra per PARTIAL tile is charged; {@code SparseAttention} (SIMD dot and axpy, one thread)
     * on a ±64 window, n = 2048 → 0.37 ns per (non-zero · head dim).
     */
    public record CostModel(double fusedNsPerPairDim, double partialTileNs, double csrNsPerNonZeroDim) {
        public static final CostModel MEASURED = new CostModel(0.018, 0, 0.37);

        public CostModel {
            if (!(fusedNsPerPairDim > 0) || !(partialTileNs >= 0) || !(csrNsPerNonZeroDim > 0)) {
                throw new IllegalArgumentException("cost constants must be positive, got " + fusedNsPerPairDim + ", " + partialTileNs + ", " + csrNsPerNonZeroDim);
            }
        }
    }

    public enum Path { FUSED_BLOCK_SPARSE, EXPLICIT_CSR }

    /** One costed candidate. */
    public record Candidate(Path path, int blockQ, int blockKV, double estimatedMs) {}

    /** The decision, its candidates, and what it runs. */
    public record Plan(Pattern pattern, int qLen, int kvLen, Candidate chosen, List<Candidate> candidates) {
        public Path path() { return chosen.path(); }

        public String explain() {
            StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "plan for %s at q=%d kv=%d: %s", pattern, qLen, kvLen, describe(chosen)));
            for (Candidate c : candidates) {
                sb.append(String.format(Locale.ROOT, "%n  %s %-22s estimated %.3f ms", c == chosen ? "*" : " ", describe(c), c.estimatedMs()));
            }
            return sb.toString();
        }

        private static String describe(Candidate c) {
            return c.path() == Path.EXPLICIT_CSR ? "explicit CSR" : "fused " + c.blockQ() + "x" + c.blockKV() + " blocks";
        }

        /** Runs the chosen path: q [B,H,Nq,D], k/v [B,Hkv,Nkv,·], out [B,H,Nq,Dv]. */
        public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
            if (chosen.path() == Path.EXPLICIT_CSR) {
                SparseAttention.forward(q, k, v, CsrMatrix.fromLayout(pattern.compile(qLen, kvLen, 64, 64)), (float) (1 / Math.sqrt(q.size(3))), out, null);
            } else {
                Attention.sparse(pattern).withBlockSizes(chosen.blockQ(), chosen.blockKV()).forward(q, k, v, out);
            }
        }
    }

    private static final int[][] BLOCK_CANDIDATES = {{64, 64}, {32, 32}, {64, 32}, {32, 64}};

    public static Plan plan(Pattern pattern, int heads, int qLen, int kvLen, int headDim) {
        return plan(pattern, heads, qLen, kvLen, headDim, CostModel.MEASURED);
    }

    public static Plan plan(Pattern pattern, int heads, int qLen, int kvLen, int headDim, CostModel model) {
        if (pattern == null) throw new NullPointerException("pattern");
        if (heads < 1) throw new IllegalArgumentException("heads must be >= 1, got " + heads);
        if (headDim < 1) throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        List<Candidate> candidates = new ArrayList<>();
        long allowed = -1;
        for (int[] blocks : BLOCK_CANDIDATES) {
            BlockLayout layout = pattern.compile(qLen, kvLen, blocks[0], blocks[1]);
            if (allowed < 0) allowed = layout.allowedPairs();
            double tileShare = blocks[0] * blocks[1] / 4096.0;   // partial-tile overhead scales with tile area
            double ns = heads * (layout.computedPairs() * (double) headDim * model.fusedNsPerPairDim()
                    + layout.partialTiles() * model.partialTileNs() * tileShare);
            candidates.add(new Candidate(Path.FUSED_BLOCK_SPARSE, blocks[0], blocks[1], ns / 1e6));
        }
        candidates.add(new Candidate(Path.EXPLICIT_CSR, 0, 0, heads * allowed * (double) headDim * model.csrNsPerNonZeroDim() / 1e6));
        Candidate best = candidates.get(0);
        for (Candidate c : candidates) if (c.estimatedMs() < best.estimatedMs()) best = c;
        return new Plan(pattern, qLen, kvLen, best, List.copyOf(candidates));
    }
}
