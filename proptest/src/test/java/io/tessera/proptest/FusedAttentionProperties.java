package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.layout.BlockLayout;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.ElementPredicate;
import io.tessera.layout.HeadLayouts;
import io.tessera.layout.LayoutSpec;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.PatternCompiler;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * The fused block-sparse kernel (variants "dense" and "block-sparse") on every CPU backend against
 * the float64 oracle with the same element mask.
 */
class FusedAttentionProperties {

    /** Masks that exercise FULL, PARTIAL and absent tiles, fully masked rows and ragged blocks. */
    enum MaskKind { ALL, CAUSAL_TOP_LEFT, CAUSAL_BOTTOM_RIGHT, WINDOW, RANDOM_BITS, SOME_ROWS_EMPTY, NOTHING }

    static ElementPredicate predicate(MaskKind kind, int qLen, int kvLen, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int left = r.nextInt(0, 6), right = r.nextInt(0, 6);
        long salt = r.nextLong();
        return switch (kind) {
            case ALL -> (i, j) -> true;
            case CAUSAL_TOP_LEFT -> (i, j) -> CausalAlignment.TOP_LEFT.allows(i, j, qLen, kvLen);
            case CAUSAL_BOTTOM_RIGHT -> (i, j) -> CausalAlignment.BOTTOM_RIGHT.allows(i, j, qLen, kvLen);
            case WINDOW -> (i, j) -> j >= i - left && j <= i + right;
            case RANDOM_BITS -> (i, j) -> (mix(salt + i * 31L + j * 1_000_003L) & 3) != 0;
            case SOME_ROWS_EMPTY -> (i, j) -> i % 3 != 1 && (mix(salt + i * 7L + j * 13L) & 1) != 0;
            case NOTHING -> (i, j) -> false;
        };
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
        z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
        return z ^ (z >>> 33);
    }

    static MaskFunction mask(ElementPredicate p) {
        return (b, h, i, j) -> p.allows(i, j);
    }

    static LayoutSpec spec(String name, ElementPredicate p) {
        return (heads, qLen, kvLen, bq, bkv) -> HeadLayouts.shared(PatternCompiler.compile(Pattern.predicate(name, p), qLen, kvLen, bq, bkv));
    }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(40, 40, 12); }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    /** Queries past one lane group, for blocks of several groups (the SIMD kernel takes full tiles two groups at a time where the register file allows). */
    @Provide
    Arbitrary<AttentionCase> severalGroups() { return AttentionCase.cases(100, 80, 12).filter(c -> c.qLen() >= 33); }

    @Property(tries = 25)
    void blocksOfSeveralLaneGroupsMatchTheMaskedOracle(@ForAll("severalGroups") AttentionCase c, @ForAll MaskKind kind,
                                                       @ForAll @IntRange(min = 33, max = 130) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            checkAgainstOracle(arena, Attention.sparse(spec(kind.name(), p)).on(Backend.named("simd")).withBlockSizes(blockQ, blockKV), c.q(arena), c.k(arena), c.v(arena), mask(p));
        }
    }

    @Property(tries = 150)
    void matchesTheMaskedOracle(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend,
                                @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            checkAgainstOracle(arena, Attention.sparse(spec(kind.name(), p)).on(Backend.named(backend)).withBlockSizes(blockQ, blockKV), q, k, v, mask(p));
        }
    }

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    /** Every pattern the compiler can produce, at the backend's own block sizes. */
    @Property(tries = 150)
    void compiledPatternsMatchTheMaskedOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            checkAgainstOracle(arena, Attention.sparse(pattern).on(Backend.named(backend)), q, k, v, pattern.asMask(c.qLen(), c.kvLen()));
        }
    }

    @Property(tries = 60)
    void largeMagnitudeLogitsNeitherOverflowNorLoseAccuracy(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, c.seed(), 30f, c.batch(), c.heads(), c.qLen(), c.headDim());
            Tensor k = Tensor.randomNormal(arena, c.seed() + 1, 30f, c.batch(), c.kvHeads(), c.kvLen(), c.headDim());
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            checkAgainstOracle(arena, Attention.sparse(spec(kind.name(), p)).on(Backend.named(backend)), q, k, c.v(arena), mask(p));
        }
    }

    @Property(tries = 40)
    void simdOutputIsBitIdenticalForAnyThreadCount(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind,
                                                   @ForAll @IntRange(min = 1, max = 17) int blockQ) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            LayoutSpec spec = spec(kind.name(), predicate(kind, c.qLen(), c.kvLen(), c.seed()));
            Backend simd = Backend.named("simd");
            AttentionResult one = Attention.sparse(spec).on(simd.withThreads(1)).withBlockSizes(blockQ, 16).forwardWithLse(arena, q, k, v);
            for (int threads : new int[] {2, 3}) {
                AttentionResult many = Attention.sparse(spec).on(simd.withThreads(threads)).withBlockSizes(blockQ, 16).forwardWithLse(arena, q, k, v);
                assertThat(many.output().toArray()).containsExactly(one.output().toArray());
                assertThat(many.logSumExp().toArray()).containsExactly(one.logSumExp().toArray());
            }
        }
    }

    @Property(tries = 60)
    void simdAgreesWithScalar(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p));
            AttentionResult scalar = attn.on(Backend.named("scalar")).forwardWithLse(arena, q, k, v);
            AttentionResult simd = attn.on(Backend.named("simd")).forwardWithLse(arena, q, k, v);
            DenseReference.Result oracle = DenseReference.attention(q, k, v, mask(p), Double.NaN);
            DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, mask(p), Double.NaN);
            // Each is within the contract of the oracle, so they are within twice of each other.
            float[] a = scalar.output().toArray(), b = simd.output().toArray();
            double worst = 0;
            for (int i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
            assertThat(worst).isLessThanOrEqualTo(2 * Tolerance.exact(q, k, v, Double.NaN, naive, oracle).output());
        }
    }

    @Example
    void fullyMaskedRowsGiveZeroAndMinusInfinity() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 37, 5), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, 29, 5), v = Tensor.randomNormal(arena, 3, 1f, 1, 2, 29, 3);
            for (Backend be : Backend.available()) {
                AttentionResult r = Attention.sparse(spec("odd rows empty", (i, j) -> i % 2 == 0)).on(be).withBlockSizes(8, 8).forwardWithLse(arena, q, k, v);
                for (int h = 0; h < 2; h++) {
                    for (int i = 1; i < 37; i += 2) {
                        assertThat(r.logSumExp().get(0, h, i)).isEqualTo(Float.NEGATIVE_INFINITY);
                        for (int d = 0; d < 3; d++) assertThat(r.output().get(0, h, i, d)).isEqualTo(0f);
                    }
                }
                for (float x : r.output().toArray()) assertThat(x).isNotNaN();
            }
        }
    }

    @Example
    void badInputsNameTheParameter() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.zeros(arena, 1, 4, 8, 16), k = Tensor.zeros(arena, 1, 2, 10, 16), v = Tensor.zeros(arena, 1, 2, 10, 16);
            for (Backend be : Backend.available()) {
                Attention dense = Attention.dense().on(be);
                assertThatThrownBy(() -> dense.forward(q, k, v, Tensor.zeros(arena, 1, 4, 8, 15)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("out shape [1, 4, 8, 15]");
                assertThatThrownBy(() -> dense.forward(arena, q, Tensor.zeros(arena, 1, 3, 10, 16), Tensor.zeros(arena, 1, 3, 10, 16)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("k heads=3 must divide q heads=4");
                assertThatThrownBy(() -> dense.forward(arena, q, Tensor.zeros(arena, 1, 2, 10, 15), v))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("k head dim");
                HeadLayouts wrongLengths = HeadLayouts.shared(BlockLayout.dense(9, 10, 4, 4));
                assertThatThrownBy(() -> be.attention(q, k, v, wrongLengths, 1f, Tensor.zeros(arena, 1, 4, 8, 16), null))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("layout compiled for qLen=9");
                assertThatThrownBy(() -> dense.withScale(Float.NaN)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("scale");
                assertThatThrownBy(() -> dense.withBlockSizes(0, 4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("blockQ must be >= 1, got 0");
            }
            assertThatThrownBy(() -> Backend.named("gpu")).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no backend named 'gpu'");
        }
        Tensor closed;
        try (Arena arena = Arena.ofConfined()) {
            closed = Tensor.zeros(arena, 1, 1, 4, 4);
        }
        assertThatThrownBy(() -> Attention.dense().forward(Arena.ofAuto(), closed, closed, closed))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }

    @Example
    void bestBackendIsSimdWhenTheVectorApiIsPresent() {
        assertThat(Backend.best().name()).isEqualTo("simd");
        assertThat(Backend.best().description()).contains("Vector API").contains("-bit species");
    }

    static void checkAgainstOracle(Arena arena, Attention attn, Tensor q, Tensor k, Tensor v, MaskFunction mask) {
        AttentionResult r = attn.forwardWithLse(arena, q, k, v);
        double scale = 1.0 / Math.sqrt(q.size(3));
        DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale);
        DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, mask, scale);
        Tolerance tolerance = Tolerance.exact(q, k, v, scale, naive, oracle);
        assertThat(Tolerance.maxError(r.output(), oracle.output()))
                .as("output error of %s", attn).isLessThanOrEqualTo(tolerance.output());
        assertThat(Tolerance.maxError(r.logSumExp(), oracle.logSumExp()))
                .as("LSE error of %s", attn).isLessThanOrEqualTo(tolerance.logSumExp());
    }
}
