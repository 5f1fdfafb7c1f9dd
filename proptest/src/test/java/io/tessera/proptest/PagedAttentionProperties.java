package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.Pattern;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
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
import net.jqwik.api.constraints.IntRange;

/**
 * {@link KvCache} and {@link PagedAttention}: decoding against a paged cache equals the float64
 * oracle on the gathered keys and values, appends copy only the new tokens, and windows read only
 * their pages.
 */
class PagedAttentionProperties {

    /** A batch of sequences appended in interleaved random chunks, so their pages are scattered in the pool. */
    record Setup(int sequences, int kvHeads, int group, int headDim, int valueDim, int pageSize, int maxLength, int qLen, long seed) {
        int heads() { return kvHeads * group; }
    }

    @Provide
    Arbitrary<Setup> setups() {
        return Combinators.combine(
                Arbitraries.integers().between(1, 3), Arbitraries.integers().between(1, 2), Arbitraries.of(1, 2, 3),
                Arbitraries.integers().between(1, 9), Arbitraries.integers().between(1, 9),
                Arbitraries.integers().between(1, 9).edgeCases(c -> c.includeOnly(1)), Arbitraries.integers().between(1, 48),
                Arbitraries.integers().between(1, 16).edgeCases(c -> c.includeOnly(1)))
            .as((s, kvh, g, d, dv, p, len, qLen) -> new Setup(s, kvh, g, d, dv, p, len, qLen, 0))
            .flatMap(s -> Arbitraries.longs().map(seed -> new Setup(s.sequences(), s.kvHeads(), s.group(), s.headDim(), s.valueDim(), s.pageSize(), s.maxLength(), s.qLen(), seed)));
    }

    /** Patterns that make sense against a cache (bottom-right), including Mistral's window and StreamingLLM's sinks + window. */
    @Provide
    Arbitrary<Pattern> patterns() {
        Arbitrary<Integer> w = Arbitraries.integers().between(0, 20);
        return Arbitraries.oneOf(
                Arbitraries.just(Pattern.full()),
                Arbitraries.just(Pattern.causal()),
                w.map(x -> Pattern.causal().and(Pattern.slidingWindow(x, 0))),
                Combinators.combine(w, Arbitraries.integers().between(1, 4)).as((x, sinks) -> Pattern.causal().and(Pattern.slidingWindow(x, 0).or(Pattern.keyPrefix(sinks)))),
                w.map(Pattern::slidingWindow),
                Arbitraries.integers().between(1, 12).map(Pattern::prefixLM),
                Arbitraries.integers().between(1, 5).map(x -> Pattern.causal().and(Pattern.stride(x))),
                Arbitraries.integers().between(1, 6).map(x -> Pattern.causal().and(Pattern.blockLocal(x))));
    }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    /** The keys and values of every sequence as the oracle sees them, and the cache they were appended to. */
    record Filled(KvCache cache, Tensor[] keys, Tensor[] values) {}

    static Filled fill(Arena arena, Setup s, int slackPages) { return fill(arena, s, slackPages, false); }

    /** With {@code poisoned}, every pool slot holds NaN before the appends: free pages and the tails of last pages stay NaN. */
    static Filled fill(Arena arena, Setup s, int slackPages, boolean poisoned) {
        SplittableRandom r = new SplittableRandom(s.seed());
        int[] lengths = new int[s.sequences()];
        int pages = slackPages;
        for (int i = 0; i < lengths.length; i++) {
            lengths[i] = 1 + r.nextInt(s.maxLength());
            pages += (lengths[i] + s.pageSize() - 1) / s.pageSize();
        }
        KvCache cache = KvCache.allocate(arena, s.sequences(), pages, s.pageSize(), s.kvHeads(), s.headDim(), s.valueDim());
        if (poisoned) {
            cache.keyStorage().fill(Float.NaN);
            cache.valueStorage().fill(Float.NaN);
        }
        Tensor[] keys = new Tensor[lengths.length], values = new Tensor[lengths.length];
        int[] done = new int[lengths.length];
        for (int i = 0; i < lengths.length; i++) {
            keys[i] = Tensor.randomNormal(arena, s.seed() + 10 + i, 1f, 1, s.kvHeads(), lengths[i], s.headDim());
            values[i] = Tensor.randomNormal(arena, s.seed() + 20 + i, 1f, 1, s.kvHeads(), lengths[i], s.valueDim());
        }
        for (int left = lengths.length; left > 0; ) {
            int i = r.nextInt(lengths.length);
            if (done[i] == lengths[i]) continue;
            int n = Math.min(lengths[i] - done[i], 1 + r.nextInt(7));
            int length = cache.append(i, keys[i].slice(2, done[i], done[i] + n), values[i].slice(2, done[i], done[i] + n));
            done[i] += n;
            assertThat(length).isEqualTo(done[i]);
            if (done[i] == lengths[i]) left--;
        }
        return new Filled(cache, keys, values);
    }

    @Property(tries = 150)
    void decodeEqualsTheOracleOnTheGatheredCache(@ForAll("setups") Setup s, @ForAll("patterns") Pattern pattern, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, 1);
            PagedAttention decode = PagedAttention.of(pattern).on(Backend.named(backend));
            for (int seq = 0; seq < s.sequences(); seq++) {
                Tensor q = Tensor.randomNormal(arena, s.seed() + 30 + seq, 1f, 1, s.heads(), s.qLen(), s.headDim());
                Tensor out = Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), lse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
                decode.forward(f.cache(), seq, q, out, lse);
                int length = f.cache().length(seq);
                double scale = 1.0 / Math.sqrt(s.headDim());
                var mask = decode.pattern().asMask(s.qLen(), length);
                Tensor k = f.keys()[seq], v = f.values()[seq];
                DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale);
                DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, mask, scale);
                Tolerance tolerance = Tolerance.exact(q, k, v, scale, naive, oracle);
                assertThat(Tolerance.maxError(out, oracle.output())).as("output of sequence %d (length %d) under %s", seq, length, decode).isLessThanOrEqualTo(tolerance.output());
                assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE of sequence %d under %s", seq, decode).isLessThanOrEqualTo(tolerance.logSumExp());
            }
        }
    }

    /** Appending writes the new tokens into new slots only: every other element of the pool is unchanged, and old pages stay where they were. */
    @Property(tries = 80)
    void appendCopiesOnlyTheNewTokens(@ForAll("setups") Setup s, @ForAll @IntRange(min = 1, max = 20) int n) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, (n + s.pageSize() - 1) / s.pageSize() + 1);
            KvCache cache = f.cache();
            int seq = (int) Math.floorMod(s.seed(), (long) s.sequences()), length = cache.length(seq);
            int[] oldPages = new int[cache.pageCount(seq)];
            for (int i = 0; i < oldPages.length; i++) oldPages[i] = cache.page(seq, i);
            float[] keysBefore = cache.keyStorage().toArray(), valuesBefore = cache.valueStorage().toArray();
            Tensor k = Tensor.randomNormal(arena, s.seed() + 99, 1f, 1, s.kvHeads(), n, s.headDim());
            Tensor v = Tensor.randomNormal(arena, s.seed() + 98, 1f, 1, s.kvHeads(), n, s.valueDim());
            assertThat(cache.append(seq, k, v)).isEqualTo(length + n);
            for (int i = 0; i < oldPages.length; i++) assertThat(cache.page(seq, i)).isEqualTo(oldPages[i]);
            checkOnlyNewSlotsChanged(cache, seq, length, n, keysBefore, cache.keyStorage().toArray(), k, s.headDim());
            checkOnlyNewSlotsChanged(cache, seq, length, n, valuesBefore, cache.valueStorage().toArray(), v, s.valueDim());
        }
    }

    private static void checkOnlyNewSlotsChanged(KvCache cache, int seq, int length, int n, float[] before, float[] after, Tensor appended, int dim) {
        long slots = (long) cache.pages() * cache.pageSize();
        boolean[] isNew = new boolean[(int) slots];
        for (int t = 0; t < n; t++) {
            int position = length + t;
            int slot = cache.page(seq, position / cache.pageSize()) * cache.pageSize() + position % cache.pageSize();
            isNew[slot] = true;
            for (int h = 0; h < cache.kvHeads(); h++) for (int d = 0; d < dim; d++) {
                assertThat(after[(int) ((h * slots + slot) * dim + d)]).as("new token %d head %d", t, h).isEqualTo(appended.get(0, h, t, d));
            }
        }
        for (int h = 0; h < cache.kvHeads(); h++) for (int slot = 0; slot < slots; slot++) {
            if (isNew[slot]) continue;
            for (int d = 0; d < dim; d++) {
                int i = (int) ((h * slots + slot) * dim + d);
                assertThat(Float.floatToRawIntBits(after[i])).as("pool slot %d head %d, not a new token", slot, h).isEqualTo(Float.floatToRawIntBits(before[i]));
            }
        }
    }

    /**
     * A window reads only the pages it reaches: the result is bit-identical after every other page of
     * the pool is poisoned with NaN, and the number of pages read is what the window spans.
     */
    @Property(tries = 80)
    void aSlidingWindowReadsOnlyThePagesOfItsWindow(@ForAll("setups") Setup s, @ForAll @IntRange(min = 0, max = 12) int window, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, 0);
            KvCache cache = f.cache();
            PagedAttention decode = PagedAttention.of(Pattern.causal().and(Pattern.slidingWindow(window, 0))).on(Backend.named(backend));
            int seq = (int) Math.floorMod(s.seed(), (long) s.sequences()), length = cache.length(seq), p = s.pageSize();
            Tensor q = Tensor.randomNormal(arena, s.seed() + 7, 1f, 1, s.heads(), s.qLen(), s.headDim());
            Tensor clean = Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), cleanLse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
            int read = decode.forward(cache, seq, q, clean, cleanLse);
            // Keys at positions [length − qLen − window, length) are reachable (positions below 0 do not exist).
            long firstKey = Math.max(0, (long) length - s.qLen() - window);
            int firstPage = (int) (firstKey / p), lastPage = (length - 1) / p;
            assertThat(read).isEqualTo(lastPage - firstPage + 1);
            boolean[] inWindow = new boolean[cache.pages()];
            for (int i = firstPage; i <= lastPage; i++) inWindow[cache.page(seq, i)] = true;
            for (int page = 0; page < cache.pages(); page++) {
                if (inWindow[page]) continue;
                cache.keyStorage().slice(2, (long) page * p, (long) (page + 1) * p).fill(Float.NaN);
                cache.valueStorage().slice(2, (long) page * p, (long) (page + 1) * p).fill(Float.NaN);
            }
            Tensor poisoned = Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), poisonedLse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
            decode.forward(cache, seq, q, poisoned, poisonedLse);
            assertThat(poisoned.toArray()).containsExactly(clean.toArray());
            assertThat(poisonedLse.toArray()).containsExactly(cleanLse.toArray());
        }
    }

    @Property(tries = 30)
    void decodeIsBitIdenticalForAnyThreadCount(@ForAll("setups") Setup s, @ForAll("patterns") Pattern pattern) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, 0);
            Tensor q = Tensor.randomNormal(arena, s.seed() + 5, 1f, 1, s.heads(), s.qLen(), s.headDim());
            Backend simd = Backend.named("simd");
            float[] one = PagedAttention.of(pattern).on(simd.withThreads(1)).forward(arena, f.cache(), 0, q).toArray();
            for (int threads : new int[] {2, 3}) {
                assertThat(PagedAttention.of(pattern).on(simd.withThreads(threads)).forward(arena, f.cache(), 0, q).toArray()).containsExactly(one);
            }
        }
    }

    /**
     * Rolling back (speculative decoding's rejected drafts): truncate keeps the pages of the first n
     * tokens where they are, returns the others to the pool, and appending after it gives what a
     * cache that held [those n tokens, the new ones] all along gives: decode equals the oracle on
     * them, so neither the cut tokens (still in the pool) nor the pool's NaN slots reach it.
     */
    @Property(tries = 80)
    void truncateFreesThePagesPastTheNewLengthAndAppendsContinueFromIt(@ForAll("setups") Setup s, @ForAll("patterns") Pattern pattern, @ForAll("backends") String backend,
                                                                       @ForAll @IntRange(min = 0, max = 100) int keptPercent, @ForAll @IntRange(min = 0, max = 9) int added) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = fill(arena, s, 2, true);
            KvCache cache = f.cache();
            int seq = s.sequences() - 1, length = cache.length(seq), keep = length * keptPercent / 100, pages = cache.pageCount(seq), free = cache.freePages();
            int kept = (keep + s.pageSize() - 1) / s.pageSize();
            int[] pool = new int[kept];
            for (int i = 0; i < kept; i++) pool[i] = cache.page(seq, i);
            assertThat(cache.truncate(seq, keep)).isEqualTo(keep);
            assertThat(cache.length(seq)).isEqualTo(keep);
            assertThat(cache.pageCount(seq)).isEqualTo(kept);
            assertThat(cache.freePages()).isEqualTo(free + pages - kept);
            for (int i = 0; i < kept; i++) assertThat(cache.page(seq, i)).as("pool page of page %d", i).isEqualTo(pool[i]);
            int n = Math.min(added, kept * s.pageSize() - keep + cache.freePages() * s.pageSize());
            if (keep + n == 0) return;   // nothing cached: decode rejects it (badArgumentsAreRejectedByName)
            // What the cache should hold now: the first keep tokens, then n new ones.
            Tensor k = Tensor.zeros(arena, 1, s.kvHeads(), keep + n, s.headDim()), v = Tensor.zeros(arena, 1, s.kvHeads(), keep + n, s.valueDim());
            if (keep > 0) {
                k.slice(2, 0, keep).copyFrom(f.keys()[seq].slice(2, 0, keep));
                v.slice(2, 0, keep).copyFrom(f.values()[seq].slice(2, 0, keep));
            }
            if (n > 0) {
                k.slice(2, keep, keep + n).copyFrom(Tensor.randomNormal(arena, s.seed() + 40, 1f, 1, s.kvHeads(), n, s.headDim()));
                v.slice(2, keep, keep + n).copyFrom(Tensor.randomNormal(arena, s.seed() + 41, 1f, 1, s.kvHeads(), n, s.valueDim()));
                assertThat(cache.append(seq, k.slice(2, keep, keep + n), v.slice(2, keep, keep + n))).isEqualTo(keep + n);
            }
            PagedAttention decode = PagedAttention.of(pattern).on(Backend.named(backend));
            Tensor q = Tensor.randomNormal(arena, s.seed() + 42, 1f, 1, s.heads(), s.qLen(), s.headDim());
            Tensor out = Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), lse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
            decode.forward(cache, seq, q, out, lse);
            double scale = 1.0 / Math.sqrt(s.headDim());
            var mask = decode.pattern().asMask(s.qLen(), keep + n);
            DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale);
            Tolerance tolerance = Tolerance.exact(q, k, v, scale, DenseReference.naiveFloat32(q, k, v, mask, scale), oracle);
            assertThat(Tolerance.maxError(out, oracle.output())).as("output after keeping %d of %d tokens and adding %d, %s", keep, length, n, decode).isLessThanOrEqualTo(tolerance.output());
            assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE after keeping %d of %d tokens and adding %d, %s", keep, length, n, decode).isLessThanOrEqualTo(tolerance.logSumExp());
        }
    }

    @Example
    void releaseReturnsPagesAndACleanSequenceReusesThemInOrder() {
        try (Arena arena = Arena.ofShared()) {
            KvCache cache = KvCache.allocate(arena, 2, 6, 4, 1, 2, 3);
            Tensor k = Tensor.randomNormal(arena, 1, 1f, 1, 1, 10, 2), v = Tensor.randomNormal(arena, 2, 1f, 1, 1, 10, 3);
            cache.append(0, k, v);
            assertThat(cache.length(0)).isEqualTo(10);
            assertThat(cache.pageCount(0)).isEqualTo(3);
            assertThat(cache.freePages()).isEqualTo(3);
            // Pages 0, 1, 2 are consecutive: the whole sequence is one view, equal to what was appended.
            assertThat(cache.keys(0)).get().extracting(Tensor::toArray).isEqualTo(k.toArray());
            assertThat(cache.values(0)).get().extracting(Tensor::toArray).isEqualTo(v.toArray());
            assertThat(cache.keyPage(0, 2).shape()).containsExactly(1, 1, 2, 2);
            cache.append(1, k.slice(2, 0, 1), v.slice(2, 0, 1));
            cache.append(0, k.slice(2, 0, 3), v.slice(2, 0, 3));   // fills page 2, then takes page 4: not consecutive
            assertThat(cache.page(0, 3)).isEqualTo(4);
            assertThat(cache.keys(0)).isEmpty();
            cache.release(0);
            assertThat(cache.length(0)).isZero();
            assertThat(cache.freePages()).isEqualTo(5);
            cache.append(1, k, v);
            assertThat(cache.length(1)).isEqualTo(11);
            assertThat(cache.page(1, 1)).isEqualTo(0);
        }
    }

    @Example
    void capacityErrorsNameTheSequenceAndTheTokensAndWriteNothing() {
        try (Arena arena = Arena.ofShared()) {
            KvCache cache = KvCache.allocate(arena, 3, 2, 4, 1, 2, 2);
            Tensor k = Tensor.randomNormal(arena, 1, 1f, 1, 1, 9, 2), v = Tensor.randomNormal(arena, 2, 1f, 1, 1, 9, 2);
            cache.append(2, k.slice(2, 0, 3), v.slice(2, 0, 3));
            assertThatThrownBy(() -> cache.append(2, k.slice(2, 0, 6), v.slice(2, 0, 6)))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("sequence 2 (length 3) requested 6 tokens but only 5 are available")
                    .hasMessageContaining("1 free pages of 4 tokens");
            assertThat(cache.length(2)).isEqualTo(3);
            assertThat(cache.freePages()).isEqualTo(1);
            assertThat(cache.append(2, k.slice(2, 0, 5), v.slice(2, 0, 5))).isEqualTo(8);
        }
    }

    @Example
    void badArgumentsAreRejectedByName() {
        try (Arena arena = Arena.ofShared()) {
            assertThatThrownBy(() -> KvCache.allocate(null, 1, 1, 1, 1, 1, 1)).isInstanceOf(NullPointerException.class).hasMessage("arena");
            assertThatThrownBy(() -> KvCache.allocate(arena, 1, 0, 1, 1, 1, 1)).hasMessage("pages must be >= 1, got 0");
            assertThatThrownBy(() -> KvCache.allocate(arena, 1, 1 << 20, 1 << 12, 1, 1, 1)).hasMessageContaining("more than the largest key length");
            KvCache cache = KvCache.allocate(arena, 2, 4, 4, 2, 3, 5);
            Tensor k = Tensor.zeros(arena, 1, 2, 2, 3), v = Tensor.zeros(arena, 1, 2, 2, 5);
            assertThatThrownBy(() -> cache.append(2, k, v)).hasMessage("sequence=2 is not in [0, 2)");
            assertThatThrownBy(() -> cache.append(0, null, v)).isInstanceOf(NullPointerException.class).hasMessage("k");
            assertThatThrownBy(() -> cache.append(0, k, k)).hasMessageContaining("v must be [1, kvHeads=2, tokens, 5]");
            assertThatThrownBy(() -> cache.append(0, k, v.slice(2, 0, 1))).hasMessage("k has 2 tokens but v has 1");
            assertThatThrownBy(() -> cache.append(0, cache.keyStorage().slice(2, 0, 2), v)).hasMessageContaining("k is a view of this cache's storage");
            assertThatThrownBy(() -> cache.page(0, 0)).hasMessageContaining("index=0 is not a page of sequence 0, which holds 0 pages");
            assertThatThrownBy(() -> cache.truncate(0, 1)).hasMessage("length=1 is not in [0, 0], the length of sequence 0");
            assertThatThrownBy(() -> cache.truncate(0, -1)).hasMessage("length=-1 is not in [0, 0], the length of sequence 0");
            assertThatThrownBy(() -> cache.truncate(-1, 0)).hasMessage("sequence=-1 is not in [0, 2)");
            PagedAttention decode = PagedAttention.dense();
            Tensor q = Tensor.zeros(arena, 1, 4, 1, 3), out = Tensor.zeros(arena, 1, 4, 1, 5);
            assertThatThrownBy(() -> decode.forward(cache, 0, q, out, null)).hasMessageContaining("sequence 0 has no cached tokens");
            cache.append(0, k, v);
            assertThatThrownBy(() -> decode.forward(cache, 0, Tensor.zeros(arena, 1, 3, 1, 3), out, null)).hasMessageContaining("q must be [1, heads (a multiple of kvHeads=2)");
            assertThatThrownBy(() -> decode.forward(cache, 0, q, Tensor.zeros(arena, 1, 4, 1, 4), null)).hasMessageContaining("out shape [1, 4, 1, 4] must be [1, 4, 1, 5]");
            assertThatThrownBy(() -> decode.forward(cache, 0, q, out, Tensor.zeros(arena, 1, 4, 2))).hasMessageContaining("lse shape");
            assertThatThrownBy(() -> decode.forward(cache, 0, q, cache.valueStorage().slice(2, 0, 1).slice(1, 0, 1), null)).hasMessageContaining("out shape");
            Tensor both = Tensor.zeros(arena, 1, 4, 1, 5);
            assertThatThrownBy(() -> decode.forward(cache, 0, q, both, both.select(3, 0))).hasMessageContaining("out and lse share memory");
            assertThatThrownBy(() -> PagedAttention.of(Pattern.causal(io.tessera.pattern.CausalAlignment.TOP_LEFT))).isInstanceOf(IllegalArgumentException.class);
        }
    }
}
