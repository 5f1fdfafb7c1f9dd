package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.ScoreMod;
import io.tessera.proptest.DecodeKernelProperties.PerPage;
import io.tessera.proptest.PagedAttentionProperties.Setup;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Score modifiers in paged decoding ({@code PagedAttention.withScoreMod}): every built-in modifier,
 * a user function and compositions × patterns (dense, causal, Mistral's window, StreamingLLM's sinks
 * + window, block-local, an arbitrary mask function, documents) × the decode kernels (scalar, SIMD)
 * and the per-page path of backends without one × F32 and BF16 caches, q-length 1..16, grouped-query
 * heads, several splits: equal to the float64 oracle (which takes the same modifier, placed
 * bottom-right: query i at position length − qLen + i) on each sequence's gathered tokens, with
 * NaN in every pool slot the sequence does not own; and bit-identical between the twins and for
 * any thread count.
 */
class DecodeScoreModProperties {

    enum ModKind { ALIBI, ALIBI_PRESET, T5_TABLE, CLIPPED_TABLE, SOFT_CAP, HEAD_BIAS, KEY_BIAS, FUNCTION, ALIBI_THEN_SOFT_CAP, FUNCTION_THEN_TABLE_THEN_SOFT_CAP }

    /** The modifier of {@code kind} for {@code heads} query heads ({@code length} keys for a per-key bias), random from {@code seed}. */
    static ScoreMod mod(ModKind kind, Arena arena, int heads, int length, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] slopes = new float[heads];
        for (int h = 0; h < heads; h++) slopes[h] = (float) r.nextDouble(-0.6, 0.6);
        float cap = (float) r.nextDouble(0.5, 3);
        ScoreMod clipped = ScoreMod.relativeBias(Tensor.randomNormal(arena, seed + 12, 1f, heads, 7), d -> Math.max(-3, Math.min(3, d)) + 3);
        // The function ignores the batch index: the oracle is run per sequence (batch 0).
        ScoreMod function = ScoreMod.of("wiggle", (b, h, i, j, s) -> s + 0.3 * Math.sin(s) + 0.05 * ((i + 2 * j + h) % 5));
        return switch (kind) {
            case ALIBI -> ScoreMod.alibi(slopes);
            case ALIBI_PRESET -> ScoreMod.alibi(ScoreMod.alibiSlopes(heads));
            case T5_TABLE -> ScoreMod.relativeBias(Tensor.randomNormal(arena, seed + 11, 1f, heads, 8), ScoreMod.t5Buckets(8, true, 20));
            case CLIPPED_TABLE -> clipped;
            case SOFT_CAP -> ScoreMod.softCap(cap);
            case HEAD_BIAS -> ScoreMod.bias(Tensor.randomNormal(arena, seed + 13, 2f, heads));
            case KEY_BIAS -> ScoreMod.bias(Tensor.randomNormal(arena, seed + 14, 1f, heads, length));
            case FUNCTION -> function;
            case ALIBI_THEN_SOFT_CAP -> ScoreMod.alibi(slopes).then(ScoreMod.softCap(cap));
            case FUNCTION_THEN_TABLE_THEN_SOFT_CAP -> function.then(clipped).then(ScoreMod.softCap(cap));
        };
    }

    /** Up to 1,200 tokens per sequence (3 splits of 512 keys), pages from 1 token to larger than a split. */
    @Provide
    Arbitrary<Setup> setups() {
        return Combinators.combine(
                Arbitraries.integers().between(1, 3), Arbitraries.integers().between(1, 2), Arbitraries.of(1, 2, 4),
                Arbitraries.of(1, 5, 16, 19), Arbitraries.of(1, 3, 16, 35),
                Arbitraries.of(1, 7, 16, 64, 600), Arbitraries.integers().between(1, 1200),
                Arbitraries.integers().between(1, 16).edgeCases(c -> c.includeOnly(1)))
            .as((seqs, kvh, g, d, dv, p, len, qLen) -> new Setup(seqs, kvh, g, d, dv, p, len, qLen, 0))
            .flatMap(s -> Arbitraries.longs().map(seed -> new Setup(s.sequences(), s.kvHeads(), s.group(), s.headDim(), s.valueDim(), s.pageSize(), s.maxLength(), s.qLen(), seed)));
    }

    /** Patterns whose rule does not depend on the length (so one batched call serves sequences of different lengths). */
    @Provide
    Arbitrary<Pattern> patterns() {
        Arbitrary<Integer> w = Arbitraries.integers().between(0, 600);
        return Arbitraries.oneOf(
                Arbitraries.just(Pattern.full()),
                Arbitraries.just(Pattern.causal()),
                w.map(x -> Pattern.causal().and(Pattern.slidingWindow(x, 0))),
                Combinators.combine(w, Arbitraries.integers().between(1, 4)).as((x, sinks) -> Pattern.causal().and(Pattern.slidingWindow(x, 0).or(Pattern.keyPrefix(sinks)))),
                Arbitraries.integers().between(1, 90).map(x -> Pattern.causal().and(Pattern.blockLocal(x))),
                // An arbitrary mask function (raw indices): every reached page is PARTIAL, its masks stored in the plan.
                Arbitraries.integers().between(2, 5).map(m -> Pattern.predicate("(3i + j) mod " + m + " != 0", (i, j) -> (3 * i + j) % m != 0)));
    }

    @Provide
    Arbitrary<Backend> backends() {
        return Arbitraries.of(Backend.named("scalar"), Backend.named("simd"), Backend.named("simd").withThreads(1), new PerPage(Backend.named("simd")));
    }

    @Provide
    Arbitrary<ElementType> types() { return Arbitraries.of(ElementType.F32, ElementType.BF16); }

    /** A cache of {@code type} holding the setup's sequences, appended in interleaved chunks; every slot NaN before. Tokens as stored (rounded). */
    record Filled(KvCache cache, Tensor[] keys, Tensor[] values) {}

    static Filled fill(Arena arena, Setup s, ElementType type) {
        SplittableRandom r = new SplittableRandom(s.seed());
        int[] lengths = new int[s.sequences()];
        int pages = 1;
        for (int i = 0; i < lengths.length; i++) {
            lengths[i] = 1 + r.nextInt(s.maxLength());
            pages += (lengths[i] + s.pageSize() - 1) / s.pageSize();
        }
        KvCache cache = KvCache.allocate(arena, type, s.sequences(), pages, s.pageSize(), s.kvHeads(), s.headDim(), s.valueDim());
        cache.keyStorage().fill(Float.NaN);
        cache.valueStorage().fill(Float.NaN);
        Tensor[] keys = new Tensor[lengths.length], values = new Tensor[lengths.length];
        int[] done = new int[lengths.length];
        for (int i = 0; i < lengths.length; i++) {
            keys[i] = Tensor.randomNormal(arena, s.seed() + 10 + i, 1f, 1, s.kvHeads(), lengths[i], s.headDim()).to(arena, type).to(arena, ElementType.F32);
            values[i] = Tensor.randomNormal(arena, s.seed() + 20 + i, 1f, 1, s.kvHeads(), lengths[i], s.valueDim()).to(arena, type).to(arena, ElementType.F32);
        }
        for (int left = lengths.length; left > 0; ) {
            int i = r.nextInt(lengths.length);
            if (done[i] == lengths[i]) continue;
            int n = Math.min(lengths[i] - done[i], 1 + r.nextInt(40));
            cache.append(i, keys[i].slice(2, done[i], done[i] + n), values[i].slice(2, done[i], done[i] + n));
            done[i] += n;
            if (done[i] == lengths[i]) left--;
        }
        return new Filled(cache, keys, values);
    }

    /**
     * One batched step (one call per sequence for a per-key bias, whose shape is the sequence's
     * length) equals, per sequence, the float64 oracle with the same modifier on the tokens as
     * stored, within the EXACT contract (the float32 tolerance of the same inputs and modifier).
     */
    @Property(tries = 60)
    void decodeWithAModifierEqualsTheOracle(@ForAll("setups") Setup s, @ForAll("patterns") Pattern pattern, @ForAll ModKind kind,
                                           @ForAll("backends") Backend backend, @ForAll("types") ElementType type) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, type);
            int batch = s.sequences();
            int[] sequences = new int[batch];
            for (int b = 0; b < batch; b++) sequences[b] = batch - 1 - b;   // any order
            Tensor q = Tensor.randomNormal(arena, s.seed() + 30, 1f, batch, s.heads(), s.qLen(), s.headDim());
            Tensor out = Tensor.zeros(arena, batch, s.heads(), s.qLen(), s.valueDim()), lse = Tensor.zeros(arena, batch, s.heads(), s.qLen());
            PagedAttention[] decodes = new PagedAttention[batch];
            if (kind == ModKind.KEY_BIAS) {
                for (int b = 0; b < batch; b++) {
                    decodes[b] = PagedAttention.of(pattern).withScoreMod(mod(kind, arena, s.heads(), f.cache().length(sequences[b]), s.seed() + b)).on(backend);
                    decodes[b].forward(f.cache(), sequences[b], q.slice(0, b, b + 1), out.slice(0, b, b + 1), lse.slice(0, b, b + 1));
                }
            } else {
                PagedAttention decode = PagedAttention.of(pattern).withScoreMod(mod(kind, arena, s.heads(), 0, s.seed())).on(backend);
                java.util.Arrays.fill(decodes, decode);
                decode.forward(f.cache(), sequences, q, out, lse);
            }
            double scale = 1.0 / Math.sqrt(s.headDim());
            for (int b = 0; b < batch; b++) {
                int seq = sequences[b], length = f.cache().length(seq);
                Tensor qb = q.slice(0, b, b + 1), ob = out.slice(0, b, b + 1), lb = lse.slice(0, b, b + 1);
                MaskFunction mask = decodes[b].pattern().asMask(s.qLen(), length);
                ScoreMod mod = decodes[b].scoreMod();
                Tensor k = f.keys()[seq], v = f.values()[seq];
                DenseReference.Result oracle = DenseReference.attention(qb, k, v, mask, scale, mod);
                Tolerance tolerance = Tolerance.exact(qb, k, v, scale, DenseReference.naiveFloat32(qb, k, v, mask, scale, mod), oracle);
                for (float x : ob.toArray()) assertThat(x).as("output of sequence %d", seq).isFinite();
                assertThat(Tolerance.maxError(ob, oracle.output())).as("output of sequence %d (length %d) under %s", seq, length, decodes[b])
                        .isLessThanOrEqualTo(tolerance.output());
                assertThat(Tolerance.maxError(lb, oracle.logSumExp())).as("LSE of sequence %d (length %d) under %s", seq, length, decodes[b])
                        .isLessThanOrEqualTo(tolerance.logSumExp());
            }
        }
    }

    /** The SIMD kernel and its scalar twin, at 1, 2 and 3 threads, give the same bits with every modifier. */
    @Property(tries = 30)
    void theTwinsAndAnyThreadCountGiveTheSameBits(@ForAll("setups") Setup s, @ForAll("patterns") Pattern pattern, @ForAll ModKind kind,
                                                  @ForAll("types") ElementType type) {
        try (Arena arena = Arena.ofShared()) {
            Setup one = kind == ModKind.KEY_BIAS ? new Setup(1, s.kvHeads(), s.group(), s.headDim(), s.valueDim(), s.pageSize(), s.maxLength(), s.qLen(), s.seed()) : s;
            Filled f = fill(arena, one, type);
            int[] sequences = new int[one.sequences()];
            for (int b = 0; b < sequences.length; b++) sequences[b] = b;
            ScoreMod mod = mod(kind, arena, one.heads(), f.cache().length(0), one.seed());
            Tensor q = Tensor.randomNormal(arena, one.seed() + 5, 1f, sequences.length, one.heads(), one.qLen(), one.headDim());
            float[][] reference = step(arena, f.cache(), sequences, q, pattern, mod, Backend.named("simd").withThreads(1));
            for (Backend be : new Backend[] {Backend.named("simd").withThreads(2), Backend.named("simd").withThreads(3),
                                             Backend.named("scalar").withThreads(1), Backend.named("scalar").withThreads(2)}) {
                float[][] got = step(arena, f.cache(), sequences, q, pattern, mod, be);
                assertSameFloats("output, " + be + ", " + mod, reference[0], got[0]);
                assertSameFloats("lse, " + be + ", " + mod, reference[1], got[1]);
            }
        }
    }

    /**
     * Documents (whose rule is defined for one total length) with a modifier: a single sequence of
     * two documents, decoded at its length, equals the oracle; the queries of the last document
     * never see the first one.
     */
    @Property(tries = 20)
    void documentsWithAModifierEqualTheOracle(@ForAll("setups") Setup s, @ForAll ModKind kind, @ForAll("backends") Backend backend, @ForAll("types") ElementType type) {
        try (Arena arena = Arena.ofShared()) {
            Setup one = new Setup(1, s.kvHeads(), s.group(), s.headDim(), s.valueDim(), s.pageSize(), Math.max(2, s.maxLength()), s.qLen(), s.seed());
            Filled f = fill(arena, one, type);
            int length = f.cache().length(0);
            if (length < 2) return;
            int first = 1 + (int) Math.floorMod(one.seed() >>> 8, (long) (length - 1));
            int qLen = Math.min(one.qLen(), length - first);   // the queries sit in the last document
            PagedAttention decode = PagedAttention.of(Pattern.documents(first, length - first)).withScoreMod(mod(kind, arena, one.heads(), length, one.seed())).on(backend);
            Tensor q = Tensor.randomNormal(arena, one.seed() + 3, 1f, 1, one.heads(), qLen, one.headDim());
            Tensor out = Tensor.zeros(arena, 1, one.heads(), qLen, one.valueDim()), lse = Tensor.zeros(arena, 1, one.heads(), qLen);
            decode.forward(f.cache(), 0, q, out, lse);
            double scale = 1.0 / Math.sqrt(one.headDim());
            MaskFunction mask = decode.pattern().asMask(qLen, length);
            DenseReference.Result oracle = DenseReference.attention(q, f.keys()[0], f.values()[0], mask, scale, decode.scoreMod());
            Tolerance tolerance = Tolerance.exact(q, f.keys()[0], f.values()[0], scale, DenseReference.naiveFloat32(q, f.keys()[0], f.values()[0], mask, scale, decode.scoreMod()), oracle);
            assertThat(Tolerance.maxError(out, oracle.output())).as("output under %s", decode).isLessThanOrEqualTo(tolerance.output());
            assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE under %s", decode).isLessThanOrEqualTo(tolerance.logSumExp());
        }
    }

    @Example
    void badModifiersAreRejectedByName() {
        try (Arena arena = Arena.ofShared()) {
            KvCache cache = KvCache.allocate(arena, 2, 8, 4, 1, 4, 4);
            cache.append(0, Tensor.zeros(arena, 1, 1, 6, 4), Tensor.zeros(arena, 1, 1, 6, 4));
            cache.append(1, Tensor.zeros(arena, 1, 1, 9, 4), Tensor.zeros(arena, 1, 1, 9, 4));
            Tensor q = Tensor.zeros(arena, 2, 2, 1, 4), out = Tensor.zeros(arena, 2, 2, 1, 4);
            // A modifier placed top-left contradicts decoding's bottom-right positions.
            assertThatThrownBy(() -> PagedAttention.dense().withScoreMod(ScoreMod.softCap(5f).aligned(CausalAlignment.TOP_LEFT)))
                    .hasMessageContaining("aligned TOP_LEFT");
            // A per-key bias is as long as one sequence: the other is named.
            PagedAttention keyBias = PagedAttention.dense().withScoreMod(ScoreMod.bias(Tensor.zeros(arena, 2, 6)));
            assertThatThrownBy(() -> keyBias.forward(cache, new int[] {0, 1}, q, out, null))
                    .hasMessageContaining("sequence 1 of the batch (length 9)").hasMessageContaining("bias has 6 keys but the call has kvLen=9");
            // Slopes for another head count.
            PagedAttention alibi = PagedAttention.dense().withScoreMod(ScoreMod.alibi(new float[] {1f, 2f, 3f}));
            assertThatThrownBy(() -> alibi.forward(cache, new int[] {0, 1}, q, out, null)).hasMessageContaining("alibi has 3 slopes but the call has 2 query heads");
        }
    }

    private static float[][] step(Arena arena, KvCache cache, int[] sequences, Tensor q, Pattern pattern, ScoreMod mod, Backend backend) {
        Tensor out = Tensor.zeros(arena, q.size(0), q.size(1), q.size(2), cache.valueDim()), lse = Tensor.zeros(arena, q.size(0), q.size(1), q.size(2));
        PagedAttention.of(pattern).withScoreMod(mod).on(backend).forward(cache, sequences, q, out, lse);
        return new float[][] {out.toArray(), lse.toArray()};
    }

    private static void assertSameFloats(String what, float[] expected, float[] actual) {
        for (int i = 0; i < expected.length; i++) {
            if (!(expected[i] == actual[i] || (Float.isNaN(expected[i]) && Float.isNaN(actual[i])))) {
                throw new AssertionError(what + "[" + i + "]: " + expected[i] + " vs " + actual[i]);
            }
        }
    }
}
