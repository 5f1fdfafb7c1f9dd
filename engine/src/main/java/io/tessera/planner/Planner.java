package io.tessera.planner;

import io.tessera.attention.Attention;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.layout.BlockLayout;
import io.tessera.layout.CsrMatrix;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.sparse.SparseAttention;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Chooses how to run a pattern: the fused block kernel (at which block sizes) or the explicit CSR
 * path (SDDMM → softmax → SpMM), from a cost model whose constants are measured on the machine at
 * hand, and says why ({@link Plan#explain()}) instead of hiding a threshold. The fused kernel pays
 * for every pair of the tiles it visits at SIMD speed (PARTIAL tiles skip the keys no lane attends,
 * so they cost no more per computed pair); the CSR path pays only for allowed pairs but at a much
 * higher cost per pair, so it wins for scattered patterns whose tiles are nearly empty.
 */
public final class Planner {
    private Planner() {}

    /**
     * Cost per unit of work of each path, in ns: the fused kernel per (computed pair · head dim), the
     * CSR path per (non-zero · head dim), both per head and at the backend's default thread count.
     * {@link #measured()} times both on this machine once per JVM.
     */
    public record CostModel(double fusedNsPerPairDim, double csrNsPerNonZeroDim) {
        /** System property that fixes the fused constant (ns per pair · dim) instead of measuring it. */
        public static final String FUSED_PROPERTY = "tessera.planner.fusedNsPerPairDim";
        /** System property that fixes the CSR constant (ns per non-zero · dim) instead of measuring it. */
        public static final String CSR_PROPERTY = "tessera.planner.csrNsPerNonZeroDim";
        /**
         * The model's stated error: an estimate is within this factor of the measured time (either
         * way) on the shapes the planner is tested on. Generous because the constants come from one
         * shape each and a call's time also depends on cache fit and on other load on a shared machine.
         */
        public static final double STATED_ERROR_FACTOR = 3;

        public CostModel {
            if (!(fusedNsPerPairDim > 0) || !(csrNsPerNonZeroDim > 0) || Double.isInfinite(fusedNsPerPairDim) || Double.isInfinite(csrNsPerNonZeroDim)) {
                throw new IllegalArgumentException("cost constants must be positive and finite, got fused " + fusedNsPerPairDim + ", csr " + csrNsPerNonZeroDim);
            }
        }

        /**
         * The constants this JVM plans with, decided at first use and kept: {@value #FUSED_PROPERTY}
         * and {@value #CSR_PROPERTY} when set (reproducible plans); else both measured on
         * {@link Backend#best()} within 0.4 s if the timings settle (they do once the JIT has compiled
         * the kernels, e.g. after other attention calls); else {@link #REFERENCE}.
         */
        public static CostModel measured() { return Calibration.model(); }

        /**
         * The reference machine's constants (2-core Intel Xeon, AVX-512, JDK 25, warm JIT, 2026-11-24):
         * fused dense n = 4096, H = 8, D = 64 in 154 ms on 2 threads → 0.018 ns per (pair · dim · head);
         * the CSR path on a ±64 window, n = 2048, then on one thread → 0.37 ns per (non-zero · dim · head).
         */
        public static final CostModel REFERENCE = new CostModel(0.018, 0.37);

        /**
         * Measures both constants on {@link Backend#best()} now, within {@code budget}: empty when the
         * timings have not settled (a cold JIT), so that a caller never plans with a warm-up artefact.
         */
        public static java.util.Optional<CostModel> measure(java.time.Duration budget) {
            if (budget == null) throw new NullPointerException("budget");
            if (budget.isNegative() || budget.isZero()) throw new IllegalArgumentException("budget must be positive, got " + budget);
            return Calibration.measure(budget);
        }
    }

    public enum Path { FUSED_BLOCK_SPARSE, EXPLICIT_CSR }

    /** One costed candidate. */
    public record Candidate(Path path, int blockQ, int blockKV, double estimatedMs) {}

    /**
     * The decision, its candidates, and an operator that runs it for inputs of the planned lengths.
     * Immutable; {@link #on} and {@link #withScale} return new plans with the same decision.
     */
    public static final class Plan implements AttentionOperator.Scaled, AttentionOperator.WithLse {
        private final Pattern pattern;
        private final int qLen, kvLen;
        private final Candidate chosen;
        private final List<Candidate> candidates;
        private final Backend backend;   // null: Backend.best()
        private final float scale;       // NaN: 1/√D
        private final CsrMatrix csr;     // the pattern's entries when the CSR path is chosen, else null
        private final Attention fused;   // the fused kernel at the chosen block sizes (its layout cache shared by on/withScale), else null

        private Plan(Pattern pattern, int qLen, int kvLen, Candidate chosen, List<Candidate> candidates, Backend backend, float scale, CsrMatrix csr, Attention fused) {
            this.pattern = pattern;
            this.qLen = qLen;
            this.kvLen = kvLen;
            this.chosen = chosen;
            this.candidates = candidates;
            this.backend = backend;
            this.scale = scale;
            this.csr = csr;
            this.fused = fused;
        }

        public Pattern pattern() { return pattern; }
        public int qLen() { return qLen; }
        public int kvLen() { return kvLen; }
        public Candidate chosen() { return chosen; }
        public List<Candidate> candidates() { return candidates; }
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

        @Override
        public Plan on(Backend backend) {
            if (backend == null) throw new NullPointerException("backend");
            return new Plan(pattern, qLen, kvLen, chosen, candidates, backend, scale, csr, fused);
        }

        @Override
        public Plan withScale(float scale) {
            if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
            return new Plan(pattern, qLen, kvLen, chosen, candidates, backend, scale, csr, fused);
        }

        /** Runs the chosen path: q [B,H,Nq,D], k/v [B,Hkv,Nkv,·], out [B,H,Nq,Dv], with the planned Nq and Nkv. */
        @Override
        public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
            run(q, k, v, out, null);
        }

        @Override
        public void forwardWithLse(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
            if (lse == null) throw new NullPointerException("lse");
            run(q, k, v, out, lse);
        }

        private void run(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
            AttentionShape s = AttentionShape.of(q, k, v);
            if (s.qLen() != qLen || s.kvLen() != kvLen) {
                throw new IllegalArgumentException("this plan is for qLen=" + qLen + ", kvLen=" + kvLen + "; the call has qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
            }
            Backend be = backend != null ? backend : Backend.best();
            if (chosen.path() == Path.EXPLICIT_CSR) {
                SparseAttention attention = SparseAttention.of(csr).on(be);
                attention = Float.isNaN(scale) ? attention : attention.withScale(scale);
                if (lse == null) attention.forward(q, k, v, out); else attention.forwardWithLse(q, k, v, out, lse);
            } else {
                Attention attention = fused.on(be);
                attention = Float.isNaN(scale) ? attention : attention.withScale(scale);
                if (lse == null) attention.forward(q, k, v, out); else attention.forwardWithLse(q, k, v, out, lse);
            }
        }

        @Override
        public String toString() { return explain(); }
    }

    private static final int[][] BLOCK_CANDIDATES = {{64, 64}, {32, 32}, {64, 32}, {32, 64}};

    /** The plan under this machine's {@link CostModel#measured() measured} cost model. */
    public static Plan plan(Pattern pattern, int heads, int qLen, int kvLen, int headDim) {
        return plan(pattern, heads, qLen, kvLen, headDim, CostModel.measured());
    }

    public static Plan plan(Pattern pattern, int heads, int qLen, int kvLen, int headDim, CostModel model) {
        if (pattern == null) throw new NullPointerException("pattern");
        if (model == null) throw new NullPointerException("model");
        if (heads < 1) throw new IllegalArgumentException("heads must be >= 1, got " + heads);
        if (qLen < 1) throw new IllegalArgumentException("qLen must be >= 1, got " + qLen);
        if (kvLen < 1) throw new IllegalArgumentException("kvLen must be >= 1, got " + kvLen);
        if (headDim < 1) throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        List<Candidate> candidates = new ArrayList<>();
        BlockLayout first = null;
        for (int[] blocks : BLOCK_CANDIDATES) {
            BlockLayout layout = pattern.compile(qLen, kvLen, blocks[0], blocks[1]);
            if (first == null) first = layout;
            double ns = heads * (layout.computedPairs() * (double) headDim * model.fusedNsPerPairDim());
            candidates.add(new Candidate(Path.FUSED_BLOCK_SPARSE, blocks[0], blocks[1], ns / 1e6));
        }
        candidates.add(new Candidate(Path.EXPLICIT_CSR, 0, 0, heads * first.allowedPairs() * (double) headDim * model.csrNsPerNonZeroDim() / 1e6));
        Candidate best = candidates.get(0);
        for (Candidate c : candidates) if (c.estimatedMs() < best.estimatedMs()) best = c;
        // Any block size gives the same CSR: the entries are the pattern's allowed pairs.
        CsrMatrix csr = best.path() == Path.EXPLICIT_CSR ? CsrMatrix.fromLayout(first) : null;
        Attention fused = best.path() == Path.FUSED_BLOCK_SPARSE ? Attention.sparse(pattern).withBlockSizes(best.blockQ(), best.blockKV()) : null;
        return new Plan(pattern, qLen, kvLen, best, List.copyOf(candidates), null, Float.NaN, csr, fused);
    }
}
