package io.tessera.proptest;

import static io.tessera.proptest.FusedAttentionProperties.mask;
import static io.tessera.proptest.FusedAttentionProperties.predicate;
import static io.tessera.proptest.FusedAttentionProperties.spec;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionGradients;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.layout.HeadLayouts;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.ScoreMod;
import io.tessera.proptest.FusedAttentionProperties.MaskKind;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Score modifiers (ALiBi, relative-position tables, soft-capping, additive biases, user functions,
 * and compositions) in the fused kernel: the float64 oracle's gradients against finite
 * differences, then every modifier × mask or pattern × backend, forward and backward (the bias
 * table's gradient included), against the oracle, thread-count bit identity, and the scalar/SIMD
 * twins float for float.
 */
class ScoreModProperties {

    /** The modifiers under test; compositions mix built-ins with each other and with functions. */
    enum ModKind {
        ALIBI, ALIBI_PRESET, T5_TABLE, CLIPPED_TABLE, SOFT_CAP, HEAD_BIAS, KEY_BIAS, FUNCTION,
        ALIBI_THEN_SOFT_CAP, TABLE_THEN_SOFT_CAP_THEN_KEY_BIAS, SOFT_CAP_THEN_TABLE, FUNCTION_THEN_TABLE_THEN_SOFT_CAP
    }

    /** The modifier of {@code kind} for case {@code c}, its tensors random from {@code seed}. */
    static ScoreMod mod(ModKind kind, Arena arena, AttentionCase c, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int heads = c.heads();
        float[] slopes = new float[heads];
        for (int h = 0; h < heads; h++) slopes[h] = (float) r.nextDouble(-0.6, 0.6);
        Tensor t5 = Tensor.randomNormal(arena, seed + 11, 1f, heads, 8);
        Tensor clipped = Tensor.randomNormal(arena, seed + 12, 1f, heads, 7);
        Tensor headBias = Tensor.randomNormal(arena, seed + 13, 2f, heads);
        Tensor keyBias = Tensor.randomNormal(arena, seed + 14, 1f, heads, c.kvLen());
        float cap = (float) r.nextDouble(0.5, 3);
        ScoreMod function = ScoreMod.of("wiggle", (b, h, i, j, s) -> s + 0.3 * Math.sin(s) + 0.05 * ((i + 2 * j + b + h) % 5),
                (b, h, i, j, s) -> 1 + 0.3 * Math.cos(s));
        ScoreMod t5Table = ScoreMod.relativeBias(t5, ScoreMod.t5Buckets(8, true, 20));
        ScoreMod clippedTable = ScoreMod.relativeBias(clipped, d -> Math.max(-3, Math.min(3, d)) + 3);
        return switch (kind) {
            case ALIBI -> ScoreMod.alibi(slopes);
            case ALIBI_PRESET -> ScoreMod.alibi(ScoreMod.alibiSlopes(heads));
            case T5_TABLE -> t5Table;
            case CLIPPED_TABLE -> clippedTable;
            case SOFT_CAP -> ScoreMod.softCap(cap);
            case HEAD_BIAS -> ScoreMod.bias(headBias);
            case KEY_BIAS -> ScoreMod.bias(keyBias);
            case FUNCTION -> function;
            case ALIBI_THEN_SOFT_CAP -> ScoreMod.alibi(slopes).then(ScoreMod.softCap(cap));
            case TABLE_THEN_SOFT_CAP_THEN_KEY_BIAS -> clippedTable.then(ScoreMod.softCap(cap)).then(ScoreMod.bias(keyBias));
            case SOFT_CAP_THEN_TABLE -> ScoreMod.softCap(cap).then(t5Table);
            case FUNCTION_THEN_TABLE_THEN_SOFT_CAP -> function.then(clippedTable).then(ScoreMod.softCap(cap));
        };
    }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(33, 33, 11); }

    @Provide
    Arbitrary<AttentionCase> smallCases() { return AttentionCase.cases(5, 5, 3); }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    /**
     * The oracle's modified gradients are the derivative of L = Σ dOut ∘ attention: central
     * differences in float64 for q, k and every entry of a learnable table.
     */
    @Property(tries = 30)
    void oracleGradientsAreTheDerivative(@ForAll("smallCases") AttentionCase c, @ForAll MaskKind kind, @ForAll ModKind modKind) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
            MaskFunction m = mask(predicate(kind, c.qLen(), c.kvLen(), c.seed()));
            ScoreMod mod = mod(modKind, arena, c, c.seed());
            double scale = 0.7;
            DenseReference.Gradients g = DenseReference.gradients(q, k, v, dOut, m, scale, mod);
            checkFiniteDifferences(q, g.dq(), q, k, v, dOut, m, scale, mod);
            checkFiniteDifferences(k, g.dk(), q, k, v, dOut, m, scale, mod);
            List<Tensor> params = mod.parameters();
            assertThat(g.dParameters()).hasSize(params.size());
            for (int p = 0; p < params.size(); p++) checkFiniteDifferences(params.get(p), g.dParameters().get(p), q, k, v, dOut, m, scale, mod);
        }
    }

    private static void checkFiniteDifferences(Tensor x, double[] analytic, Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction m, double scale, ScoreMod mod) {
        float[] values = x.toArray();
        for (int i = 0; i < values.length; i++) {
            long[] index = unravel(x.shape(), i);
            float original = values[i];
            float plus = original + 0x1p-8f, minus = original - 0x1p-8f;
            x.set(plus, index);
            double lossPlus = loss(DenseReference.attention(q, k, v, m, scale, mod), dOut);
            x.set(minus, index);
            double lossMinus = loss(DenseReference.attention(q, k, v, m, scale, mod), dOut);
            x.set(original, index);
            double numeric = (lossPlus - lossMinus) / ((double) plus - minus);
            assertThat(analytic[i]).as("gradient element %d", i).isCloseTo(numeric, org.assertj.core.data.Offset.offset(1e-3 * (1 + Math.abs(numeric))));
        }
    }

    private static double loss(DenseReference.Result r, Tensor dOut) {
        float[] g = dOut.toArray();
        double sum = 0;
        for (int i = 0; i < g.length; i++) sum += g[i] * r.output()[i];
        return sum;
    }

    private static long[] unravel(long[] shape, long flat) {
        long[] index = new long[shape.length];
        for (int d = shape.length - 1; d >= 0; d--) {
            index[d] = flat % shape[d];
            flat /= shape[d];
        }
        return index;
    }

    /** Queries past one lane group, for blocks of several groups (the SIMD kernel takes full tiles two groups at a time where the register file allows). */
    @Provide
    Arbitrary<AttentionCase> severalGroups() { return AttentionCase.cases(100, 80, 12).filter(c -> c.qLen() >= 33); }

    @Property(tries = 25)
    void blocksOfSeveralLaneGroupsMatchTheOracle(@ForAll("severalGroups") AttentionCase c, @ForAll MaskKind kind, @ForAll ModKind modKind,
                                                 @ForAll @IntRange(min = 33, max = 130) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(Backend.named("simd")).withBlockSizes(blockQ, blockKV)
                    .withScoreMod(mod(modKind, arena, c, c.seed()));
            check(arena, attn, c, mask(p), Float.NaN);
        }
    }

    /** Every modifier × mask × backend × block sizes, forward and backward, against the oracle. */
    @Property(tries = 150)
    void matchTheOracle(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll ModKind modKind, @ForAll("backends") String backend,
                        @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(Backend.named(backend)).withBlockSizes(blockQ, blockKV)
                    .withScoreMod(mod(modKind, arena, c, c.seed()));
            check(arena, attn, c, mask(p), Float.NaN);
        }
    }

    /** Every pattern the compiler produces (both alignments), at the backend's block sizes, with a custom scale. */
    @Property(tries = 120)
    void compiledPatternsMatchTheOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern, @ForAll ModKind modKind,
                                        @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Attention attn = Attention.sparse(pattern).on(Backend.named(backend)).withScale(0.4f).withScoreMod(mod(modKind, arena, c, c.seed()));
            check(arena, attn, c, pattern.asMask(c.qLen(), c.kvLen()), 0.4f);
        }
    }

    /** Forward, then backward (table gradients included), each within the EXACT contract of the modified oracle. */
    static void check(Arena arena, Attention attn, AttentionCase c, MaskFunction mask, float scale) {
        Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
        Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
        double sc = Float.isNaN(scale) ? (float) (1.0 / Math.sqrt(c.headDim())) : scale;
        ScoreMod mod = attn.scoreMod();
        AttentionResult r = attn.forwardWithLse(arena, q, k, v);
        DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, sc, mod);
        DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, mask, sc, mod);
        Tolerance tolerance = Tolerance.exact(q, k, v, sc, naive, oracle);
        assertThat(Tolerance.maxError(r.output(), oracle.output())).as("output error of %s", attn).isLessThanOrEqualTo(tolerance.output());
        assertThat(Tolerance.maxError(r.logSumExp(), oracle.logSumExp())).as("LSE error of %s", attn).isLessThanOrEqualTo(tolerance.logSumExp());
        AttentionGradients g = attn.backward(arena, q, k, v, r.output(), r.logSumExp(), dOut);
        DenseReference.Gradients og = DenseReference.gradients(q, k, v, dOut, mask, sc, mod);
        DenseReference.Gradients ng = DenseReference.naiveFloat32Gradients(q, k, v, dOut, mask, sc, mod);
        assertThat(Tolerance.maxError(g.dq(), og.dq())).as("dq error of %s", attn).isLessThanOrEqualTo(Tolerance.gradient(ng.dq(), og.dq()));
        assertThat(Tolerance.maxError(g.dk(), og.dk())).as("dk error of %s", attn).isLessThanOrEqualTo(Tolerance.gradient(ng.dk(), og.dk()));
        assertThat(Tolerance.maxError(g.dv(), og.dv())).as("dv error of %s", attn).isLessThanOrEqualTo(Tolerance.gradient(ng.dv(), og.dv()));
        assertThat(g.scoreModGradients()).hasSize(mod.parameters().size());
        for (int p = 0; p < g.scoreModGradients().size(); p++) {
            assertThat(Tolerance.maxError(g.scoreModGradients().get(p), og.dParameters().get(p))).as("table %d gradient error of %s", p, attn)
                    .isLessThanOrEqualTo(Tolerance.gradient(ng.dParameters().get(p), og.dParameters().get(p)));
        }
    }

    /** No atomics: forward and backward, table gradients included, the same bits for 1, 2 and 3 threads (both backward schedules). */
    @Property(tries = 40)
    void bitIdenticalForAnyThreadCount(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll ModKind modKind, @ForAll("backends") String backend,
                                       @ForAll @IntRange(min = 1, max = 17) int blockQ) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
            Backend be = Backend.named(backend);
            Attention one = Attention.sparse(spec(kind.name(), predicate(kind, c.qLen(), c.kvLen(), c.seed()))).on(be.withThreads(1))
                    .withBlockSizes(blockQ, 16).withScoreMod(mod(modKind, arena, c, c.seed()));
            AttentionResult fwd = one.forwardWithLse(arena, q, k, v);
            AttentionGradients expected = one.backward(arena, q, k, v, fwd.output(), fwd.logSumExp(), dOut);
            for (int threads : new int[] {2, 3}) {
                Attention many = one.on(be.withThreads(threads));
                AttentionResult f = many.forwardWithLse(arena, q, k, v);
                assertThat(f.output().toArray()).containsExactly(fwd.output().toArray());
                assertThat(f.logSumExp().toArray()).containsExactly(fwd.logSumExp().toArray());
                AttentionGradients got = many.backward(arena, q, k, v, fwd.output(), fwd.logSumExp(), dOut);
                assertThat(got.dq().toArray()).containsExactly(expected.dq().toArray());
                assertThat(got.dk().toArray()).containsExactly(expected.dk().toArray());
                assertThat(got.dv().toArray()).containsExactly(expected.dv().toArray());
                for (int p = 0; p < expected.scoreModGradients().size(); p++) {
                    assertThat(got.scoreModGradients().get(p).toArray()).containsExactly(expected.scoreModGradients().get(p).toArray());
                }
            }
        }
    }

    /**
     * A query's output and gradients depend only on the pairs the pattern allows, with a modifier
     * too: NaN and infinities in the other half's keys, values, queries and loss gradients change
     * nothing, and a function is never called on a pair the pattern excludes.
     */
    @Property(tries = 40)
    void garbageOutsideTheAllowedPairsNeverLeaksIn(@ForAll("cases") AttentionCase c, @ForAll ModKind modKind, @ForAll("backends") String backend,
                                                   @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 40) int blockKV) {
        int qHalf = (c.qLen() + 1) / 2, kvHalf = (c.kvLen() + 1) / 2;
        if (qHalf == c.qLen() || kvHalf == c.kvLen()) return;
        ElementPredicate twoDocuments = (i, j) -> (i < qHalf) == (j < kvHalf);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
            ScoreMod inner = mod(modKind, arena, c, c.seed());
            ScoreMod guard = ScoreMod.of("pattern guard", (b, h, i, j, s) -> {
                if ((i < qHalf) != (j < kvHalf)) throw new AssertionError("function called on excluded pair (" + i + ", " + j + ")");
                return s;
            }, (b, h, i, j, s) -> 1);
            Attention attn = Attention.sparse(spec("two documents", twoDocuments)).on(Backend.named(backend)).withBlockSizes(blockQ, blockKV)
                    .withScoreMod(guard.then(inner));
            GradientProperties.assertSecondDocumentNeverLeaksIn(attn, arena, c, q, k, v, dOut, qHalf, kvHalf);
        }
    }

    /** The built-in ALiBi and the same bias written as a function give the same attention (within the contract). */
    @Property(tries = 30)
    void builtInsAgreeWithTheEscapeHatch(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            float[] slopes = ScoreMod.alibiSlopes(c.heads());
            float cap = 1.5f;
            ScoreMod builtIn = ScoreMod.alibi(slopes).then(ScoreMod.softCap(cap));
            ScoreMod asFunction = ScoreMod.of("alibi", (b, h, i, j, s) -> s + (double) slopes[h] * (j - i), (b, h, i, j, s) -> 1)
                    .then(ScoreMod.of("cap", (b, h, i, j, s) -> cap * Math.tanh(s / cap), (b, h, i, j, s) -> 1 - Math.pow(Math.tanh(s / cap), 2)));
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(Backend.named(backend));
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            AttentionResult a = attn.withScoreMod(builtIn).forwardWithLse(arena, q, k, v);
            AttentionResult b = attn.withScoreMod(asFunction).forwardWithLse(arena, q, k, v);
            double sc = 1 / Math.sqrt(c.headDim());
            DenseReference.Result oracle = DenseReference.attention(q, k, v, mask(p), sc, builtIn);
            Tolerance t = Tolerance.exact(q, k, v, sc, DenseReference.naiveFloat32(q, k, v, mask(p), sc, builtIn), oracle);
            assertThat(Tolerance.maxError(a.output(), oracle.output())).isLessThanOrEqualTo(t.output());
            assertThat(Tolerance.maxError(b.output(), oracle.output())).isLessThanOrEqualTo(t.output());
        }
    }

    /** The README's example, at small sizes: a learnable T5 table then soft-capping, its gradient, and ALiBi. */
    @Example
    void readmeExampleRuns() {
        int heads = 4;
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, heads, 40, 16), k = Tensor.randomNormal(arena, 2, 1f, 1, heads, 40, 16);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, heads, 40, 16), dOut = Tensor.randomNormal(arena, 4, 1f, 1, heads, 40, 16);
            Tensor table = Tensor.randomNormal(arena, 7, 0.1f, heads, 32);                 // learnable [heads, buckets]
            ScoreMod mod = ScoreMod.relativeBias(table, ScoreMod.t5Buckets(32, false, 128)).then(ScoreMod.softCap(50f));
            Attention attn = Attention.sparse(Pattern.causal()).withScoreMod(mod);
            AttentionResult fwd = attn.forwardWithLse(arena, q, k, v);
            AttentionGradients g = attn.backward(arena, q, k, v, fwd.output(), fwd.logSumExp(), dOut);
            Tensor dTable = g.scoreModGradients().get(0);                                  // one per mod.parameters() entry
            assertThat(dTable.shape()).containsExactly(heads, 32);
            assertThat(mod.parameters()).containsExactly(table);
            Attention alibi = Attention.sparse(Pattern.causal()).withScoreMod(ScoreMod.alibi(ScoreMod.alibiSlopes(heads)));
            assertThat(alibi.forward(arena, q, k, v).shape()).containsExactly(1, heads, 40, 16);
            assertThat(mod.toString()).isEqualTo("relativeBias(4x32).then(softCap(50.0))");
        }
    }

    @Example
    void alibiSlopesAreTheReferenceOnes() {
        // Press et al.'s get_slopes: 8 heads → 1/2 … 1/256; 12 heads → the 8-head slopes, then every other 16-head slope.
        float[] eight = ScoreMod.alibiSlopes(8);
        for (int h = 0; h < 8; h++) assertThat(eight[h]).isEqualTo((float) Math.pow(2, -(h + 1)));
        float[] twelve = ScoreMod.alibiSlopes(12);
        assertThat(java.util.Arrays.copyOf(twelve, 8)).containsExactly(eight);
        for (int e = 0; e < 4; e++) assertThat(twelve[8 + e]).isEqualTo((float) Math.pow(2, -0.5 * (2 * e + 1)));
        assertThat(ScoreMod.alibiSlopes(1)).containsExactly((float) Math.pow(2, -8));
    }

    @Example
    void t5BucketsMatchTheReference() {
        // Values of Hugging Face's _relative_position_bucket(relative_position, bidirectional, 32, 128), computed with its float32 logarithm.
        var bi = ScoreMod.t5Buckets(32, true, 128);
        int[] relative = {-200, -128, -100, -20, -8, -7, -1, 0, 1, 7, 8, 20, 100, 200};
        int[] expected = {15, 15, 15, 10, 8, 7, 1, 0, 17, 23, 24, 26, 31, 31};
        for (int x = 0; x < relative.length; x++) assertThat(bi.applyAsInt(relative[x])).as("bidirectional bucket(%d)", relative[x]).isEqualTo(expected[x]);
        var uni = ScoreMod.t5Buckets(32, false, 128);
        int[] expectedUni = {31, 31, 30, 17, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0};
        for (int x = 0; x < relative.length; x++) assertThat(uni.applyAsInt(relative[x])).as("causal bucket(%d)", relative[x]).isEqualTo(expectedUni[x]);
    }

    /** Bottom-right alignment places queries at kvLen − qLen + i: ALiBi of one decoding query equals the last row of the prefill. */
    @Example
    void positionsFollowThePatternsAlignment() {
        try (Arena arena = Arena.ofShared()) {
            int n = 23;
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, n, 8), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, n, 8), v = Tensor.randomNormal(arena, 3, 1f, 1, 2, n, 8);
            ScoreMod alibi = ScoreMod.alibi(new float[] {0.3f, 0.7f});
            for (Backend be : Backend.available()) {
                if (!be.name().equals("scalar") && !be.name().equals("simd")) continue;
                Tensor full = Attention.sparse(Pattern.causal()).on(be).withScoreMod(alibi).forward(arena, q, k, v);
                Attention decode = Attention.sparse(Pattern.causal(CausalAlignment.BOTTOM_RIGHT)).on(be).withScoreMod(alibi);
                assertThat(decode.scoreMod().alignment()).isEqualTo(CausalAlignment.BOTTOM_RIGHT);
                Tensor last = decode.forward(arena, q.slice(2, n - 1, n), k, v);
                for (int h = 0; h < 2; h++) {
                    for (int x = 0; x < 8; x++) assertThat((double) last.get(0, h, 0, x)).isCloseTo(full.get(0, h, n - 1, x), org.assertj.core.data.Offset.offset(1e-5));
                }
                assertThatThrownBy(() -> Attention.sparse(Pattern.causal(CausalAlignment.BOTTOM_RIGHT)).withScoreMod(alibi.aligned(CausalAlignment.TOP_LEFT)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("aligned TOP_LEFT");
            }
        }
    }

    @Example
    void badInputsNameTheParameter() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 4, 8, 16), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, 10, 16), v = Tensor.randomNormal(arena, 3, 1f, 1, 2, 10, 16);
            Attention dense = Attention.dense().on(Backend.named("simd"));
            assertThatThrownBy(() -> ScoreMod.softCap(0f)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("cap must be finite and > 0, got 0.0");
            assertThatThrownBy(() -> ScoreMod.softCap(Float.NaN)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("cap");
            assertThatThrownBy(() -> ScoreMod.alibi(new float[] {1f, Float.NaN})).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("slopes[1]");
            assertThatThrownBy(() -> ScoreMod.t5Buckets(3, true, 10)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("buckets must be >= 4, got 3");
            assertThatThrownBy(() -> ScoreMod.t5Buckets(32, true, 8)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("maxDistance");
            assertThatThrownBy(() -> ScoreMod.relativeBias(Tensor.zeros(arena, 4), d -> 0)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("table must be rank 2");
            assertThatThrownBy(() -> ScoreMod.of(null, (b, h, i, j, s) -> s)).isInstanceOf(NullPointerException.class).hasMessageContaining("name");
            assertThatThrownBy(() -> dense.withScoreMod(ScoreMod.alibi(new float[] {1f, 2f})).forward(arena, q, k, v))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("alibi has 2 slopes but the call has 4 query heads");
            assertThatThrownBy(() -> dense.withScoreMod(ScoreMod.bias(Tensor.zeros(arena, 4, 9))).forward(arena, q, k, v))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("bias has 9 keys but the call has kvLen=10");
            Tensor badBias = Tensor.zeros(arena, 4);
            badBias.set(Float.POSITIVE_INFINITY, 2);
            assertThatThrownBy(() -> dense.withScoreMod(ScoreMod.bias(badBias)).forward(arena, q, k, v))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("bias[2] must be finite, got Infinity");
            assertThatThrownBy(() -> dense.withScoreMod(ScoreMod.relativeBias(Tensor.zeros(arena, 4, 3), d -> d)).forward(arena, q, k, v))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("outside the table's 3 buckets");
            // A function without a derivative runs forward but its backward pass is rejected, naming it.
            Attention noDerivative = dense.withScoreMod(ScoreMod.of("opaque", (b, h, i, j, s) -> s * s));
            AttentionResult r = noDerivative.forwardWithLse(arena, q, k, v);
            assertThatThrownBy(() -> noDerivative.backward(arena, q, k, v, r.output(), r.logSumExp(), Tensor.zeros(arena, 1, 4, 8, 16)))
                    .isInstanceOf(UnsupportedOperationException.class).hasMessageContaining("opaque").hasMessageContaining("derivative");
            // Learnable tables need the overload that returns their gradients.
            Attention table = dense.withScoreMod(ScoreMod.relativeBias(Tensor.zeros(arena, 4, 8), ScoreMod.t5Buckets(8, true, 20)));
            AttentionResult rt = table.forwardWithLse(arena, q, k, v);
            assertThatThrownBy(() -> table.backward(q, k, v, rt.output(), rt.logSumExp(), Tensor.zeros(arena, 1, 4, 8, 16),
                    Tensor.zeros(arena, 1, 4, 8, 16), Tensor.zeros(arena, 1, 2, 10, 16), Tensor.zeros(arena, 1, 2, 10, 16)))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("AttentionGradients");
            assertThatThrownBy(() -> table.backward(q, k, v, rt.output(), rt.logSumExp(), Tensor.zeros(arena, 1, 4, 8, 16),
                    new AttentionGradients(Tensor.zeros(arena, 1, 4, 8, 16), Tensor.zeros(arena, 1, 2, 10, 16), Tensor.zeros(arena, 1, 2, 10, 16), List.of(Tensor.zeros(arena, 4, 7)))))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dParameters[0] shape [4, 7]");
        }
    }

    /** A backend without modifier support (TornadoVM's, or any SPI implementation that does not override) rejects them by name. */
    @Example
    void backendsWithoutModifiersRejectThem() {
        Backend scalar = Backend.named("scalar");
        Backend plain = new Backend() {
            @Override public String name() { return "plain"; }
            @Override public String description() { return "test"; }
            @Override public boolean isAvailable() { return true; }
            @Override public int priority() { return -1; }
            @Override public int preferredBlockQ() { return 16; }
            @Override public int preferredBlockKV() { return 16; }
            @Override public Backend withThreads(int threads) { return this; }
            @Override public void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
                scalar.attention(q, k, v, layouts, scale, out, lse);
            }
            @Override public void gemm(Tensor a, boolean ta, Tensor b, boolean tb, Tensor c, float alpha, float beta) { scalar.gemm(a, ta, b, tb, c, alpha, beta); }
        };
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.randomNormal(arena, 1, 1f, 1, 1, 4, 4);
            assertThat(Attention.dense().on(plain).forward(arena, x, x, x).toArray()).hasSize(16);
            assertThatThrownBy(() -> Attention.dense().on(plain).withScoreMod(ScoreMod.softCap(5f)).forward(arena, x, x, x))
                    .isInstanceOf(UnsupportedOperationException.class).hasMessageContaining("backend 'plain' does not run score modifiers");
        }
    }
}
