package io.tessera.proptest;

import static io.tessera.proptest.FusedAttentionProperties.mask;
import static io.tessera.proptest.FusedAttentionProperties.predicate;
import static io.tessera.proptest.FusedAttentionProperties.spec;
import static io.tessera.proptest.TornadoAttentionProperties.ranOnDevice;
import static io.tessera.proptest.TornadoAttentionProperties.tornado;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
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
 * The built-in score modifiers (ALiBi, relative-position tables, soft-capping, additive biases and
 * their compositions) in the device's fused kernel, forward, against the modified float64 oracle
 * within the EXACT contract the CPU kernels meet; the kernel must have run on the device. A user
 * function cannot run on the device and is rejected by name.
 */
class TornadoScoreModProperties {

    /** Every built-in modifier and composition of the CPU suite (those with a user function are rejected, see below). */
    @Provide
    Arbitrary<ModKind> builtIns() {
        return Arbitraries.of(ModKind.class).filter(k -> !k.name().contains("FUNCTION"));
    }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(33, 33, 11); }

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    @Property(tries = 40)
    void builtInModifiersMatchTheOracle(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("builtIns") ModKind modKind,
                                        @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(tornado()).withBlockSizes(blockQ, blockKV)
                    .withScoreMod(ScoreModProperties.mod(modKind, arena, c, c.seed()));
            check(arena, attn, c, mask(p), Float.NaN);
        }
    }

    /** Compiled patterns of both alignments (the modifier takes the pattern's), with a custom scale. */
    @Property(tries = 25)
    void compiledPatternsWithModifiersMatchTheOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern, @ForAll("builtIns") ModKind modKind) {
        try (Arena arena = Arena.ofShared()) {
            Attention attn = Attention.sparse(pattern).on(tornado()).withScale(0.4f).withScoreMod(ScoreModProperties.mod(modKind, arena, c, c.seed()));
            check(arena, attn, c, pattern.asMask(c.qLen(), c.kvLen()), 0.4f);
        }
    }

    static void check(Arena arena, Attention attn, AttentionCase c, MaskFunction mask, float scale) {
        Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
        double sc = Float.isNaN(scale) ? (float) (1.0 / Math.sqrt(c.headDim())) : scale;
        ScoreMod mod = attn.scoreMod();
        AttentionResult r = attn.forwardWithLse(arena, q, k, v);
        ranOnDevice("attention");
        DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, sc, mod);
        DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, mask, sc, mod);
        Tolerance tolerance = Tolerance.exact(q, k, v, sc, naive, oracle);
        assertThat(Tolerance.maxError(r.output(), oracle.output())).as("output error of %s", attn).isLessThanOrEqualTo(tolerance.output());
        assertThat(Tolerance.maxError(r.logSumExp(), oracle.logSumExp())).as("LSE error of %s", attn).isLessThanOrEqualTo(tolerance.logSumExp());
    }

    /** A learnable table updated in place between calls: the next call (same plan) sees the new values. */
    @Example
    void aTableWrittenBetweenCallsIsSeenByTheNextCall() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 12, 8), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, 12, 8);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 2, 12, 8);
            Tensor table = Tensor.randomNormal(arena, 4, 1f, 2, 7);
            ScoreMod mod = ScoreMod.relativeBias(table, d -> Math.max(-3, Math.min(3, d)) + 3);
            Attention attn = Attention.sparse(Pattern.causal()).on(tornado()).withScoreMod(mod);
            MaskFunction m = Pattern.causal().asMask(12, 12);
            Tensor out = Tensor.zeros(arena, 1, 2, 12, 8), lse = Tensor.zeros(arena, 1, 2, 12);
            for (int step = 0; step < 2; step++) {
                attn.forwardWithLse(q, k, v, out, lse);
                assertThat(ranOnDevice("attention").firstExecution()).isEqualTo(step == 0);
                DenseReference.Result oracle = DenseReference.attention(q, k, v, m, 1 / Math.sqrt(8), mod);
                DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, m, 1 / Math.sqrt(8), mod);
                Tolerance tolerance = Tolerance.exact(q, k, v, 1 / Math.sqrt(8), naive, oracle);
                assertThat(Tolerance.maxError(out, oracle.output())).as("output, step %d", step).isLessThanOrEqualTo(tolerance.output());
                assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE, step %d", step).isLessThanOrEqualTo(tolerance.logSumExp());
                for (int h = 0; h < 2; h++) for (int b = 0; b < 7; b++) table.set(table.get(h, b) * -2f + 1f, h, b);
            }
        }
    }

    /** The escape hatch cannot run on the device: rejected up front, naming the function and the alternatives. */
    @Example
    void aUserFunctionIsRejectedByName() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, 4, 8);
            ScoreMod wiggle = ScoreMod.of("wiggle", (b, h, i, j, s) -> s + Math.sin(s));
            assertThatThrownBy(() -> Attention.dense().on(tornado()).withScoreMod(ScoreMod.softCap(5f).then(wiggle)).forward(arena, q, q, q))
                    .isInstanceOf(UnsupportedOperationException.class).hasMessageContaining("backend 'tornado' cannot run the score function")
                    .hasMessageContaining("wiggle").hasMessageContaining("'simd'");
        }
    }
}
