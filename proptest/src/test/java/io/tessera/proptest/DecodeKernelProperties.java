package io.tessera.proptest;

import static io.tessera.proptest.PagedAttentionProperties.fill;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.backend.PagedAttentionDevice;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.layout.HeadLayouts;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.proptest.PagedAttentionProperties.Filled;
import io.tessera.proptest.PagedAttentionProperties.Setup;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * The decode kernel ({@link PagedAttentionDevice} of the scalar and SIMD backends, reached through
 * {@link PagedAttention}): caches long enough to be cut into several splits (512 keys each), batches
 * of sequences of different lengths, grouped-query heads and patterns placed bottom-right, against
 * the float64 oracle over each sequence's cache contents; NaN everywhere else in the pool; the same
 * bits for any thread count and from both kernels.
 */
class DecodeKernelProperties {

    /** Up to 1,600 tokens per sequence (4 splits), pages from 1 token to larger than a split. */
    @Provide
    Arbitrary<Setup> longSetups() {
        return Combinators.combine(
                Arbitraries.integers().between(1, 3), Arbitraries.integers().between(1, 3), Arbitraries.of(1, 2, 4),
                Arbitraries.of(1, 5, 8, 16, 19), Arbitraries.of(1, 3, 16, 35, 64, 96),
                Arbitraries.of(1, 7, 16, 64, 100, 600), Arbitraries.integers().between(1, 1600),
                Arbitraries.integers().between(1, 16).edgeCases(c -> c.includeOnly(1)))
            .as((seqs, kvh, g, d, dv, p, len, qLen) -> new Setup(seqs, kvh, g, d, dv, p, len, qLen, 0))
            .flatMap(s -> Arbitraries.longs().map(seed -> new Setup(s.sequences(), s.kvHeads(), s.group(), s.headDim(), s.valueDim(), s.pageSize(), s.maxLength(), s.qLen(), seed)));
    }

    /** Mistral's window, StreamingLLM's sinks + window, causal, full, a strided and a block-local pattern. */
    @Provide
    Arbitrary<Pattern> patterns() {
        Arbitrary<Integer> w = Arbitraries.integers().between(0, 700);
        return Arbitraries.oneOf(
                Arbitraries.just(Pattern.full()),
                Arbitraries.just(Pattern.causal()),
                w.map(x -> Pattern.causal().and(Pattern.slidingWindow(x, 0))),
                Combinators.combine(w, Arbitraries.integers().between(1, 4)).as((x, sinks) -> Pattern.causal().and(Pattern.slidingWindow(x, 0).or(Pattern.keyPrefix(sinks)))),
                Arbitraries.integers().between(1, 5).map(x -> Pattern.causal().and(Pattern.stride(x))),
                Arbitraries.integers().between(1, 90).map(x -> Pattern.causal().and(Pattern.blockLocal(x))));
    }

    @Provide
    Arbitrary<Backend> backends() {
        return Arbitraries.of(Backend.named("scalar"), Backend.named("simd"), Backend.named("simd").withThreads(1), new PerPage(Backend.named("simd")));
    }

    /**
     * One batched call over every sequence of the cache (pages interleaved in a pool whose unused
     * slots hold NaN) equals the float64 oracle over each sequence's keys and values, and the
     * outputs are finite: no NaN from a free page or a page's unused tail reaches them.
     */
    @Property(tries = 60)
    void batchedDecodeEqualsTheOracle(@ForAll("longSetups") Setup s, @ForAll("patterns") Pattern pattern, @ForAll("backends") Backend backend) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, 2, true);
            PagedAttention decode = PagedAttention.of(pattern).on(backend);
            int[] sequences = new int[s.sequences()];
            for (int b = 0; b < sequences.length; b++) sequences[b] = sequences.length - 1 - b;   // any order
            Tensor q = Tensor.randomNormal(arena, s.seed() + 30, 1f, sequences.length, s.heads(), s.qLen(), s.headDim());
            Tensor out = Tensor.zeros(arena, sequences.length, s.heads(), s.qLen(), s.valueDim());
            Tensor lse = Tensor.zeros(arena, sequences.length, s.heads(), s.qLen());
            decode.forward(f.cache(), sequences, q, out, lse);
            double scale = 1.0 / Math.sqrt(s.headDim());
            for (int b = 0; b < sequences.length; b++) {
                int seq = sequences[b], length = f.cache().length(seq);
                Tensor qb = q.slice(0, b, b + 1), ob = out.slice(0, b, b + 1), lb = lse.slice(0, b, b + 1);
                MaskFunction mask = decode.pattern().asMask(s.qLen(), length);
                Tensor k = f.keys()[seq], v = f.values()[seq];
                DenseReference.Result oracle = DenseReference.attention(qb, k, v, mask, scale);
                Tolerance tolerance = Tolerance.exact(qb, k, v, scale, DenseReference.naiveFloat32(qb, k, v, mask, scale), oracle);
                for (float x : ob.toArray()) assertThat(x).as("output of sequence %d", seq).isFinite();
                assertThat(Tolerance.maxError(ob, oracle.output())).as("output of sequence %d (length %d) under %s", seq, length, decode)
                        .isLessThanOrEqualTo(tolerance.output());
                assertThat(Tolerance.maxError(lb, oracle.logSumExp())).as("LSE of sequence %d (length %d) under %s", seq, length, decode)
                        .isLessThanOrEqualTo(tolerance.logSumExp());
            }
        }
    }

    /**
     * A query's output depends only on the tokens it attends: after every key and value the pattern
     * excludes for all query rows of the sequence (and every slot of other sequences and free pages)
     * is set to NaN or ±∞, the output and LSE are bit-identical.
     */
    @Property(tries = 40)
    void poisonOutsideTheAttendedTokensNeverLeaksIn(@ForAll("longSetups") Setup s, @ForAll("patterns") Pattern pattern, @ForAll("backends") Backend backend) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, 1, true);
            KvCache cache = f.cache();
            PagedAttention decode = PagedAttention.of(pattern).on(backend);
            int seq = (int) Math.floorMod(s.seed(), (long) s.sequences()), length = cache.length(seq);
            Tensor q = Tensor.randomNormal(arena, s.seed() + 7, 1f, 1, s.heads(), s.qLen(), s.headDim());
            Tensor clean = decode.forward(arena, cache, seq, q);
            Tensor cleanLse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
            decode.forward(cache, seq, q, Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), cleanLse);
            MaskFunction mask = decode.pattern().asMask(s.qLen(), length);
            boolean[] attended = new boolean[(int) cache.keyStorage().size(2)];
            for (int t = 0; t < length; t++) {
                boolean any = false;
                for (int i = 0; i < s.qLen() && !any; i++) any = mask.allowed(0, 0, i, t);
                if (any) attended[cache.page(seq, t / s.pageSize()) * s.pageSize() + t % s.pageSize()] = true;
            }
            float[] poison = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
            for (int slot = 0; slot < attended.length; slot++) {
                if (attended[slot]) continue;
                for (int h = 0; h < s.kvHeads(); h++) {
                    cache.keyStorage().slice(2, slot, slot + 1).slice(1, h, h + 1).fill(poison[(slot + h) % 3]);
                    cache.valueStorage().slice(2, slot, slot + 1).slice(1, h, h + 1).fill(poison[(slot + h + 1) % 3]);
                }
            }
            Tensor dirty = decode.forward(arena, cache, seq, q);
            Tensor dirtyLse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
            decode.forward(cache, seq, q, Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), dirtyLse);
            assertThat(dirty.toArray()).containsExactly(clean.toArray());
            assertThat(dirtyLse.toArray()).containsExactly(cleanLse.toArray());
        }
    }

    /**
     * Split-KV is deterministic: the splits are fixed by the page size and combined in order, so a
     * batched step gives the same bits with 1, 2 or 3 threads; and the scalar kernel is the SIMD
     * kernel's twin (same tile walk, base-2 softmax, 2^x, interleaved sums and fma order), float for
     * float, at every vector width the suite runs under.
     */
    @Property(tries = 40)
    void bitIdenticalForAnyThreadCountAndBetweenTheTwins(@ForAll("longSetups") Setup s, @ForAll("patterns") Pattern pattern) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, 1, true);
            int[] sequences = new int[s.sequences()];
            for (int b = 0; b < sequences.length; b++) sequences[b] = b;
            Tensor q = Tensor.randomNormal(arena, s.seed() + 5, 1f, sequences.length, s.heads(), s.qLen(), s.headDim());
            float[][] reference = step(arena, f.cache(), sequences, q, pattern, Backend.named("simd").withThreads(1));
            for (Backend be : new Backend[] {Backend.named("simd").withThreads(2), Backend.named("simd").withThreads(3),
                                             Backend.named("scalar").withThreads(1), Backend.named("scalar").withThreads(2)}) {
                float[][] got = step(arena, f.cache(), sequences, q, pattern, be);
                assertSameFloats("output, " + be, reference[0], got[0]);
                assertSameFloats("lse, " + be, reference[1], got[1]);
            }
        }
    }

    /**
     * Speculative decoding: one step over k draft tokens (causal, so query i sits at position
     * length − k + i) gives each draft the same bits as decoding the drafts one at a time, each step
     * against the cache rolled back to that draft's position with {@link KvCache#truncate}. For a
     * given row both walk the same splits and chunks (which start at each split's first page): a key
     * past the row's position is masked and adds exact zeros, a split past it contributes nothing. So
     * which drafts a decoder accepts does not depend on how many it verified at once. (With a window
     * the rows' union of windows may start a page earlier than one row's, and with it the chunks: there
     * only the oracle's tolerance is promised, batchedDecodeEqualsTheOracle.)
     */
    @Property(tries = 30)
    void verifyingDraftsAtOnceEqualsDecodingThemOneByOne(@ForAll("longSetups") Setup s, @ForAll("backends") Backend backend) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, 2, true);
            KvCache cache = f.cache();
            int seq = s.sequences() - 1, length = cache.length(seq), drafts = Math.min(s.qLen(), length), dv = s.valueDim();
            Tensor q = Tensor.randomNormal(arena, s.seed() + 9, 1f, 1, s.heads(), drafts, s.headDim());
            float[][] all = step(arena, cache, new int[] {seq}, q, Pattern.causal(), backend);
            for (int i = drafts - 1; i >= 0; i--) {
                cache.truncate(seq, length - drafts + i + 1);
                float[][] one = step(arena, cache, new int[] {seq}, q.slice(2, i, i + 1), Pattern.causal(), backend);
                for (int h = 0; h < s.heads(); h++) {
                    String where = "draft " + i + " of " + drafts + ", head " + h + ", " + backend;
                    assertSameFloats("output, " + where, java.util.Arrays.copyOfRange(all[0], (h * drafts + i) * dv, (h * drafts + i + 1) * dv),
                            java.util.Arrays.copyOfRange(one[0], h * dv, (h + 1) * dv));
                    assertSameFloats("lse, " + where, new float[] {all[1][h * drafts + i]}, new float[] {one[1][h]});
                }
            }
        }
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * A BF16 or F16 cache is read by the decode kernel itself (widened as it is read, float32
     * arithmetic), across several splits: within the EXACT contract of the float64 oracle on the
     * rounded keys and values (the rounding happened once, at append; what remains is float32
     * arithmetic, so the float32 tolerance of the same inputs applies, as in
     * HalfPrecisionProperties), and the scalar and SIMD kernels, at 1 and 2 threads, give the same bits.
     */
    @Property(tries = 30)
    void halfPrecisionCachesEqualTheOracleOnTheRoundedTokensAndTheTwinsAgree(@ForAll("longSetups") Setup s, @ForAll("patterns") Pattern pattern,
                                                                             @ForAll("halfTypes") ElementType type) {
        checkHalfPrecisionCache(s, pattern, type);
    }

    /**
     * Head dims whose half-precision rows the SIMD kernel reads where they lie in the pool (bfloat16
     * widened in registers) at every vector width up to 512 bits: whole blocks of 16 key and 32
     * value dimensions. (longSetups' dims rarely meet both at once.)
     */
    @Provide
    Arbitrary<Setup> inPlaceSetups() {
        return Combinators.combine(
                Arbitraries.integers().between(1, 2), Arbitraries.of(1, 2, 4), Arbitraries.of(32, 64, 128), Arbitraries.of(32, 64, 128),
                Arbitraries.of(1, 16, 100), Arbitraries.integers().between(1, 700), Arbitraries.integers().between(1, 5), Arbitraries.longs())
            .as((kvh, g, d, dv, p, len, qLen, seed) -> new Setup(1, kvh, g, d, dv, p, len, qLen, seed));
    }

    /** {@link #halfPrecisionCachesEqualTheOracleOnTheRoundedTokensAndTheTwinsAgree} where the SIMD kernel reads the half-precision rows in place. */
    @Property(tries = 20)
    void halfPrecisionCachesReadInPlaceEqualTheOracleAndTheTwinsAgree(@ForAll("inPlaceSetups") Setup s, @ForAll("patterns") Pattern pattern,
                                                                      @ForAll("halfTypes") ElementType type) {
        checkHalfPrecisionCache(s, pattern, type);
    }

    private static void checkHalfPrecisionCache(Setup s, Pattern pattern, ElementType type) {
        try (Arena arena = Arena.ofShared()) {
            int length = 1 + (int) Math.floorMod(s.seed(), (long) s.maxLength());
            KvCache cache = KvCache.allocate(arena, type, 1, (length + s.pageSize() - 1) / s.pageSize(), s.pageSize(), s.kvHeads(), s.headDim(), s.valueDim());
            Tensor k = Tensor.randomNormal(arena, s.seed() + 1, 1f, 1, s.kvHeads(), length, s.headDim());
            Tensor v = Tensor.randomNormal(arena, s.seed() + 2, 1f, 1, s.kvHeads(), length, s.valueDim());
            int half = length / 2;
            if (half > 0) cache.append(0, k.slice(2, 0, half), v.slice(2, 0, half));
            cache.append(0, k.slice(2, half, length), v.slice(2, half, length));
            Tensor q = Tensor.randomNormal(arena, s.seed() + 3, 1f, 1, s.heads(), s.qLen(), s.headDim());
            float[][] simd = step(arena, cache, new int[] {0}, q, pattern, Backend.named("simd").withThreads(2));
            for (Backend be : new Backend[] {Backend.named("simd").withThreads(1), Backend.named("scalar").withThreads(1)}) {
                float[][] got = step(arena, cache, new int[] {0}, q, pattern, be);
                assertSameFloats("output, " + type + ", " + be, simd[0], got[0]);
                assertSameFloats("lse, " + type + ", " + be, simd[1], got[1]);
            }
            Tensor kRounded = k.to(arena, type), vRounded = v.to(arena, type);
            double scale = 1.0 / Math.sqrt(s.headDim());
            MaskFunction m = PagedAttention.of(pattern).pattern().asMask(s.qLen(), length);
            DenseReference.Result oracle = DenseReference.attention(q, kRounded, vRounded, m, scale);
            Tolerance tolerance = Tolerance.exact(q, kRounded, vRounded, scale, DenseReference.naiveFloat32(q, kRounded, vRounded, m, scale), oracle);
            assertThat(Tolerance.maxError(simd[0], oracle.output())).as("output with a %s cache of %d tokens", type, length).isLessThanOrEqualTo(tolerance.output());
            assertThat(Tolerance.maxError(simd[1], oracle.logSumExp())).as("LSE with a %s cache of %d tokens", type, length).isLessThanOrEqualTo(tolerance.logSumExp());
        }
    }

    /**
     * The fused kernel's error contract, in the decode kernel: scores that leave float32's range
     * from finite inputs (q·k·scale reaching +∞, or −∞ for every key a row attends, which would
     * otherwise read as a fully masked row) throw an ArithmeticException naming the first (batch,
     * head, query row); an infinity or NaN in a row's own query gives that row NaN output and NaN
     * LSE while the other rows stay finite.
     */
    @Example
    void scoresThatOverflowFloat32AreAClearErrorAndBadQueriesGiveNaNRows() {
        for (String backend : new String[] {"scalar", "simd"}) {
            for (float sign : new float[] {1f, -1f}) {
                try (Arena arena = Arena.ofShared()) {
                    int kvHeads = 2, heads = 4, d = 8, length = 1300, pageSize = 16;
                    KvCache cache = KvCache.allocate(arena, 2, 2 * (length / pageSize + 1), pageSize, kvHeads, d, d);
                    for (int seq = 0; seq < 2; seq++) {
                        Tensor k = Tensor.randomNormal(arena, 40 + seq, 1f, 1, kvHeads, length, d);
                        for (int j = 0; j < length; j++) for (int c = 0; c < d; c++) k.set(Math.abs(k.get(0, 1, j, c)) * 1e20f + 1f, 0, 1, j, c);
                        cache.append(seq, k, Tensor.randomNormal(arena, 50 + seq, 1f, 1, kvHeads, length, d));
                    }
                    PagedAttention decode = PagedAttention.dense().on(Backend.named(backend).withThreads(2));
                    Tensor q = Tensor.randomNormal(arena, 60, 1f, 2, heads, 2, d);
                    for (int c = 0; c < d; c++) q.set(sign * 1e20f, 1, 3, 1, c);   // sequence 1, head 3 (KV head 1), query 1
                    Tensor out = Tensor.zeros(arena, 2, heads, 2, d), lse = Tensor.zeros(arena, 2, heads, 2);
                    assertThatThrownBy(() -> decode.forward(cache, new int[] {0, 1}, q, out, lse)).as("%s, sign %s", backend, sign)
                            .isInstanceOf(ArithmeticException.class).hasMessageContaining("overflowed float32 at batch 1, head 3, query row 1");
                    // An infinity in that query is garbage in the row's own input: NaN, no error; a NaN likewise.
                    q.set(Float.POSITIVE_INFINITY, 1, 3, 1, 0);
                    q.set(Float.NaN, 0, 2, 0, 5);
                    decode.forward(cache, new int[] {0, 1}, q, out, lse);
                    for (int b = 0; b < 2; b++) for (int h = 0; h < heads; h++) for (int i = 0; i < 2; i++) {
                        boolean bad = b == 1 && h == 3 && i == 1 || b == 0 && h == 2 && i == 0;
                        assertThat(lse.get(b, h, i)).as("%s LSE (%d, %d, %d)", backend, b, h, i).matches(x -> bad ? Float.isNaN(x) : Float.isFinite(x));
                        for (int c = 0; c < d; c++) assertThat(out.get(b, h, i, c)).as("%s output (%d, %d, %d)", backend, b, h, i).matches(x -> bad ? Float.isNaN(x) : Float.isFinite(x));
                    }
                }
            }
        }
    }

    private static float[][] step(Arena arena, KvCache cache, int[] sequences, Tensor q, Pattern pattern, Backend backend) {
        Tensor out = Tensor.zeros(arena, q.size(0), q.size(1), q.size(2), cache.valueDim()), lse = Tensor.zeros(arena, q.size(0), q.size(1), q.size(2));
        PagedAttention.of(pattern).on(backend).forward(cache, sequences, q, out, lse);
        return new float[][] {out.toArray(), lse.toArray()};
    }

    private static void assertSameFloats(String what, float[] expected, float[] actual) {
        for (int i = 0; i < expected.length; i++) {
            if (!(expected[i] == actual[i] || (Float.isNaN(expected[i]) && Float.isNaN(actual[i])))) {
                throw new AssertionError(what + "[" + i + "]: " + expected[i] + " vs " + actual[i]);
            }
        }
    }

    // Allocation per decode step (less than 1 KiB once warmed up, nothing per page): DecodeAllocationTest.

    /** The simd backend without its decode kernel: PagedAttention's per-page path (what backends without one get). */
    record PerPage(Backend inner) implements Backend {
        @Override public String name() { return "per-page " + inner.name(); }
        @Override public String description() { return inner.description(); }
        @Override public boolean isAvailable() { return inner.isAvailable(); }
        @Override public int priority() { return -1; }
        @Override public int preferredBlockQ() { return inner.preferredBlockQ(); }
        @Override public int preferredBlockKV() { return inner.preferredBlockKV(); }
        @Override public Backend withThreads(int threads) { return new PerPage(inner.withThreads(threads)); }
        @Override public void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
            inner.attention(q, k, v, layouts, scale, out, lse);
        }
        @Override public void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, io.tessera.pattern.ScoreMod mod, Tensor out, Tensor lse) {
            inner.attention(q, k, v, layouts, scale, mod, out, lse);
        }
        @Override public void gemm(Tensor a, boolean ta, Tensor b, boolean tb, Tensor c, float alpha, float beta) { inner.gemm(a, ta, b, tb, c, alpha, beta); }
        @Override public String toString() { return name(); }
    }
}
