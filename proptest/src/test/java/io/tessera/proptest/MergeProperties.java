package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.pattern.ElementPredicate;
import io.tessera.proptest.FusedAttentionProperties.MaskKind;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
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
 * {@link Attention#merge}: attention over disjoint key sets, merged by log-sum-exp, equals attention
 * over their union within the EXACT tolerance of the float64 oracle.
 */
class MergeProperties {

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(24, 40, 9); }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    /** Keys scattered at random over {@code parts} sets, each attended through its element mask (some sets may be empty). */
    @Property(tries = 120)
    void mergingRandomKeySubsetsEqualsAttentionOverTheUnion(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend,
                                                          @ForAll @IntRange(min = 1, max = 5) int parts) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            ElementPredicate union = FusedAttentionProperties.predicate(kind, c.qLen(), c.kvLen(), c.seed());
            SplittableRandom r = new SplittableRandom(c.seed() ^ 0x5eed);
            int[] owner = new int[c.kvLen()];
            for (int j = 0; j < owner.length; j++) owner[j] = r.nextInt(parts);
            List<AttentionResult> partials = new ArrayList<>();
            for (int p = 0; p < parts; p++) {
                int part = p;
                ElementPredicate subset = (i, j) -> owner[j] == part && union.allows(i, j);
                partials.add(Attention.sparse(FusedAttentionProperties.spec("subset " + p, subset)).on(Backend.named(backend)).forwardWithLse(arena, q, k, v));
            }
            checkAgainstOracle(Attention.merge(arena, partials), q, k, v, union);
        }
    }

    /** Keys cut into contiguous ranges by {@link Tensor#slice}, each attended with the union's mask shifted to its range. */
    @Property(tries = 120)
    void mergingSlicedKeyRangesEqualsAttentionOverTheUnion(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend,
                                                         @ForAll @IntRange(min = 1, max = 5) int parts) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            ElementPredicate union = FusedAttentionProperties.predicate(kind, c.qLen(), c.kvLen(), c.seed());
            SplittableRandom r = new SplittableRandom(c.seed() ^ 0xcafe);
            int cuts = Math.min(parts - 1, c.kvLen() - 1);
            java.util.TreeSet<Integer> bounds = new java.util.TreeSet<>(List.of(0, c.kvLen()));
            while (bounds.size() < cuts + 2) bounds.add(1 + r.nextInt(c.kvLen() - 1));
            Integer[] b = bounds.toArray(new Integer[0]);
            List<AttentionResult> partials = new ArrayList<>();
            for (int s = 0; s + 1 < b.length; s++) {
                int from = b[s], to = b[s + 1];
                ElementPredicate shifted = (i, j) -> union.allows(i, j + from);
                partials.add(Attention.sparse(FusedAttentionProperties.spec("keys " + from + ".." + to, shifted)).on(Backend.named(backend))
                        .forwardWithLse(arena, q, k.slice(2, from, to), v.slice(2, from, to)));
            }
            checkAgainstOracle(Attention.merge(arena, partials), q, k, v, union);
        }
    }

    static void checkAgainstOracle(AttentionResult merged, Tensor q, Tensor k, Tensor v, ElementPredicate union) {
        double scale = 1.0 / Math.sqrt(q.size(3));
        DenseReference.Result oracle = DenseReference.attention(q, k, v, FusedAttentionProperties.mask(union), scale);
        DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, FusedAttentionProperties.mask(union), scale);
        Tolerance tolerance = Tolerance.exact(q, k, v, scale, naive, oracle);
        assertThat(Tolerance.maxError(merged.output(), oracle.output())).as("merged output error").isLessThanOrEqualTo(tolerance.output());
        assertThat(Tolerance.maxError(merged.logSumExp(), oracle.logSumExp())).as("merged LSE error").isLessThanOrEqualTo(tolerance.logSumExp());
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Half-precision storage: partial outputs in BF16 or F16 (each partial independently, or F32),
     * their LSEs F32 (some −∞), out in F32 or that type. Against the float64 merge of the same
     * (rounded) partials: the merge sums in float64 (relative error ~ parts·2⁻⁵³) and rounds once to
     * float32 (≤ 2⁻²⁴·|out|), so each element is within 2⁻²³·Σ_p w_p·|out_p| (w_p the partial's
     * weight), and the LSE within 2⁻²³·|lse|; plus one rounding of an output stored in a half type
     * ({@code Tolerance.stored}). And the same bits as merging float32 copies of the partials with
     * the float32 out rounded once to out's type.
     */
    @Property(tries = 60)
    void halfPrecisionPartialsMergeAsTheirFloat64Combination(@ForAll @IntRange(min = 1, max = 2) int batch, @ForAll @IntRange(min = 1, max = 3) int heads,
                                                             @ForAll @IntRange(min = 1, max = 12) int rows, @ForAll @IntRange(min = 1, max = 9) int dv,
                                                             @ForAll @IntRange(min = 1, max = 5) int parts, @ForAll("halfTypes") ElementType type,
                                                             @ForAll boolean halfOutput, @ForAll long seed) {
        ElementType outType = halfOutput ? type : ElementType.F32;
        try (Arena arena = Arena.ofShared()) {
            SplittableRandom r = new SplittableRandom(seed);
            List<AttentionResult> partials = new ArrayList<>(), wide = new ArrayList<>();
            for (int p = 0; p < parts; p++) {
                Tensor o = Tensor.randomNormal(arena, seed + p, 1f, batch, heads, rows, dv);
                if (p == 0 || r.nextBoolean()) o = o.to(arena, type);   // at least one half-precision partial
                Tensor l = Tensor.randomNormal(arena, seed + 100 + p, 2f, batch, heads, rows);
                for (int b = 0; b < batch; b++) for (int h = 0; h < heads; h++) for (int i = 0; i < rows; i++) {
                    if (r.nextInt(4) == 0) l.set(Float.NEGATIVE_INFINITY, b, h, i);   // this partial's key set is empty for the row
                }
                partials.add(new AttentionResult(o, l));
                wide.add(new AttentionResult(o.to(arena, ElementType.F32), l));
            }
            Tensor out = Tensor.zeros(arena, outType, batch, heads, rows, dv), lse = Tensor.zeros(arena, batch, heads, rows);
            Attention.merge(partials, out, lse);
            float[][] o = new float[parts][], l = new float[parts][];
            for (int p = 0; p < parts; p++) {
                o[p] = partials.get(p).output().toArray();
                l[p] = partials.get(p).logSumExp().toArray();
            }
            float[] got = out.toArray(), gotLse = lse.toArray();
            for (int row = 0; row < batch * heads * rows; row++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int p = 0; p < parts; p++) max = Math.max(max, l[p][row]);
                if (max == Double.NEGATIVE_INFINITY) {
                    assertThat(gotLse[row]).isEqualTo(Float.NEGATIVE_INFINITY);
                    for (int d = 0; d < dv; d++) assertThat(got[row * dv + d]).isEqualTo(0f);
                    continue;
                }
                double sum = 0;
                for (int p = 0; p < parts; p++) sum += Math.exp(l[p][row] - max);
                double expectedLse = max + Math.log(sum);
                assertThat(Math.abs(gotLse[row] - expectedLse)).as("lse of row %d", row).isLessThanOrEqualTo(0x1p-23 * Math.abs(expectedLse) + 0x1p-40);
                for (int d = 0; d < dv; d++) {
                    double expected = 0, magnitude = 0;
                    for (int p = 0; p < parts; p++) {
                        double weight = Math.exp(l[p][row] - max) / sum;
                        if (weight == 0) continue;
                        expected += weight * o[p][row * dv + d];
                        magnitude += weight * Math.abs(o[p][row * dv + d]);
                    }
                    double tolerance = Tolerance.stored(outType, 0x1p-23 * magnitude, expected);
                    assertThat(Math.abs(got[row * dv + d] - expected)).as("out[%d][%d] in %s", row, d, outType).isLessThanOrEqualTo(tolerance);
                }
            }
            // Bit for bit: the float32 merge of float32 copies, its output rounded once to out's type.
            AttentionResult merged32 = Attention.merge(arena, wide);
            assertThat(out.toArray()).isEqualTo(merged32.output().to(arena, outType).toArray());
            assertThat(lse.toArray()).isEqualTo(merged32.logSumExp().toArray());
        }
    }

    @Property(tries = 30)
    void mergeIsDeterministicAndOrderOfEqualPartialsDoesNotMatterForOne(@ForAll("cases") AttentionCase c) {
        try (Arena arena = Arena.ofShared()) {
            AttentionResult one = Attention.dense().forwardWithLse(arena, c.q(arena), c.k(arena), c.v(arena));
            AttentionResult merged = Attention.merge(arena, List.of(one));
            assertThat(merged.output().toArray()).containsExactly(one.output().toArray());
            assertThat(merged.logSumExp().toArray()).containsExactly(one.logSumExp().toArray());
            AttentionResult again = Attention.merge(arena, List.of(one, merged));
            assertThat(Attention.merge(arena, List.of(one, merged)).output().toArray()).containsExactly(again.output().toArray());
        }
    }

    @Example
    void emptyPartialsContributeNothingEvenWithGarbageOutputs() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.of(arena, new float[] {1, 2, Float.NaN, Float.NaN}, 1, 1, 2, 2);
            Tensor aLse = Tensor.of(arena, new float[] {0.5f, Float.NEGATIVE_INFINITY}, 1, 1, 2);
            Tensor b = Tensor.of(arena, new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NaN, 7}, 1, 1, 2, 2);
            Tensor bLse = Tensor.of(arena, new float[] {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY}, 1, 1, 2);
            AttentionResult m = Attention.merge(arena, List.of(new AttentionResult(a, aLse), new AttentionResult(b, bLse)));
            assertThat(m.output().toArray()).containsExactly(1, 2, 0, 0);
            assertThat(m.logSumExp().toArray()).containsExactly(0.5f, Float.NEGATIVE_INFINITY);
        }
    }

    @Example
    void hugeLogSumExpsDoNotOverflow() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.of(arena, new float[] {1}, 1, 1, 1, 1), b = Tensor.of(arena, new float[] {3}, 1, 1, 1, 1);
            Tensor la = Tensor.of(arena, new float[] {1000f}, 1, 1, 1), lb = Tensor.of(arena, new float[] {1000f}, 1, 1, 1);
            AttentionResult m = Attention.merge(arena, List.of(new AttentionResult(a, la), new AttentionResult(b, lb)));
            assertThat(m.output().toArray()).containsExactly(2f);
            assertThat(m.logSumExp().get(0, 0, 0)).isEqualTo((float) (1000 + Math.log(2)));
        }
    }

    @Example
    void badArgumentsAreRejectedByName() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor o = Tensor.zeros(arena, 1, 2, 3, 4), l = Tensor.zeros(arena, 1, 2, 3);
            AttentionResult r = new AttentionResult(o, l);
            assertThatThrownBy(() -> Attention.merge(arena, null)).isInstanceOf(NullPointerException.class).hasMessage("partials");
            assertThatThrownBy(() -> Attention.merge(null, List.of(r))).isInstanceOf(NullPointerException.class).hasMessage("arena");
            assertThatThrownBy(() -> Attention.merge(arena, List.of())).hasMessageContaining("at least one");
            assertThatThrownBy(() -> Attention.merge(arena, java.util.Arrays.asList(r, null))).isInstanceOf(NullPointerException.class).hasMessage("partials[1]");
            assertThatThrownBy(() -> Attention.merge(arena, List.of(new AttentionResult(o, null)))).isInstanceOf(NullPointerException.class).hasMessage("partials[0].logSumExp");
            assertThatThrownBy(() -> Attention.merge(arena, List.of(r, new AttentionResult(Tensor.zeros(arena, 1, 2, 3, 5), l))))
                    .hasMessageContaining("partials[1].output shape [1, 2, 3, 5]");
            assertThatThrownBy(() -> Attention.merge(arena, List.of(new AttentionResult(o, Tensor.zeros(arena, 1, 2, 4)))))
                    .hasMessageContaining("partials[0].logSumExp shape [1, 2, 4]");
            assertThatThrownBy(() -> Attention.merge(List.of(r), Tensor.zeros(arena, 1, 2, 3, 3), l.slice(0, 0, 1))).hasMessageContaining("out shape");
            Tensor out = Tensor.zeros(arena, 1, 2, 3, 4), lse = Tensor.zeros(arena, 1, 2, 3);
            assertThatThrownBy(() -> Attention.merge(List.of(r), out, Tensor.zeros(arena, 2, 3))).hasMessageContaining("lse shape");
            assertThatThrownBy(() -> Attention.merge(List.of(r), o, lse)).hasMessageContaining("out shares memory with partials[0]");
            assertThatThrownBy(() -> Attention.merge(List.of(r), out, l)).hasMessageContaining("lse shares memory with partials[0]");
            Tensor both = Tensor.zeros(arena, 1, 2, 3, 4);
            assertThatThrownBy(() -> Attention.merge(List.of(r), both, both.select(3, 0))).hasMessageContaining("out and lse share memory");
        }
    }
}
