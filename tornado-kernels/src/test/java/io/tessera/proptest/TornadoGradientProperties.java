package io.tessera.proptest;

import static io.tessera.proptest.FusedAttentionProperties.mask;
import static io.tessera.proptest.FusedAttentionProperties.predicate;
import static io.tessera.proptest.FusedAttentionProperties.spec;
import static io.tessera.proptest.TornadoAttentionProperties.ranOnDevice;
import static io.tessera.proptest.TornadoAttentionProperties.tornado;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionGradients;
import io.tessera.attention.AttentionResult;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.ScoreMod;
import io.tessera.proptest.FusedAttentionProperties.MaskKind;
import io.tessera.proptest.ScoreModProperties.ModKind;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * The device backward pass against the float64 oracle's gradients, within the EXACT contract the CPU
 * backward meets (each gradient ≤ 10× the naive fp32 backward's error on the same input, as
 * {@link GradientProperties} and {@link ScoreModProperties} check it): every mask kind (fully masked
 * rows and GQA included) at any block sizes, every compiled pattern, every built-in modifier and
 * composition with the learnable tables' gradients. The backward kernels must have run on the
 * device (no bailout to Java).
 */
class TornadoGradientProperties {

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(33, 33, 11); }

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    @Provide
    Arbitrary<ModKind> builtIns() {
        return Arbitraries.of(ModKind.class).filter(k -> !k.name().contains("FUNCTION"));
    }

    @Property(tries = 20)
    void gradientsMatchTheOracle(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind,
                                 @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(tornado()).withBlockSizes(blockQ, blockKV);
            check(arena, attn, c, mask(p), Float.NaN);
        }
    }

    @Property(tries = 12)
    void compiledPatternsGradientsMatchTheOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern) {
        try (Arena arena = Arena.ofShared()) {
            Attention attn = Attention.sparse(pattern).on(tornado()).withScale(0.4f);
            check(arena, attn, c, pattern.asMask(c.qLen(), c.kvLen()), 0.4f);
        }
    }

    @Property(tries = 15)
    void builtInModifiersGradientsMatchTheOracle(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("builtIns") ModKind modKind,
                                                 @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(tornado()).withBlockSizes(blockQ, blockKV)
                    .withScoreMod(ScoreModProperties.mod(modKind, arena, c, c.seed()));
            check(arena, attn, c, mask(p), Float.NaN);
        }
    }

    @Property(tries = 10)
    void compiledPatternsWithModifiersGradientsMatchTheOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern,
                                                              @ForAll("builtIns") ModKind modKind) {
        try (Arena arena = Arena.ofShared()) {
            Attention attn = Attention.sparse(pattern).on(tornado()).withScale(0.4f).withScoreMod(ScoreModProperties.mod(modKind, arena, c, c.seed()));
            check(arena, attn, c, pattern.asMask(c.qLen(), c.kvLen()), 0.4f);
        }
    }

    /**
     * Forward on the device, then backward on the device (both checked to have run there), each
     * gradient (tables' included) within the EXACT contract of the (modified) float64 oracle.
     */
    static void check(Arena arena, Attention attn, AttentionCase c, MaskFunction mask, float scale) {
        Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
        Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
        double sc = Float.isNaN(scale) ? (float) (1.0 / Math.sqrt(c.headDim())) : scale;
        ScoreMod mod = attn.scoreMod();
        AttentionResult r = attn.forwardWithLse(arena, q, k, v);
        ranOnDevice("attention");
        AttentionGradients g = attn.backward(arena, q, k, v, r.output(), r.logSumExp(), dOut);
        ranOnDevice("backward");
        DenseReference.Gradients og = mod == null ? DenseReference.gradients(q, k, v, dOut, mask, sc) : DenseReference.gradients(q, k, v, dOut, mask, sc, mod);
        DenseReference.Gradients ng = mod == null ? DenseReference.naiveFloat32Gradients(q, k, v, dOut, mask, sc)
                : DenseReference.naiveFloat32Gradients(q, k, v, dOut, mask, sc, mod);
        assertThat(Tolerance.maxError(g.dq(), og.dq())).as("dq error of %s", attn).isLessThanOrEqualTo(Tolerance.gradient(ng.dq(), og.dq()));
        assertThat(Tolerance.maxError(g.dk(), og.dk())).as("dk error of %s", attn).isLessThanOrEqualTo(Tolerance.gradient(ng.dk(), og.dk()));
        assertThat(Tolerance.maxError(g.dv(), og.dv())).as("dv error of %s", attn).isLessThanOrEqualTo(Tolerance.gradient(ng.dv(), og.dv()));
        int tables = mod == null ? 0 : mod.parameters().size();
        assertThat(g.scoreModGradients()).hasSize(tables);
        for (int p = 0; p < tables; p++) {
            assertThat(Tolerance.maxError(g.scoreModGradients().get(p), og.dParameters().get(p))).as("table %d gradient error of %s", p, attn)
                    .isLessThanOrEqualTo(Tolerance.gradient(ng.dParameters().get(p), og.dParameters().get(p)));
        }
    }

    /**
     * A query's gradients, and a key's, depend only on the pairs the pattern allows: NaN and
     * infinities in the other document's keys, values, queries and loss gradients leave every
     * gradient of the first document bit-identical (the CPU suite's check, on the device).
     */
    @Property(tries = 8)
    void garbageOutsideTheAllowedPairsNeverLeaksIn(@ForAll("cases") AttentionCase c,
                                                   @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 40) int blockKV) {
        int qHalf = (c.qLen() + 1) / 2, kvHalf = (c.kvLen() + 1) / 2;
        if (qHalf == c.qLen() || kvHalf == c.kvLen()) return;   // needs two non-empty documents
        ElementPredicate twoDocuments = (i, j) -> (i < qHalf) == (j < kvHalf);
        try (Arena arena = Arena.ofShared()) {
            Attention attn = Attention.sparse(spec("two documents", twoDocuments)).on(tornado()).withBlockSizes(blockQ, blockKV);
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
            GradientProperties.assertSecondDocumentNeverLeaksIn(attn, arena, c, c.q(arena), c.k(arena), c.v(arena), dOut, qHalf, kvHalf);
            ranOnDevice("backward");
        }
    }

    /** Fully masked rows get dq = 0 and keys nobody attends dk = dv = 0, exactly (whole query and key blocks among them). */
    @Example
    void fullyMaskedRowsAndUnattendedKeysGetZeroGradients() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 37, 5), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, 29, 5);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 1, 29, 3), dOut = Tensor.randomNormal(arena, 4, 1f, 1, 2, 37, 3);
            // Odd rows and rows from 32 on (the whole last query block) attend nothing; keys from 20 on (the whole last key block among them) nobody.
            ElementPredicate p = (i, j) -> i % 2 == 0 && i < 32 && j < 20;
            Attention attn = Attention.sparse(spec("odd rows empty", p)).on(tornado()).withBlockSizes(8, 8);
            AttentionResult r = attn.forwardWithLse(arena, q, k, v);
            // The gradients start as NaN: the kernels must write every element, not rely on zeroed memory.
            AttentionGradients g = new AttentionGradients(nans(arena, 1, 2, 37, 5), nans(arena, 1, 1, 29, 5), nans(arena, 1, 1, 29, 3));
            attn.backward(q, k, v, r.output(), r.logSumExp(), dOut, g);
            ranOnDevice("backward");
            for (int h = 0; h < 2; h++) {
                for (int i = 0; i < 37; i++) {
                    if (i % 2 == 1 || i >= 32) for (int x = 0; x < 5; x++) assertThat(g.dq().get(0, h, i, x)).isEqualTo(0f);
                }
            }
            for (int j = 20; j < 29; j++) {
                for (int x = 0; x < 5; x++) assertThat(g.dk().get(0, 0, j, x)).isEqualTo(0f);
                for (int x = 0; x < 3; x++) assertThat(g.dv().get(0, 0, j, x)).isEqualTo(0f);
            }
        }
    }

    private static Tensor nans(Arena arena, long... shape) {
        long count = 1;
        for (long n : shape) count *= n;
        float[] all = new float[(int) count];
        java.util.Arrays.fill(all, Float.NaN);
        return Tensor.of(arena, all, shape);
    }

    /** Same inputs, same bits: a call reusing its plan (after the table changed and changed back) and a fresh plan over new tensors agree float for float. */
    @Example
    void repeatedCallsGiveTheSameBits() {
        try (Arena arena = Arena.ofShared()) {
            AttentionCase c = new AttentionCase(2, 4, 2, 29, 31, 7, 6, 42);
            Tensor table = Tensor.randomNormal(arena, 5, 1f, 4, 7);
            ScoreMod mod = ScoreMod.relativeBias(table, d -> Math.max(-3, Math.min(3, d)) + 3).then(ScoreMod.softCap(2f));
            Attention attn = Attention.sparse(Pattern.causal()).on(tornado()).withBlockSizes(8, 16).withScoreMod(mod);
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            Tensor dOut = Tensor.randomNormal(arena, 9, 1f, 2, 4, 29, 6);
            AttentionResult r = attn.forwardWithLse(arena, q, k, v);
            AttentionGradients first = attn.backward(arena, q, k, v, r.output(), r.logSumExp(), dOut);
            AttentionGradients second = new AttentionGradients(Tensor.zeros(arena, 2, 4, 29, 7), Tensor.zeros(arena, 2, 2, 31, 7),
                    Tensor.zeros(arena, 2, 2, 31, 6), java.util.List.of(Tensor.zeros(arena, 4, 7)));
            attn.backward(q, k, v, r.output(), r.logSumExp(), dOut, second);
            assertThat(ranOnDevice("backward").firstExecution()).isTrue();
            for (int x = 0; x < 28; x++) table.set(0f, x / 7, x % 7);   // overwritten below: the next call must refill its arrays
            attn.backward(q, k, v, r.output(), r.logSumExp(), dOut, second);
            assertThat(second.dq().toArray()).as("dq with the table zeroed (a stale table would repeat the first call's)").isNotEqualTo(first.dq().toArray());
            Tensor fresh5 = Tensor.randomNormal(arena, 5, 1f, 4, 7);
            for (int x = 0; x < 28; x++) table.set(fresh5.get(x / 7, x % 7), x / 7, x % 7);
            attn.backward(q, k, v, r.output(), r.logSumExp(), dOut, second);
            assertThat(ranOnDevice("backward").firstExecution()).isFalse();
            AttentionGradients fresh = attn.backward(arena, q.contiguous(arena), k.contiguous(arena), v.contiguous(arena), r.output(), r.logSumExp(), dOut);
            assertThat(ranOnDevice("backward").firstExecution()).isTrue();
            for (AttentionGradients g : new AttentionGradients[] {second, fresh}) {
                assertThat(g.dq().toArray()).isEqualTo(first.dq().toArray());
                assertThat(g.dk().toArray()).isEqualTo(first.dk().toArray());
                assertThat(g.dv().toArray()).isEqualTo(first.dv().toArray());
                assertThat(g.scoreModGradients().get(0).toArray()).isEqualTo(first.scoreModGradients().get(0).toArray());
            }
        }
    }

    /** A user function cannot run on the device, backward as forward: rejected by name; half-precision gradients' inputs by name too. */
    @Example
    void whatTheDeviceCannotRunIsRejectedByName() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, 4, 8);
            ScoreMod wiggle = ScoreMod.of("wiggle", (b, h, i, j, s) -> s + Math.sin(s), (b, h, i, j, s) -> 1 + Math.cos(s));
            AttentionResult r = Attention.dense().withScoreMod(wiggle).forwardWithLse(arena, q, q, q);
            assertThatThrownBy(() -> Attention.dense().on(tornado()).withScoreMod(ScoreMod.softCap(5f).then(wiggle))
                    .backward(arena, q, q, q, r.output(), r.logSumExp(), q))
                    .isInstanceOf(UnsupportedOperationException.class).hasMessageContaining("backend 'tornado' cannot run the score function")
                    .hasMessageContaining("wiggle");
            Tensor half = q.to(arena, io.tessera.tensor.ElementType.BF16);
            AttentionResult rh = Attention.dense().forwardWithLse(arena, q, q, q);
            assertThatThrownBy(() -> Attention.dense().on(tornado()).backward(arena, half, q, q, rh.output(), rh.logSumExp(), q))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("q has element type BF16");
        }
    }
}
