package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.layout.BlockLayout;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.MaskFunction;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.content.InducedSparsity;
import io.tessera.variant.content.LshAttention;
import io.tessera.variant.content.RoutingAttention;
import io.tessera.variant.content.RoutingCentroids;
import java.lang.foreign.Arena;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Content-based sparsity (LSH and routing attention) against the float64 oracle: the output is the
 * oracle's under the exported induced element mask, one bucket/cluster is dense attention, results
 * are deterministic and invariant to a permutation of the batch, per-head and grouped-query heads.
 */
class ContentSparsityProperties {

    /** An LSH configuration: bucket factors (one: plain buckets), rounds, chunk length, seed, causal, self rule. */
    record Lsh(int[] factors, int hashes, int chunk, long seed, boolean causal, boolean excludeSelf) {
        @Override
        public String toString() { return op().toString(); }

        LshAttention op() {
            LshAttention a = factors.length == 1 ? LshAttention.of(factors[0], hashes, chunk, seed) : LshAttention.factorized(hashes, chunk, seed, factors);
            if (causal) a = a.causal();
            return excludeSelf ? a.excludingSelf() : a;
        }
    }

    @Provide
    Arbitrary<Lsh> lshConfigs() {
        return Combinators.combine(Arbitraries.of(new int[] {1}, new int[] {2}, new int[] {4}, new int[] {8}, new int[] {2, 2}, new int[] {4, 2}, new int[] {2, 1, 4}),
                Arbitraries.integers().between(1, 3), Arbitraries.integers().between(1, 9),
                Arbitraries.longs(), Arbitraries.of(true, false), Arbitraries.of(true, false)).as(Lsh::new);
    }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(24, 24, 9); }

    @Provide
    Arbitrary<Backend> backends() { return Arbitraries.of(Backend.available()); }

    /** The case with kvLen = qLen (self-attention, as LSH needs). */
    static AttentionCase selfAttention(AttentionCase c) {
        return new AttentionCase(c.batch(), c.heads(), c.kvHeads(), c.qLen(), c.qLen(), c.headDim(), c.valueDim(), c.seed());
    }

    /** Output and LSE within Tolerance.exact of the float64 oracle under {@code mask}. */
    static void assertMatchesOracle(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, MaskFunction mask, String what) {
        DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, Double.NaN);
        Tolerance tol = Tolerance.exact(q, k, v, mask, Double.NaN, oracle);
        assertThat(Tolerance.maxError(out, oracle.output())).as("%s output", what).isLessThanOrEqualTo(tol.output());
        assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("%s LSE", what).isLessThanOrEqualTo(tol.logSumExp());
    }

    static Tensor[] outputs(Arena arena, AttentionCase c) {
        return new Tensor[] {Tensor.zeros(arena, c.batch(), c.heads(), c.qLen(), c.valueDim()), Tensor.zeros(arena, c.batch(), c.heads(), c.qLen())};
    }

    // ---------------------------------------------------------------- the induced mask contract

    @Property(tries = 120)
    void lshEqualsTheOracleUnderItsInducedMask(@ForAll("cases") AttentionCase c0, @ForAll("lshConfigs") Lsh config, @ForAll("backends") Backend backend) {
        AttentionCase c = selfAttention(c0);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = outputs(arena, c)[0], lse = outputs(arena, c)[1];
            out.fill(Float.NaN);
            LshAttention op = config.op().on(backend);
            op.forwardWithLse(q, k, v, out, lse);
            InducedSparsity seen = op.induce(q, k);
            assertMatchesOracle(q, k, v, out, lse, seen, config + " on " + backend.name());
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) {
                // Grouped query heads share their key head's hashing; the self rule leaves every query some key.
                int first = h / (c.heads() / c.kvHeads()) * (c.heads() / c.kvHeads());
                for (int i = 0; i < c.qLen(); i++) {
                    boolean any = false;
                    for (int j = 0; j < c.kvLen(); j++) {
                        assertThat(seen.allowed(b, h, i, j)).isEqualTo(seen.allowed(b, first, i, j));
                        any |= seen.allowed(b, h, i, j);
                    }
                    assertThat(any).as("query %d sees some key", i).isTrue();
                }
            }
        }
    }

    /**
     * With one round the induced mask is the definition read off the exported sorted order: same or
     * previous chunk (cyclically), causal in original positions, self only when alone.
     */
    @Property(tries = 80)
    void oneRoundMaskIsChunkAdjacencyInTheSortedOrder(@ForAll("cases") AttentionCase c0, @ForAll("lshConfigs") Lsh config0) {
        AttentionCase c = selfAttention(c0);
        Lsh config = new Lsh(config0.factors(), 1, config0.chunk(), config0.seed(), config0.causal(), config0.excludeSelf());
        try (Arena arena = Arena.ofShared()) {
            InducedSparsity seen = config.op().induce(c.q(arena), c.k(arena));
            int n = c.qLen(), chunks = (n + config.chunk() - 1) / config.chunk();
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) {
                int[] order = seen.querySlots(b, h);
                assertThat(seen.keySlots(b, h)).isEqualTo(order);
                int[] position = new int[n];
                Arrays.fill(position, -1);
                for (int p = 0; p < n; p++) position[order[p]] = p;
                for (int t = 0; t < n; t++) assertThat(position[t]).as("the sorted order is a permutation").isNotNegative();
                boolean[][] base = new boolean[n][n];
                for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) {
                    int ci = position[i] / config.chunk(), cj = position[j] / config.chunk();
                    base[i][j] = (cj == ci || cj == (ci + chunks - 1) % chunks) && (!config.causal() || j <= i);
                }
                for (int i = 0; i < n; i++) {
                    boolean other = false;
                    for (int j = 0; j < n; j++) other |= j != i && base[i][j];
                    for (int j = 0; j < n; j++) {
                        boolean expected = base[i][j] && (j != i || !config.excludeSelf() || !other);
                        assertThat(seen.allowed(b, h, i, j)).as("(%d, %d) of %s", i, j, config).isEqualTo(expected);
                    }
                }
            }
        }
    }

    /**
     * The hash is angular: scaling every key by a power of two (exact in fp32) changes no bucket, while
     * the induced masks of different seeds differ for some input (the rotations matter).
     */
    @Property(tries = 40)
    void hashingDependsOnKeyDirectionsOnly(@ForAll("cases") AttentionCase c0, @ForAll("lshConfigs") Lsh config, @ForAll @IntRange(min = -3, max = 3) int log2) {
        AttentionCase c = selfAttention(c0);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), scaled = Tensor.zeros(arena, k.shape());
            float[] values = k.toArray();
            for (int i = 0; i < values.length; i++) values[i] = Math.scalb(values[i], log2);
            scaled.copyFrom(Tensor.of(arena, values, k.shape()));
            InducedSparsity a = config.op().induce(q, k), b = config.op().induce(q, scaled);
            for (int x = 0; x < c.batch(); x++) for (int h = 0; h < c.heads(); h++) assertThat(b.querySlots(x, h)).isEqualTo(a.querySlots(x, h));
        }
    }

    @Example
    void differentSeedsSortDifferently() {
        try (Arena arena = Arena.ofShared()) {
            Tensor k = Tensor.randomNormal(arena, 5, 1f, 1, 1, 64, 8);
            int[] a = LshAttention.of(16, 1, 8, 1).induce(k, k).querySlots(0, 0), b = LshAttention.of(16, 1, 8, 2).induce(k, k).querySlots(0, 0);
            assertThat(b).isNotEqualTo(a);
            int[] f = LshAttention.factorized(1, 8, 1, 4, 4).induce(k, k).querySlots(0, 0);
            assertThat(f).isNotEqualTo(a);
        }
    }

    /** Causal alignment of a routing property: null (not causal), top-left or bottom-right. */
    @Provide
    Arbitrary<CausalAlignment> alignments() { return Arbitraries.of(CausalAlignment.TOP_LEFT, CausalAlignment.BOTTOM_RIGHT).injectNull(0.34); }

    @Property(tries = 100)
    void routingEqualsTheOracleUnderItsInducedMask(@ForAll("cases") AttentionCase c, @ForAll @IntRange(min = 1, max = 6) int clusters,
                                                  @ForAll("alignments") CausalAlignment causal, @ForAll long seed, @ForAll("backends") Backend backend) {
        boolean isCausal = causal != null;
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = outputs(arena, c)[0], lse = outputs(arena, c)[1];
            out.fill(Float.NaN);
            RoutingAttention op = RoutingAttention.of(RoutingCentroids.random(c.heads(), clusters, c.headDim(), seed)).on(backend);
            if (isCausal) op = op.causal(causal);
            op.forwardWithLse(q, k, v, out, lse);
            InducedSparsity seen = op.induce(q, k);
            assertMatchesOracle(q, k, v, out, lse, seen, "routing(" + clusters + (isCausal ? ", causal " + causal : "") + ") on " + backend.name());
            // Balanced clusters: each takes ⌈n/C⌉ distinct members, listed in position order.
            int perQ = (c.qLen() + clusters - 1) / clusters, perK = (c.kvLen() + clusters - 1) / clusters;
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) {
                int[] qs = seen.querySlots(b, h), ks = seen.keySlots(b, h);
                assertThat(qs).hasSize(clusters * perQ);
                assertThat(ks).hasSize(clusters * perK);
                for (int s = 1; s < qs.length; s++) if (s % perQ != 0) assertThat(qs[s]).isGreaterThan(qs[s - 1]);
                for (int t = 1; t < ks.length; t++) if (t % perK != 0) assertThat(ks[t]).isGreaterThan(ks[t - 1]);
                // The induced mask is "shares a cluster", causal if asked.
                for (int i = 0; i < c.qLen(); i++) for (int j = 0; j < c.kvLen(); j++) {
                    boolean shared = false;
                    for (int cl = 0; cl < clusters && !shared; cl++) {
                        boolean qi = false, kj = false;
                        for (int s = cl * perQ; s < (cl + 1) * perQ; s++) qi |= qs[s] == i;
                        for (int t = cl * perK; t < (cl + 1) * perK; t++) kj |= ks[t] == j;
                        shared = qi && kj;
                    }
                    assertThat(seen.allowed(b, h, i, j)).as("(%d, %d)", i, j).isEqualTo(shared && (!isCausal || causal.allows(i, j, c.qLen(), c.kvLen())));
                }
            }
        }
    }

    // ---------------------------------------------------------------- LSH cross-attention

    /**
     * Cross-attention (separate query and key sets, any lengths, grouped heads): output, LSE and
     * gradients equal the float64 oracle under the exported induced mask.
     */
    @Property(tries = 80)
    void lshCrossAttentionEqualsTheOracleUnderItsInducedMask(@ForAll("cases") AttentionCase c, @ForAll("lshConfigs") Lsh config0, @ForAll("backends") Backend backend) {
        Lsh config = new Lsh(config0.factors(), config0.hashes(), config0.chunk(), config0.seed(), config0.causal(), false);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = outputs(arena, c)[0], lse = outputs(arena, c)[1];
            out.fill(Float.NaN);
            LshAttention op = config.op().crossAttention().on(backend);
            op.forwardWithLse(q, k, v, out, lse);
            InducedSparsity seen = op.induce(q, k);
            String what = op + " on " + backend.name();
            assertMatchesOracle(q, k, v, out, lse, seen, what);
            assertThat(seen.querySlots(0, 0)).hasSize(config.hashes() * c.qLen());
            assertThat(seen.keySlots(0, 0)).hasSize(config.hashes() * c.kvLen());
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
            io.tessera.attention.AttentionGradients g = op.backward(arena, q, k, v, out, lse, dOut);
            DenseReference.Gradients oracle = DenseReference.gradients(q, k, v, dOut, seen, Double.NaN);
            DenseReference.Gradients naive = DenseReference.naiveFloat32Gradients(q, k, v, dOut, seen, Double.NaN);
            assertThat(Tolerance.maxError(g.dq(), oracle.dq())).as("dq of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dq(), oracle.dq()));
            assertThat(Tolerance.maxError(g.dk(), oracle.dk())).as("dk of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dk(), oracle.dk()));
            assertThat(Tolerance.maxError(g.dv(), oracle.dv())).as("dv of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dv(), oracle.dv()));
        }
    }

    /**
     * The cross-attention rule read off its definition: with one bucket the merged order is by
     * position, a key before the query at its position (key j at merged index j + min(j, qLen), query
     * i at min(i + 1, kvLen) + i), and a query attends the keys of its merged chunk and the previous
     * one (cyclically), causal top-left if asked.
     */
    @Property(tries = 60)
    void lshCrossAttentionIsChunkAdjacencyInTheMergedOrder(@ForAll("cases") AttentionCase c, @ForAll @IntRange(min = 1, max = 9) int chunk,
                                                          @ForAll @IntRange(min = 1, max = 3) int hashes, @ForAll boolean causal, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            LshAttention op = LshAttention.of(1, hashes, chunk, seed).crossAttention();
            if (causal) op = op.causal();
            InducedSparsity seen = op.induce(c.q(arena), c.k(arena));
            int qLen = c.qLen(), kvLen = c.kvLen(), chunks = (qLen + kvLen + chunk - 1) / chunk;
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) for (int i = 0; i < qLen; i++) for (int j = 0; j < kvLen; j++) {
                int qc = (Math.min(i + 1, kvLen) + i) / chunk, kc = (j + Math.min(j, qLen)) / chunk;
                boolean expected = (kc == qc || kc == (qc + chunks - 1) % chunks) && (!causal || j <= i);
                assertThat(seen.allowed(b, h, i, j)).as("(%d, %d) of %s, qLen=%d kvLen=%d", i, j, op, qLen, kvLen).isEqualTo(expected);
            }
        }
    }

    /** One chunk covering the merged sequence is dense (or causal top-left) attention, whatever the buckets. */
    @Property(tries = 40)
    void lshCrossAttentionWithOneChunkIsDenseAttention(@ForAll("cases") AttentionCase c, @ForAll("lshConfigs") Lsh config, @ForAll @IntRange(min = 0, max = 5) int extraChunk) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = outputs(arena, c)[0], lse = outputs(arena, c)[1];
            LshAttention op = new Lsh(config.factors(), config.hashes(), c.qLen() + c.kvLen() + extraChunk, config.seed(), config.causal(), false).op().crossAttention();
            op.forwardWithLse(q, k, v, out, lse);
            assertMatchesOracle(q, k, v, out, lse, config.causal() ? MaskFunction.causal(CausalAlignment.TOP_LEFT, c.qLen(), c.kvLen()) : MaskFunction.all(), op.toString());
        }
    }

    // ---------------------------------------------------------------- one bucket / cluster is dense

    @Property(tries = 40)
    void oneBucketCoveringTheSequenceIsDenseAttention(@ForAll("cases") AttentionCase c0, @ForAll @IntRange(min = 1, max = 3) int hashes,
                                                     @ForAll boolean causal, @ForAll @IntRange(min = 0, max = 5) int extraChunk, @ForAll long seed) {
        AttentionCase c = selfAttention(c0);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = outputs(arena, c)[0], lse = outputs(arena, c)[1];
            LshAttention op = LshAttention.of(1, hashes, c.qLen() + extraChunk, seed);
            if (causal) op = op.causal();
            op.forwardWithLse(q, k, v, out, lse);
            assertMatchesOracle(q, k, v, out, lse, causal ? MaskFunction.causal(CausalAlignment.TOP_LEFT, c.qLen(), c.kvLen()) : MaskFunction.all(), "one bucket");
        }
    }

    /**
     * One cluster is dense attention, and causal routing with qLen ≠ kvLen is causal attention with the
     * pattern compiler's positions: the float64 oracle under {@code MaskFunction.causal(alignment, ·)}
     * (bottom-right with qLen > kvLen: the first queries see no key, output 0 and LSE −∞), and the
     * gradients likewise.
     */
    @Property(tries = 60)
    void oneClusterIsDenseAttention(@ForAll("cases") AttentionCase c, @ForAll("alignments") CausalAlignment causal, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = outputs(arena, c)[0], lse = outputs(arena, c)[1];
            out.fill(Float.NaN);
            RoutingAttention op = RoutingAttention.of(RoutingCentroids.random(c.heads(), 1, c.headDim(), seed));
            if (causal != null) op = op.causal(causal);
            op.forwardWithLse(q, k, v, out, lse);
            MaskFunction mask = causal != null ? MaskFunction.causal(causal, c.qLen(), c.kvLen()) : MaskFunction.all();
            assertMatchesOracle(q, k, v, out, lse, mask, "one cluster" + (causal != null ? ", causal " + causal : ""));
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 5, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
            io.tessera.attention.AttentionGradients g = op.backward(arena, q, k, v, out, lse, dOut);
            DenseReference.Gradients oracle = DenseReference.gradients(q, k, v, dOut, mask, Double.NaN);
            DenseReference.Gradients naive = DenseReference.naiveFloat32Gradients(q, k, v, dOut, mask, Double.NaN);
            assertThat(Tolerance.maxError(g.dq(), oracle.dq())).as("dq").isLessThanOrEqualTo(Tolerance.gradient(naive.dq(), oracle.dq()));
            assertThat(Tolerance.maxError(g.dk(), oracle.dk())).as("dk").isLessThanOrEqualTo(Tolerance.gradient(naive.dk(), oracle.dk()));
            assertThat(Tolerance.maxError(g.dv(), oracle.dv())).as("dv").isLessThanOrEqualTo(Tolerance.gradient(naive.dv(), oracle.dv()));
        }
    }

    // ---------------------------------------------------------------- determinism, batch order, locality

    static AttentionOperator operator(boolean lsh, Lsh config, AttentionCase c, int clusters) {
        return lsh ? config.op() : RoutingAttention.of(RoutingCentroids.random(c.heads(), clusters, c.headDim(), config.seed()));
    }

    @Property(tries = 40)
    void deterministicGivenSeedsForAnyThreadCount(@ForAll("cases") AttentionCase c0, @ForAll("lshConfigs") Lsh config, @ForAll boolean lsh,
                                                  @ForAll @IntRange(min = 1, max = 5) int clusters) {
        AttentionCase c = selfAttention(c0);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            for (Backend backend : Backend.available()) {
                Tensor one = operator(lsh, config, c, clusters).on(backend.withThreads(1)).forward(arena, q, k, v);
                Tensor two = operator(lsh, config, c, clusters).on(backend.withThreads(3)).forward(arena, q, k, v);
                assertThat(two.toArray()).as("%s on %s", lsh ? config : "routing", backend.name()).isEqualTo(one.toArray());
            }
        }
    }

    @Property(tries = 40)
    void invariantToAPermutationOfTheBatch(@ForAll("cases") AttentionCase c0, @ForAll("lshConfigs") Lsh config, @ForAll boolean lsh,
                                           @ForAll @IntRange(min = 1, max = 5) int clusters) {
        AttentionCase c = selfAttention(new AttentionCase(2, c0.heads(), c0.kvHeads(), c0.qLen(), c0.kvLen(), c0.headDim(), c0.valueDim(), c0.seed()));
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            AttentionOperator op = operator(lsh, config, c, clusters);
            float[] out = op.forward(arena, q, k, v).toArray();
            float[] swapped = op.forward(arena, swapBatch(arena, q), swapBatch(arena, k), swapBatch(arena, v)).toArray();
            int half = out.length / 2;
            assertThat(Arrays.copyOfRange(swapped, 0, half)).isEqualTo(Arrays.copyOfRange(out, half, out.length));
            assertThat(Arrays.copyOfRange(swapped, half, out.length)).isEqualTo(Arrays.copyOfRange(out, 0, half));
        }
    }

    private static Tensor swapBatch(Arena arena, Tensor t) {
        Tensor s = Tensor.zeros(arena, t.shape());
        s.select(0, 0).copyFrom(t.select(0, 1));
        s.select(0, 1).copyFrom(t.select(0, 0));
        return s;
    }

    /** NaN in the values of keys a query did not see never reaches its output (the mask depends on q and k only). */
    @Property(tries = 40)
    void unseenValuesNeverReachAQuery(@ForAll("cases") AttentionCase c0, @ForAll("lshConfigs") Lsh config, @ForAll boolean lsh,
                                      @ForAll @IntRange(min = 1, max = 5) int clusters, @ForAll @IntRange(min = 0, max = 23) int query) {
        AttentionCase c = selfAttention(c0);
        int i = query % c.qLen();
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            AttentionOperator op = operator(lsh, config, c, clusters);
            InducedSparsity seen = lsh ? ((LshAttention) op).induce(q, k) : ((RoutingAttention) op).induce(q, k);
            float[] clean = op.forward(arena, q, k, v).toArray();
            int g = c.heads() / c.kvHeads();
            for (int b = 0; b < c.batch(); b++) for (int hk = 0; hk < c.kvHeads(); hk++) for (int j = 0; j < c.kvLen(); j++) {
                boolean seenByAny = false;
                for (int h = hk * g; h < (hk + 1) * g; h++) seenByAny |= seen.allowed(b, h, i, j);
                if (!seenByAny) for (int x = 0; x < c.valueDim(); x++) v.set(Float.NaN, b, hk, j, x);
            }
            float[] poisoned = op.forward(arena, q, k, v).toArray();
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) for (int x = 0; x < c.valueDim(); x++) {
                int at = ((b * c.heads() + h) * c.qLen() + i) * c.valueDim() + x;
                assertThat(poisoned[at]).isEqualTo(clean[at]);
            }
        }
    }

    // ---------------------------------------------------------------- gradients

    /** dq, dk, dv equal the float64 gradients of attention under the induced mask (multi-round, multi-cluster, GQA, causal). */
    @Property(tries = 60)
    void gradientsEqualTheOracleUnderTheInducedMask(@ForAll("cases") AttentionCase c0, @ForAll("lshConfigs") Lsh config, @ForAll boolean lsh,
                                                   @ForAll @IntRange(min = 1, max = 5) int clusters, @ForAll("backends") Backend backend) {
        AttentionCase c = selfAttention(c0);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = outputs(arena, c)[0], lse = outputs(arena, c)[1];
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
            io.tessera.attention.AttentionGradients g;
            InducedSparsity seen;
            if (lsh) {
                LshAttention op = config.op().on(backend);
                op.forwardWithLse(q, k, v, out, lse);
                g = op.backward(arena, q, k, v, out, lse, dOut);
                seen = op.induce(q, k);
            } else {
                RoutingAttention op = RoutingAttention.of(RoutingCentroids.random(c.heads(), clusters, c.headDim(), config.seed())).on(backend);
                if (config.causal()) op = op.causal();
                op.forwardWithLse(q, k, v, out, lse);
                g = op.backward(arena, q, k, v, out, lse, dOut);
                seen = op.induce(q, k);
            }
            DenseReference.Gradients oracle = DenseReference.gradients(q, k, v, dOut, seen, Double.NaN);
            DenseReference.Gradients naive = DenseReference.naiveFloat32Gradients(q, k, v, dOut, seen, Double.NaN);
            String what = (lsh ? config.toString() : "routing(" + clusters + ")") + " on " + backend.name();
            assertThat(Tolerance.maxError(g.dq(), oracle.dq())).as("dq of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dq(), oracle.dq()));
            assertThat(Tolerance.maxError(g.dk(), oracle.dk())).as("dk of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dk(), oracle.dk()));
            assertThat(Tolerance.maxError(g.dv(), oracle.dv())).as("dv of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dv(), oracle.dv()));
        }
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Half-precision storage: q, k, v and dOut in BF16 or F16, out and lse F32 (as the fused
     * backward's contract is stated), dq, dk, dv in F32 or that type. Against the float64 gradients
     * under the mask induced from the same rounded q and k, the rule above, plus one rounding of each
     * gradient stored in a half type ({@code Tolerance.stored}).
     */
    @Property(tries = 30)
    void halfPrecisionGradientsEqualTheOracleOnRoundedInputs(@ForAll("cases") AttentionCase c0, @ForAll("lshConfigs") Lsh config, @ForAll boolean lsh,
                                                             @ForAll @IntRange(min = 1, max = 5) int clusters, @ForAll("backends") Backend backend,
                                                             @ForAll("halfTypes") ElementType type, @ForAll boolean halfGradients) {
        AttentionCase c = selfAttention(c0);
        ElementType gradientType = halfGradients ? type : ElementType.F32;
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena).to(arena, type), k = c.k(arena).to(arena, type), v = c.v(arena).to(arena, type);
            Tensor out = outputs(arena, c)[0], lse = outputs(arena, c)[1];
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim()).to(arena, type);
            Tensor dq = GradientOracles.gradient(arena, q, gradientType), dk = GradientOracles.gradient(arena, k, gradientType), dv = GradientOracles.gradient(arena, v, gradientType);
            InducedSparsity seen;
            if (lsh) {
                LshAttention op = config.op().on(backend);
                op.forwardWithLse(q, k, v, out, lse);
                op.backward(q, k, v, out, lse, dOut, dq, dk, dv);
                seen = op.induce(q.to(arena, ElementType.F32), k.to(arena, ElementType.F32));
            } else {
                RoutingAttention op = RoutingAttention.of(RoutingCentroids.random(c.heads(), clusters, c.headDim(), config.seed())).on(backend);
                if (config.causal()) op = op.causal();
                op.forwardWithLse(q, k, v, out, lse);
                op.backward(q, k, v, out, lse, dOut, dq, dk, dv);
                seen = op.induce(q.to(arena, ElementType.F32), k.to(arena, ElementType.F32));
            }
            DenseReference.Gradients oracle = DenseReference.gradients(q, k, v, dOut, seen, Double.NaN);
            DenseReference.Gradients naive = DenseReference.naiveFloat32Gradients(q, k, v, dOut, seen, Double.NaN);
            String what = (lsh ? config.toString() : "routing(" + clusters + ")") + " on " + backend.name() + " in " + type;
            GradientOracles.assertStoredWithin("dq of " + what, dq, oracle.dq(), Tolerance.gradient(naive.dq(), oracle.dq()));
            GradientOracles.assertStoredWithin("dk of " + what, dk, oracle.dk(), Tolerance.gradient(naive.dk(), oracle.dk()));
            GradientOracles.assertStoredWithin("dv of " + what, dv, oracle.dv(), Tolerance.gradient(naive.dv(), oracle.dv()));
        }
    }

    // ---------------------------------------------------------------- centroids, printing, bad inputs

    @Example
    void centroidUpdateMovesTowardsTheClusterMeanAndRoundTrips() {
        try (Arena arena = Arena.ofShared()) {
            // Keys and queries all along +e0: the centroid nearest e0 moves to it; the others have no member and stay.
            Tensor x = Tensor.zeros(arena, 1, 1, 6, 3);
            for (int i = 0; i < 6; i++) x.set(1f + i, 0, 0, i, 0);
            RoutingCentroids c = RoutingCentroids.of(new float[] {1, 1, 0, -1, 0, 0, 0, 0, 1}, 1, 3, 3);
            c.update(x, x, 0.5);
            float[] after = c.toArray();
            // normalize(0.5·(1, 1, 0)/√2 + 0.5·(1, 0, 0)) = (0.92388, 0.38268, 0)
            assertThat((double) after[0]).isCloseTo(0.9238795, org.assertj.core.data.Offset.offset(1e-6));
            assertThat((double) after[1]).isCloseTo(0.3826834, org.assertj.core.data.Offset.offset(1e-6));
            assertThat(after[2]).isZero();
            assertThat(Arrays.copyOfRange(after, 3, 9)).containsExactly(-1, 0, 0, 0, 0, 1);
            RoutingCentroids restored = RoutingCentroids.of(after, 1, 3, 3);
            assertThat(restored.toArray()).isEqualTo(after);
            Tensor q = Tensor.randomNormal(arena, 5, 1f, 1, 1, 6, 3);
            assertThat(RoutingAttention.of(restored).forward(arena, q, q, q).toArray()).isEqualTo(RoutingAttention.of(c).forward(arena, q, q, q).toArray());
        }
    }

    @Example
    void inducedLayoutsPrint() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 3, 1f, 1, 2, 40, 8);
            InducedSparsity seen = LshAttention.of(4, 2, 8, 7).causal().induce(q, q);
            BlockLayout layout = seen.layout(0, 1);
            assertThat(layout.qLen()).isEqualTo(80);
            assertThat(layout.toString()).startsWith("BlockLayout[lsh(buckets=4, rounds=2, chunk=8, causal)");
            String picture = seen.drawElementMask(0, 1);
            assertThat(picture.lines().count()).isEqualTo(41);
            assertThat(picture.lines().skip(1).allMatch(line -> line.length() == 40)).isTrue();
            assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 7).induce(Tensor.zeros(arena, 1, 1, 300, 2), Tensor.zeros(arena, 1, 1, 300, 2)).drawElementMask(0, 0))
                    .hasMessageContaining("drawElementMask draws at most 256x256 pairs, got qLen=300");
            assertThat(RoutingAttention.of(RoutingCentroids.random(2, 4, 8, 1)).induce(q, q).layout(0, 0).toString()).contains("routing(clusters=4");
            // The picture is the induced mask, pair by pair (un-permuted), for every kind of plan.
            Tensor k = Tensor.randomNormal(arena, 4, 1f, 1, 1, 30, 8), q1 = q.slice(1, 0, 1);
            for (InducedSparsity s : new InducedSparsity[] {seen, LshAttention.of(4, 2, 8, 7).crossAttention().induce(q1, k),
                    RoutingAttention.of(RoutingCentroids.random(1, 3, 8, 2)).causal(CausalAlignment.BOTTOM_RIGHT).induce(q1, k)}) {
                int h = s.heads() - 1;
                java.util.List<String> rows = s.drawElementMask(0, h).lines().skip(1).toList();
                assertThat(rows).hasSize(s.qLen());
                for (int i = 0; i < s.qLen(); i++) for (int j = 0; j < s.kvLen(); j++) {
                    assertThat(rows.get(i).charAt(j)).as("%s (%d, %d)", s, i, j).isEqualTo(s.allowed(0, h, i, j) ? '█' : '·');
                }
                assertThat(s.layout(0, h).toString()).startsWith("BlockLayout[" + s.layout(0, h).description());
                assertThat(s.layout(0, h).allowedPairs()).as("the slot layout allows as many pairs as the induced mask").isEqualTo(s.allowedPairs(0, h));
            }
            assertThat(LshAttention.of(4, 2, 8, 7).crossAttention().induce(q1, k).layout(0, 0).toString())
                    .startsWith("BlockLayout[lsh cross-attention(buckets=4, rounds=2, chunk=8) over 2x40 query slots and 2x30 key slots");
        }
    }

    @Example
    void badInputsNameTheParameter() {
        assertThatThrownBy(() -> LshAttention.of(3, 1, 8, 0)).hasMessage("buckets must be 1 or even and >= 2, got 3");
        assertThatThrownBy(() -> LshAttention.of(0, 1, 8, 0)).hasMessage("buckets must be 1 or even and >= 2, got 0");
        assertThatThrownBy(() -> LshAttention.of(1 << 30, 1, 8, 0)).hasMessage("buckets must be <= 1048576, got 1073741824");
        assertThatThrownBy(() -> LshAttention.factorized(1, 8, 0, 4, 3)).hasMessage("bucketFactors[1] must be 1 or even and >= 2, got 3");
        assertThatThrownBy(() -> LshAttention.factorized(1, 8, 0)).hasMessage("bucketFactors must list at least one factor");
        assertThatThrownBy(() -> LshAttention.factorized(1, 8, 0, 1024, 1024, 2)).hasMessage("bucketFactors [1024, 1024, 2] make more than 1048576 buckets");
        assertThatThrownBy(() -> LshAttention.factorized(0, 8, 0, 2, 2)).hasMessage("hashes must be >= 1, got 0");
        assertThatThrownBy(() -> LshAttention.of(2, 0, 8, 0)).hasMessage("hashes must be >= 1, got 0");
        assertThatThrownBy(() -> LshAttention.of(2, 1, -1, 0)).hasMessage("chunkLength must be >= 1, got -1");
        assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 0).withScale(Float.NaN)).hasMessage("scale must be finite, got NaN");
        assertThatThrownBy(() -> RoutingCentroids.random(1, 0, 4, 0)).hasMessage("clusters must be >= 1, got 0");
        assertThatThrownBy(() -> RoutingCentroids.random(0, 2, 4, 0)).hasMessage("heads must be >= 1, got 0");
        assertThatThrownBy(() -> RoutingCentroids.random(1 << 20, 1 << 10, 1 << 10, 0)).hasMessageContaining("exceeds what a Java array holds");
        assertThatThrownBy(() -> RoutingCentroids.of(new float[5], 1, 2, 3)).hasMessage("values.length=5 must be heads·clusters·dim = 1·2·3 = 6");
        assertThatThrownBy(() -> RoutingCentroids.of(new float[6], 1, 2, 3)).hasMessageContaining("values row 0 has norm² 0.0");
        assertThatThrownBy(() -> RoutingAttention.of(null)).isInstanceOf(NullPointerException.class).hasMessage("centroids");
        RoutingCentroids centroids = RoutingCentroids.random(2, 2, 4, 0);
        assertThatThrownBy(() -> centroids.update(null, null, 0.5)).isInstanceOf(NullPointerException.class).hasMessage("q");
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.zeros(arena, 1, 2, 5, 4), k = Tensor.zeros(arena, 1, 2, 6, 4), out = Tensor.zeros(arena, 1, 2, 5, 4);
            assertThatThrownBy(() -> centroids.update(q, k, 1.0)).hasMessage("decay must be in [0, 1), got 1.0");
            assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 0).forward(q, k, k, out))
                    .hasMessage("LSH attention sorts shared query/key positions: qLen=5 must equal kvLen=6 (for separate query and key sets use crossAttention())");
            assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 0).crossAttention().excludingSelf()).hasMessageContaining("there is no self to exclude");
            assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 0).excludingSelf().crossAttention()).hasMessageContaining("there is no self to exclude");
            assertThatThrownBy(() -> RoutingAttention.of(centroids).causal(null)).isInstanceOf(NullPointerException.class).hasMessage("alignment");
            Tensor q3 = Tensor.zeros(arena, 1, 3, 5, 4), q8 = Tensor.zeros(arena, 1, 2, 5, 8);
            assertThatThrownBy(() -> RoutingAttention.of(centroids).induce(q3, Tensor.zeros(arena, 1, 3, 5, 4))).hasMessage("centroids have heads=2 but q has 3 heads");
            assertThatThrownBy(() -> RoutingAttention.of(centroids).induce(q8, Tensor.zeros(arena, 1, 2, 5, 8))).hasMessage("centroids have dim=4 but q and k have head dimension 8");
            assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 0).forward(q, q, q, q)).hasMessageContaining("out shares memory with q");
            assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 0).forwardWithLse(q, q, q, out, null)).isInstanceOf(NullPointerException.class).hasMessage("lse");
            assertThatThrownBy(() -> LshAttention.of(2, 1 << 20, 8, 0).forward(Tensor.zeros(arena, 1, 1, 4096, 1), Tensor.zeros(arena, 1, 1, 4096, 1), Tensor.zeros(arena, 1, 1, 4096, 1), Tensor.zeros(arena, 1, 1, 4096, 1)))
                    .hasMessageContaining("hashes·n slots = 1048576·4096 entries exceeds what a Java array holds");
            Tensor lse = Tensor.zeros(arena, 1, 2, 5), g = Tensor.zeros(arena, 1, 2, 5, 4), g2 = Tensor.zeros(arena, 1, 2, 5, 4);
            assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 0).backward(q, q, q, out, lse, out, g, g, g2)).hasMessageContaining("dq shares memory with dk");
            assertThatThrownBy(() -> LshAttention.of(2, 1, 8, 0).backward(q, q, q, out, null, out, g, g2, Tensor.zeros(arena, 1, 2, 5, 4)))
                    .isInstanceOf(NullPointerException.class).hasMessageContaining("lse");
            // A chunk longer than the sequence is one chunk: nothing overflows.
            assertThat(LshAttention.of(2, 2, Integer.MAX_VALUE, 0).induce(q, q).allowedPairs(0, 0)).isEqualTo(25);
            InducedSparsity seen = LshAttention.of(2, 1, 8, 0).induce(q, q);
            assertThatThrownBy(() -> seen.allowed(0, 2, 0, 0)).hasMessage("head h=2 outside [0, 2)");
            assertThatThrownBy(() -> seen.allowed(0, 0, 5, 0)).hasMessage("query i=5 outside [0, 5)");
        }
    }
}
