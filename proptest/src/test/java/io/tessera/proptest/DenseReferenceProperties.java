package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.MaskFunction;
import io.tessera.reference.DenseReference;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/** Laws of softmax attention, checked on the float64 oracle itself. */
class DenseReferenceProperties {

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.small(); }

    @Property(tries = 100)
    void rowsOfTheAttentionMatrixSumToOne(@ForAll("cases") AttentionCase c) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor ones = Tensor.zeros(arena, c.batch(), c.kvHeads(), c.kvLen(), 1);
            ones.fill(1f);
            // With V = 1 every output is Σ_j p_ij, which must be 1 for every row with an allowed key.
            var r = DenseReference.attention(c.q(arena), c.k(arena), ones, MaskFunction.causal(CausalAlignment.BOTTOM_RIGHT, c.qLen(), c.kvLen()), Double.NaN);
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) for (int i = 0; i < c.qLen(); i++) {
                boolean anyAllowed = i + (c.kvLen() - c.qLen()) >= 0;
                assertThat(r.output(b, h, i, 0)).isCloseTo(anyAllowed ? 1.0 : 0.0, within(1e-12));
            }
        }
    }

    @Property(tries = 60)
    void permutingKeysAndValuesTogetherLeavesTheOutputUnchanged(@ForAll("cases") AttentionCase c) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            int[] perm = permutation(c.kvLen(), c.seed());
            Tensor kp = Tensor.zeros(arena, k.shape()), vp = Tensor.zeros(arena, v.shape());
            for (int j = 0; j < c.kvLen(); j++) {
                kp.slice(2, j, j + 1).copyFrom(k.slice(2, perm[j], perm[j] + 1));
                vp.slice(2, j, j + 1).copyFrom(v.slice(2, perm[j], perm[j] + 1));
            }
            var a = DenseReference.attention(q, k, v);
            var b = DenseReference.attention(q, kp, vp);
            assertThat(b.output()).containsExactly(a.output(), within(1e-12));
            assertThat(b.logSumExp()).containsExactly(a.logSumExp(), within(1e-12));
        }
    }

    @Property(tries = 60)
    void aMaskThatAllowsEverythingEqualsNoMask(@ForAll("cases") AttentionCase c) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            var none = DenseReference.attention(q, k, v);
            var all = DenseReference.attention(q, k, v, (b, h, i, j) -> i >= 0 || j >= 0, 1.0 / Math.sqrt(c.headDim()));
            assertThat(all.output()).containsExactly(none.output());
            assertThat(all.logSumExp()).containsExactly(none.logSumExp());
        }
    }

    @Property(tries = 60)
    void fullyMaskedRowsAreZeroWithMinusInfinityLse(@ForAll("cases") AttentionCase c) {
        try (Arena arena = Arena.ofConfined()) {
            // Odd query rows see nothing; even rows see everything.
            var r = DenseReference.attention(c.q(arena), c.k(arena), c.v(arena), (b, h, i, j) -> i % 2 == 0, Double.NaN);
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) for (int i = 0; i < c.qLen(); i++) {
                double lse = r.logSumExp(b, h, i);
                if (i % 2 == 1) {
                    assertThat(lse).isEqualTo(Double.NEGATIVE_INFINITY);
                    for (int d = 0; d < c.valueDim(); d++) assertThat(r.output(b, h, i, d)).isEqualTo(0.0);
                } else {
                    assertThat(lse).isFinite();
                }
            }
            for (double x : r.output()) assertThat(x).isNotNaN();
        }
    }

    @Property(tries = 60)
    void lseIsTheLogOfTheSoftmaxDenominator(@ForAll("cases") AttentionCase c) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            var r = DenseReference.attention(q, k, v);
            double scale = 1.0 / Math.sqrt(c.headDim());
            int h = c.heads() - 1, i = c.qLen() - 1, hk = h / (c.heads() / c.kvHeads());
            double sum = 0;
            for (int j = 0; j < c.kvLen(); j++) {
                double dot = 0;
                for (int d = 0; d < c.headDim(); d++) dot += (double) q.get(0, h, i, d) * k.get(0, hk, j, d);
                sum += Math.exp(dot * scale);
            }
            assertThat(r.logSumExp(0, h, i)).isCloseTo(Math.log(sum), within(1e-9));
        }
    }

    @Property(tries = 60)
    void causalAlignmentsAgreeOnSquareInputsAndDifferOtherwise(@ForAll("cases") AttentionCase c) {
        for (int i = 0; i < c.qLen(); i++) for (int j = 0; j < c.kvLen(); j++) {
            boolean topLeft = CausalAlignment.TOP_LEFT.allows(i, j, c.qLen(), c.kvLen());
            boolean bottomRight = CausalAlignment.BOTTOM_RIGHT.allows(i, j, c.qLen(), c.kvLen());
            assertThat(topLeft).isEqualTo(j <= i);
            assertThat(bottomRight).isEqualTo(j <= i + c.kvLen() - c.qLen());
            if (c.qLen() == c.kvLen()) assertThat(topLeft).isEqualTo(bottomRight);
        }
    }

    @Example
    void hugeLogitsDoNotOverflow() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.of(arena, new float[] {1e4f, -1e4f}, 1, 1, 1, 2);
            Tensor k = Tensor.of(arena, new float[] {1e4f, 0f, 0f, 1e4f}, 1, 1, 2, 2);
            Tensor v = Tensor.of(arena, new float[] {1f, 2f}, 1, 1, 2, 1);
            var r = DenseReference.attention(q, k, v, MaskFunction.all(), 1.0);
            assertThat(r.output(0, 0, 0, 0)).isCloseTo(1.0, within(1e-12));
            assertThat(r.logSumExp(0, 0, 0)).isCloseTo(1e8, within(1e-3));
        }
    }

    @Example
    void badShapesNameTheParameter() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.zeros(arena, 1, 4, 3, 8);
            assertThatThrownBy(() -> DenseReference.attention(q, Tensor.zeros(arena, 1, 3, 5, 8), Tensor.zeros(arena, 1, 3, 5, 8)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("k heads=3 must divide q heads=4");
            assertThatThrownBy(() -> DenseReference.attention(q, Tensor.zeros(arena, 1, 2, 5, 7), Tensor.zeros(arena, 1, 2, 5, 8)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("k head dim (dim 3)=7");
            assertThatThrownBy(() -> DenseReference.attention(q, Tensor.zeros(arena, 1, 2, 5, 8), Tensor.zeros(arena, 1, 2, 6, 8)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("v length (dim 2)=6");
            assertThatThrownBy(() -> DenseReference.attention(Tensor.zeros(arena, 4, 3, 8), q, q))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("q must be rank 4");
        }
    }

    static int[] permutation(int n, long seed) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = p[i]; p[i] = p[j]; p[j] = t;
        }
        return p;
    }
}
