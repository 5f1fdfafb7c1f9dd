package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.layout.BlockLayout;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.PatternCompiler;
import io.tessera.layout.TileKind;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** The compiled layout of any pattern allows exactly the pairs the pattern's element rule allows. */
class PatternProperties {

    /** Patterns valid for any lengths up to {@link #MAX_LEN} (global indices are kept small). */
    static Arbitrary<Pattern> primitives() {
        Arbitrary<Integer> small = Arbitraries.integers().between(0, 20);
        Arbitrary<Integer> positive = Arbitraries.integers().between(1, 40);
        return Arbitraries.oneOf(List.of(
                Arbitraries.just(Pattern.full()),
                Arbitraries.of(CausalAlignment.class).map(Pattern::causal),
                Combinators.combine(small, small).as(Pattern::slidingWindow),
                Combinators.combine(Arbitraries.integers().between(0, 6), Arbitraries.integers().between(1, 5)).as(Pattern::dilatedWindow),
                positive.map(Pattern::blockLocal),
                Combinators.combine(positive, small).as(Pattern::blockDiagonal),
                Combinators.combine(positive, Arbitraries.integers().between(0, 2), Arbitraries.integers().between(0, 2)).as(Pattern::blockWindow),
                Arbitraries.integers().between(1, 12).map(Pattern::stride),
                Arbitraries.integers().between(1, 12).flatMap(l -> Arbitraries.integers().between(1, l).map(c -> Pattern.summaryColumns(l, c))),
                Arbitraries.integers().between(0, 40).map(Pattern::keyPrefix),
                Arbitraries.integers().between(0, 0).set().ofMinSize(0).ofMaxSize(0).map(s -> Pattern.globalTokens(0)),
                Arbitraries.integers().between(0, 0).map(i -> Pattern.globalRows(0)),
                Arbitraries.integers().between(0, 0).map(i -> Pattern.globalColumns(0)),
                Combinators.combine(positive, Arbitraries.integers().between(0, 3), Arbitraries.longs(), Arbitraries.of(true, false)).as(Pattern::randomBlocks),
                Arbitraries.longs().map(seed -> Pattern.predicate("hash", (i, j) -> (mix(seed + i * 31L + j * 1_000_003L) & 3) == 0))));
    }

    static final int MAX_LEN = 160;

    static long mix(long z) {
        z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
        z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
        return z ^ (z >>> 33);
    }

    @Provide
    Arbitrary<Pattern> patterns() {
        return Arbitraries.lazyOf(
                PatternProperties::primitives,
                () -> Combinators.combine(primitives(), primitives()).as(Pattern::and),
                () -> Combinators.combine(primitives(), primitives()).as(Pattern::or),
                () -> Combinators.combine(primitives(), primitives(), primitives()).as((a, b, c) -> a.and(b).or(c)),
                () -> Combinators.combine(primitives(), primitives(), primitives()).as((a, b, c) -> a.or(b).and(c)));
    }

    @Property(tries = 300)
    void layoutAllowsExactlyThePredicatesPairs(@ForAll("patterns") Pattern p,
                                               @ForAll @IntRange(min = 1, max = MAX_LEN) int qLen, @ForAll @IntRange(min = 1, max = MAX_LEN) int kvLen,
                                               @ForAll @IntRange(min = 1, max = 70) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        checkLayout(p, qLen, kvLen, blockQ, blockKV);
    }

    @Property(tries = 12)
    void longSequencesToo(@ForAll("patterns") Pattern p, @ForAll @IntRange(min = 1000, max = 2100) int n,
                          @ForAll @IntRange(min = 16, max = 128) int blockQ, @ForAll @IntRange(min = 16, max = 128) int blockKV) {
        checkLayout(p, n, n + 7, blockQ, blockKV);
    }

    /** Checks every tile of the layout against the element rule, plus the layout's own bookkeeping. */
    static void checkLayout(Pattern p, int qLen, int kvLen, int blockQ, int blockKV) {
        BlockLayout layout = PatternCompiler.compile(p, qLen, kvLen, blockQ, blockKV);
        ElementPredicate rule = p.predicate(qLen, kvLen);
        int words = layout.maskWordsPerRow();
        long[] mask = new long[blockQ * words];
        boolean[][] covered = new boolean[layout.qBlocks()][layout.kvBlocks()];
        long allowedInLayout = 0;
        for (int r = 0; r < layout.qBlocks(); r++) {
            for (int t = layout.rowOffsets()[r]; t < layout.rowOffsets()[r + 1]; t++) {
                int c = layout.colIndices()[t];
                covered[r][c] = true;
                layout.fillTileMask(t, mask);
                int rows = Math.min(blockQ, qLen - r * blockQ), cols = Math.min(blockKV, kvLen - c * blockKV);
                long allowed = 0;
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) {
                        boolean bit = (mask[i * words + (j >>> 6)] & (1L << j)) != 0;
                        boolean expected = rule.allows(r * blockQ + i, c * blockKV + j);
                        assertThat(bit).as("%s at (%d, %d), tile %d %s", p, r * blockQ + i, c * blockKV + j, t, layout.kind(t)).isEqualTo(expected);
                        if (bit) allowed++;
                    }
                }
                allowedInLayout += allowed;
                if (layout.kind(t) == TileKind.FULL) assertThat(allowed).as("FULL tile %d of %s", t, p).isEqualTo((long) rows * cols);
                else assertThat(allowed).as("PARTIAL tile %d of %s", t, p).isBetween(1L, (long) rows * cols - 1);
            }
        }
        // Tiles absent from the layout allow nothing.
        for (int r = 0; r < layout.qBlocks(); r++) {
            for (int c = 0; c < layout.kvBlocks(); c++) {
                if (covered[r][c]) continue;
                for (int i = r * blockQ; i < Math.min(qLen, (r + 1) * blockQ); i++) {
                    for (int j = c * blockKV; j < Math.min(kvLen, (c + 1) * blockKV); j++) {
                        assertThat(rule.allows(i, j)).as("%s allows (%d, %d) in absent tile (%d, %d)", p, i, j, r, c).isFalse();
                    }
                }
            }
        }
        assertThat(layout.allowedPairs()).isEqualTo(allowedInLayout);
        // The key-major index lists the same tiles.
        for (int c = 0; c < layout.kvBlocks(); c++) {
            for (int e = layout.colOffsets()[c]; e < layout.colOffsets()[c + 1]; e++) {
                int t = layout.transposedTiles()[e];
                assertThat(layout.colIndices()[t]).isEqualTo(c);
                assertThat(layout.rowOf(t)).isEqualTo(layout.rowIndices()[e]);
            }
        }
        assertThat(layout.colOffsets()[layout.kvBlocks()]).isEqualTo(layout.tileCount());
    }

    // ---------------------------------------------------------------- algebra laws

    static void assertSameElements(Pattern a, Pattern b, int qLen, int kvLen) {
        ElementPredicate x = a.predicate(qLen, kvLen), y = b.predicate(qLen, kvLen);
        for (int i = 0; i < qLen; i++) for (int j = 0; j < kvLen; j++) {
            assertThat(x.allows(i, j)).as("%s vs %s at (%d, %d)", a, b, i, j).isEqualTo(y.allows(i, j));
        }
    }

    @Property(tries = 100)
    void andOrAreCommutativeAndAssociative(@ForAll("patterns") Pattern a, @ForAll("patterns") Pattern b, @ForAll("patterns") Pattern c,
                                           @ForAll @IntRange(min = 1, max = 60) int qLen, @ForAll @IntRange(min = 1, max = 60) int kvLen) {
        assertSameElements(a.and(b), b.and(a), qLen, kvLen);
        assertSameElements(a.or(b), b.or(a), qLen, kvLen);
        assertSameElements(a.and(b).and(c), a.and(b.and(c)), qLen, kvLen);
        assertSameElements(a.or(b).or(c), a.or(b.or(c)), qLen, kvLen);
        // As layouts too: same tiles with the same kinds.
        BlockLayout x = a.or(b).compile(qLen, kvLen, 8, 8), y = b.or(a).compile(qLen, kvLen, 8, 8);
        assertThat(x.colIndices()).containsExactly(y.colIndices());
        assertThat(x.kinds()).containsExactly(y.kinds());
    }

    @Property(tries = 100)
    void fullIsTheIdentityOfAndAndAbsorbsOr(@ForAll("patterns") Pattern p, @ForAll @IntRange(min = 1, max = 60) int qLen, @ForAll @IntRange(min = 1, max = 60) int kvLen) {
        assertSameElements(p.and(Pattern.full()), p, qLen, kvLen);
        BlockLayout all = p.or(Pattern.full()).compile(qLen, kvLen, 7, 9);
        assertThat(all.partialTiles()).isZero();
        assertThat(all.allowedPairs()).isEqualTo((long) qLen * kvLen);
    }

    @Property(tries = 100)
    void causalAndSlidingWindowIsTheCausalSlidingWindow(@ForAll @IntRange(max = 30) int w, @ForAll @IntRange(min = 1, max = 80) int n) {
        assertSameElements(Pattern.causal().and(Pattern.slidingWindow(w)), Pattern.slidingWindow(w, 0), n, n);
    }

    @Property(tries = 100)
    void equalPatternsAreEqualValues(@ForAll("patterns") Pattern p) {
        assertThat(p).isEqualTo(p);
        assertThat(p.and(Pattern.causal())).isEqualTo(p.and(Pattern.causal())).hasSameHashCodeAs(p.and(Pattern.causal()));
        assertThat(p.toString()).isNotBlank();
    }
}
