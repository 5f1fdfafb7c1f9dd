package io.tessera.proptest;

import static io.tessera.proptest.FusedAttentionProperties.mask;
import static io.tessera.proptest.FusedAttentionProperties.predicate;
import static io.tessera.proptest.FusedAttentionProperties.spec;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionGradients;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.proptest.FusedAttentionProperties.MaskKind;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
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
 * The backward pass of the fused kernel against float64 gradients: the oracle's own gradients
 * against central finite differences, then every backend, mask, pattern and block size against the
 * oracle, thread-count bit identity, the scalar/SIMD twins against each other, and the rows-only-
 * see-what-they-attend guarantee for gradients.
 */
class GradientProperties {

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(33, 33, 11); }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    /**
     * The analytic float64 gradients are the derivative of L = Σ dOut ∘ attention(q, k, v): central
     * differences in float64 (on float32 inputs, so the step actually taken is measured) agree to
     * O(h²) + O(ε/h).
     */
    @Property(tries = 25)
    void oracleGradientsAreTheDerivative(@ForAll("smallCases") AttentionCase c, @ForAll MaskKind kind) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
            MaskFunction m = mask(predicate(kind, c.qLen(), c.kvLen(), c.seed()));
            double scale = 0.7;
            DenseReference.Gradients g = DenseReference.gradients(q, k, v, dOut, m, scale);
            checkFiniteDifferences(q, g.dq(), q, k, v, dOut, m, scale);
            checkFiniteDifferences(k, g.dk(), q, k, v, dOut, m, scale);
            checkFiniteDifferences(v, g.dv(), q, k, v, dOut, m, scale);
        }
    }

    @Provide
    Arbitrary<AttentionCase> smallCases() { return AttentionCase.cases(5, 5, 3); }

    private static void checkFiniteDifferences(Tensor x, double[] analytic, Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction m, double scale) {
        float[] values = x.toArray();
        for (int i = 0; i < values.length; i++) {
            long[] index = unravel(x.shape(), i);
            float original = values[i];
            float plus = original + 0x1p-8f, minus = original - 0x1p-8f;
            x.set(plus, index);
            double lossPlus = loss(DenseReference.attention(q, k, v, m, scale), dOut);
            x.set(minus, index);
            double lossMinus = loss(DenseReference.attention(q, k, v, m, scale), dOut);
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

    /** One thread takes the single pass (dq, dk and dv per key/value head), two threads the two-pass schedule here. */
    @Property(tries = 30)
    void blocksOfSeveralLaneGroupsMatchTheGradientOracle(@ForAll("severalGroups") AttentionCase c, @ForAll MaskKind kind, @ForAll @IntRange(min = 1, max = 2) int threads,
                                                         @ForAll @IntRange(min = 33, max = 130) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(Backend.named("simd").withThreads(threads)).withBlockSizes(blockQ, blockKV);
            checkGradients(arena, attn, c, mask(p), Float.NaN);
        }
    }

    @Property(tries = 120)
    void matchesTheMaskedGradientOracle(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend,
                                        @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(Backend.named(backend)).withBlockSizes(blockQ, blockKV);
            checkGradients(arena, attn, c, mask(p), Float.NaN);
        }
    }

    /** Every pattern the compiler can produce, at the backend's own block sizes, with a custom scale. */
    @Property(tries = 100)
    void compiledPatternsMatchTheGradientOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            checkGradients(arena, Attention.sparse(pattern).on(Backend.named(backend)).withScale(0.3f), c, pattern.asMask(c.qLen(), c.kvLen()), 0.3f);
        }
    }

    /** No atomics and one writer per gradient row: the same bits for 1, 2 and 3 threads. */
    @Property(tries = 40)
    void gradientsAreBitIdenticalForAnyThreadCount(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend,
                                                   @ForAll @IntRange(min = 1, max = 17) int blockQ) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), dOut = dOut(arena, c);
            Backend be = Backend.named(backend);
            Attention one = Attention.sparse(spec(kind.name(), predicate(kind, c.qLen(), c.kvLen(), c.seed()))).on(be.withThreads(1)).withBlockSizes(blockQ, 16);
            AttentionResult fwd = one.forwardWithLse(arena, q, k, v);
            AttentionGradients expected = one.backward(arena, q, k, v, fwd.output(), fwd.logSumExp(), dOut);
            for (int threads : new int[] {2, 3}) {
                AttentionGradients got = one.on(be.withThreads(threads)).backward(arena, q, k, v, fwd.output(), fwd.logSumExp(), dOut);
                assertThat(got.dq().toArray()).containsExactly(expected.dq().toArray());
                assertThat(got.dk().toArray()).containsExactly(expected.dk().toArray());
                assertThat(got.dv().toArray()).containsExactly(expected.dv().toArray());
            }
        }
    }

    /**
     * The scalar kernel is the SIMD kernel's twin: same tile walk, same base-2 softmax and 2^x, every
     * sum in the same order with fused multiply-adds, score modifiers (tanh included) applied with
     * the same operations. Forward and backward, a bias table's gradient included, agree float for
     * float (a zero's sign may differ), at every vector width the suite runs under, in every storage:
     * half-precision inputs widened while packing (SIMD) or element by element (scalar), outputs
     * rounded once to F32, BF16 or F16, and half-precision outputs and loss gradients read back by
     * the backward pass.
     */
    @Property(tries = 120)
    void scalarAndSimdKernelsAreTwins(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("modsOrNone") ScoreModProperties.ModKind modKind,
                                      @ForAll @IntRange(min = 1, max = 40) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV,
                                      @ForAll HalfPrecisionProperties.Storage storage, @ForAll boolean f32Output) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena).to(arena, storage.q), k = c.k(arena).to(arena, storage.k), v = c.v(arena).to(arena, storage.v);
            Tensor dOut = dOut(arena, c).to(arena, storage.v);
            Attention attn = Attention.sparse(spec(kind.name(), predicate(kind, c.qLen(), c.kvLen(), c.seed()))).withBlockSizes(blockQ, blockKV)
                    .withScoreMod(modKind == null ? null : ScoreModProperties.mod(modKind, arena, c, c.seed()));
            Attention scalar = attn.on(Backend.named("scalar")), simd = attn.on(Backend.named("simd"));
            ElementType outType = storage.output(f32Output);
            AttentionResult a = forwardInto(arena, scalar, q, k, v, outType), b = forwardInto(arena, simd, q, k, v, outType);
            assertSameFloats("output", a.output(), b.output());
            assertSameFloats("lse", a.logSumExp(), b.logSumExp());
            AttentionGradients ga = scalar.backward(arena, q, k, v, a.output(), a.logSumExp(), dOut);
            AttentionGradients gb = simd.backward(arena, q, k, v, a.output(), a.logSumExp(), dOut);
            assertSameFloats("dq", ga.dq(), gb.dq());
            assertSameFloats("dk", ga.dk(), gb.dk());
            assertSameFloats("dv", ga.dv(), gb.dv());
            for (int p = 0; p < ga.scoreModGradients().size(); p++) {
                assertSameFloats("table " + p + " gradient", ga.scoreModGradients().get(p), gb.scoreModGradients().get(p));
            }
        }
    }

    /** No modifier (null) half the time, else any of them. */
    @Provide
    Arbitrary<ScoreModProperties.ModKind> modsOrNone() {
        return Arbitraries.of(ScoreModProperties.ModKind.class).injectNull(0.5);
    }

    private static AttentionResult forwardInto(Arena arena, Attention attn, Tensor q, Tensor k, Tensor v, ElementType outType) {
        AttentionShape s = AttentionShape.of(q, k, v);
        Tensor out = Tensor.zeros(arena, outType, s.outputShape()), lse = Tensor.zeros(arena, s.lseShape());
        attn.forwardWithLse(q, k, v, out, lse);
        return new AttentionResult(out, lse);
    }

    private static void assertSameFloats(String what, Tensor expected, Tensor actual) {
        float[] e = expected.toArray(), a = actual.toArray();
        for (int i = 0; i < e.length; i++) {
            if (!(e[i] == a[i] || (Float.isNaN(e[i]) && Float.isNaN(a[i])))) {
                throw new AssertionError(what + "[" + i + "]: scalar " + e[i] + " vs simd " + a[i]);
            }
        }
    }

    /**
     * A query's gradients, and a key's, depend only on the pairs the pattern allows: NaN and
     * infinities in keys, values, queries and loss gradients of rows outside the pairs leave every
     * other gradient exactly as with zeros there, in every storage (NaN and ±∞ exist in both half types).
     */
    @Property(tries = 60)
    void garbageOutsideTheAllowedPairsNeverLeaksIn(@ForAll("cases") AttentionCase c, @ForAll("backends") String backend,
                                                   @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 40) int blockKV,
                                                   @ForAll HalfPrecisionProperties.Storage storage) {
        // Rows i < half attend keys j < half; rows i ≥ half attend keys j ≥ half (two documents).
        int qHalf = (c.qLen() + 1) / 2, kvHalf = (c.kvLen() + 1) / 2;
        if (qHalf == c.qLen() || kvHalf == c.kvLen()) return;   // needs two non-empty documents
        ElementPredicate twoDocuments = (i, j) -> (i < qHalf) == (j < kvHalf);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena).to(arena, storage.q), k = c.k(arena).to(arena, storage.k), v = c.v(arena).to(arena, storage.v);
            Tensor dOut = dOut(arena, c).to(arena, storage.v);
            Attention attn = Attention.sparse(spec("two documents", twoDocuments)).on(Backend.named(backend)).withBlockSizes(blockQ, blockKV);
            assertSecondDocumentNeverLeaksIn(attn, arena, c, q, k, v, dOut, qHalf, kvHalf);
        }
    }

    /**
     * Runs {@code attn} (two documents: rows i &lt; qHalf attend keys j &lt; kvHalf, the rest the rest)
     * forward and backward, poisons the second document's keys, values, queries and loss gradients
     * with NaN and ±∞ in place, runs it again, and asserts the first document's outputs and
     * gradients are bit-identical to the clean run's.
     */
    static void assertSecondDocumentNeverLeaksIn(Attention attn, Arena arena, AttentionCase c, Tensor q, Tensor k, Tensor v, Tensor dOut,
                                                 int qHalf, int kvHalf) {
        AttentionResult clean = attn.forwardWithLse(arena, q, k, v);
        AttentionGradients cleanGrads = attn.backward(arena, q, k, v, clean.output(), clean.logSumExp(), dOut);
        // Poison the second document's keys, values, queries and loss gradients.
        float[] poison = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        for (int j = kvHalf; j < c.kvLen(); j++) {
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.kvHeads(); h++) {
                k.set(poison[j % 3], b, h, j, 0);
                v.set(poison[(j + 1) % 3], b, h, j, c.valueDim() - 1);
            }
        }
        for (int i = qHalf; i < c.qLen(); i++) {
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) {
                q.set(poison[i % 3], b, h, i, c.headDim() - 1);
                dOut.set(poison[(i + 2) % 3], b, h, i, 0);
            }
        }
        AttentionResult dirty = attn.forwardWithLse(arena, q, k, v);
        AttentionGradients dirtyGrads = attn.backward(arena, q, k, v, dirty.output(), dirty.logSumExp(), dOut);
        for (int b = 0; b < c.batch(); b++) {
            for (int h = 0; h < c.heads(); h++) {
                for (int i = 0; i < qHalf; i++) {
                    for (int x = 0; x < c.valueDim(); x++) assertThat(dirty.output().get(b, h, i, x)).isEqualTo(clean.output().get(b, h, i, x));
                    for (int x = 0; x < c.headDim(); x++) assertThat(dirtyGrads.dq().get(b, h, i, x)).isEqualTo(cleanGrads.dq().get(b, h, i, x));
                }
            }
            for (int h = 0; h < c.kvHeads(); h++) {
                for (int j = 0; j < kvHalf; j++) {
                    for (int x = 0; x < c.headDim(); x++) assertThat(dirtyGrads.dk().get(b, h, j, x)).isEqualTo(cleanGrads.dk().get(b, h, j, x));
                    for (int x = 0; x < c.valueDim(); x++) assertThat(dirtyGrads.dv().get(b, h, j, x)).isEqualTo(cleanGrads.dv().get(b, h, j, x));
                }
            }
        }
    }

    @Example
    void fullyMaskedRowsAndUnattendedKeysGetZeroGradients() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 37, 5), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, 29, 5);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 1, 29, 3), dOut = Tensor.randomNormal(arena, 4, 1f, 1, 2, 37, 3);
            // Odd rows attend nothing; keys ≥ 20 are attended by nobody.
            ElementPredicate p = (i, j) -> i % 2 == 0 && j < 20;
            for (Backend be : Backend.available()) {
                Attention attn = Attention.sparse(spec("odd rows empty", p)).on(be).withBlockSizes(8, 8);
                AttentionResult r = attn.forwardWithLse(arena, q, k, v);
                AttentionGradients g = attn.backward(arena, q, k, v, r.output(), r.logSumExp(), dOut);
                for (int h = 0; h < 2; h++) {
                    for (int i = 1; i < 37; i += 2) for (int x = 0; x < 5; x++) assertThat(g.dq().get(0, h, i, x)).isEqualTo(0f);
                }
                for (int j = 20; j < 29; j++) {
                    for (int x = 0; x < 5; x++) assertThat(g.dk().get(0, 0, j, x)).isEqualTo(0f);
                    for (int x = 0; x < 3; x++) assertThat(g.dv().get(0, 0, j, x)).isEqualTo(0f);
                }
                for (Tensor t : new Tensor[] {g.dq(), g.dk(), g.dv()}) for (float x : t.toArray()) assertThat(x).isFinite();
                checkGradients(arena, attn, q, k, v, dOut, mask(p), Float.NaN);
            }
        }
    }

    @Example
    void badInputsNameTheParameter() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 4, 8, 16), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, 10, 16), v = Tensor.randomNormal(arena, 3, 1f, 1, 2, 10, 16);
            Tensor out = Tensor.zeros(arena, 1, 4, 8, 16), lse = Tensor.zeros(arena, 1, 4, 8), dOut = Tensor.zeros(arena, 1, 4, 8, 16);
            Tensor dq = Tensor.zeros(arena, 1, 4, 8, 16), dk = Tensor.zeros(arena, 1, 2, 10, 16), dv = Tensor.zeros(arena, 1, 2, 10, 16);
            for (Backend be : Backend.available()) {
                Attention dense = Attention.dense().on(be);
                assertThatThrownBy(() -> dense.backward(q, k, v, out, null, dOut, dq, dk, dv))
                        .isInstanceOf(NullPointerException.class).hasMessageContaining("lse");
                assertThatThrownBy(() -> dense.backward(q, k, v, out, lse, Tensor.zeros(arena, 1, 4, 8, 15), dq, dk, dv))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dOut shape [1, 4, 8, 15]");
                assertThatThrownBy(() -> dense.backward(q, k, v, out, lse, dOut, dq, dv, dk.slice(2, 0, 9)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dv shape");
                assertThatThrownBy(() -> dense.backward(q, k, v, out, lse, dOut, q, dk, dv))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dq shares memory with q");
                assertThatThrownBy(() -> dense.backward(q, k, v, out, lse, dOut, dq, dk, dk))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dk shares memory with dv");
                assertThatThrownBy(() -> dense.forward(q, k, v, q))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("out shares memory with q");
                assertThatThrownBy(() -> dense.forwardWithLse(q, k, v, out, out.reshape(512).slice(0, 0, 32).reshape(1, 4, 8)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("lse shares memory with out");
            }
        }
    }

    private static Tensor dOut(Arena arena, AttentionCase c) {
        return Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
    }

    private static void checkGradients(Arena arena, Attention attn, AttentionCase c, MaskFunction mask, float scale) {
        checkGradients(arena, attn, c.q(arena), c.k(arena), c.v(arena), dOut(arena, c), mask, scale);
    }

    /** Each gradient within the EXACT contract: 10× the naive fp32 backward's error on the same input. */
    static void checkGradients(Arena arena, Attention attn, Tensor q, Tensor k, Tensor v, Tensor dOut, MaskFunction mask, float scale) {
        AttentionResult r = attn.forwardWithLse(arena, q, k, v);
        AttentionGradients g = attn.backward(arena, q, k, v, r.output(), r.logSumExp(), dOut);
        double sc = Float.isNaN(scale) ? (float) (1.0 / Math.sqrt(q.size(3))) : scale;
        DenseReference.Gradients oracle = DenseReference.gradients(q, k, v, dOut, mask, sc);
        DenseReference.Gradients naive = DenseReference.naiveFloat32Gradients(q, k, v, dOut, mask, sc);
        assertThat(Tolerance.maxError(g.dq(), oracle.dq())).as("dq error of %s", attn)
                .isLessThanOrEqualTo(Tolerance.gradient(naive.dq(), oracle.dq()));
        assertThat(Tolerance.maxError(g.dk(), oracle.dk())).as("dk error of %s", attn)
                .isLessThanOrEqualTo(Tolerance.gradient(naive.dk(), oracle.dk()));
        assertThat(Tolerance.maxError(g.dv(), oracle.dv())).as("dv error of %s", attn)
                .isLessThanOrEqualTo(Tolerance.gradient(naive.dv(), oracle.dv()));
    }
}
