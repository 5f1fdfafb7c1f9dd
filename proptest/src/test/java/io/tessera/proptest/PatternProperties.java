package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.layout.BlockLayout;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.PatternCompiler;
import io.tessera.layout.TileKind;
import java.util.List;
import java.util.function.Function;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** The compiled layout of any pattern allows exactly the pairs the pattern's element rule allows. */
class PatternProperties {

    /**
     * Patterns valid for any lengths up to {@link #MAX_LEN} (global indices are kept small), whose
     * explicit alignment, if any, is {@code alignment}: patterns naming two alignments are rejected.
     */
    static Arbitrary<Pattern> primitives(CausalAlignment alignment) {
        return Arbitraries.oneOf(List.of(positional(alignment),
                Arbitraries.longs().map(seed -> Pattern.predicate("hash", (i, j) -> (mix(seed + i * 31L + j * 1_000_003L) & 3) == 0))));
    }

    /** The primitives that read positions only (every one but {@code predicate}, which sees raw indices). */
    static Arbitrary<Pattern> positional(CausalAlignment alignment) {
        Arbitrary<Integer> small = Arbitraries.integers().between(0, 20);
        Arbitrary<Integer> positive = Arbitraries.integers().between(1, 40);
        return Arbitraries.oneOf(List.of(
                Arbitraries.just(Pattern.full()),
                Arbitraries.of(Pattern.causal(), Pattern.causal(alignment)),
                Combinators.combine(small, small).as(Pattern::slidingWindow),
                Combinators.combine(Arbitraries.integers().between(0, 6), Arbitraries.integers().between(1, 5)).as(Pattern::dilatedWindow),
                positive.map(Pattern::blockLocal),
                Combinators.combine(positive, small).as(Pattern::blockDiagonal),
                Combinators.combine(positive, Arbitraries.integers().between(0, 2), Arbitraries.integers().between(0, 2)).as(Pattern::blockWindow),
                Arbitraries.integers().between(1, 12).map(Pattern::stride),
                Arbitraries.integers().between(1, 12).flatMap(l -> Arbitraries.integers().between(1, l).map(c -> Pattern.summaryColumns(l, c))),
                Arbitraries.integers().between(0, 40).map(Pattern::keyPrefix),
                Arbitraries.integers().between(0, 40).map(Pattern::prefixLM),
                Arbitraries.integers().between(0, 0).set().ofMinSize(0).ofMaxSize(0).map(s -> Pattern.globalTokens(0)),
                Arbitraries.integers().between(0, 0).map(i -> Pattern.globalRows(0)),
                Arbitraries.integers().between(0, 0).map(i -> Pattern.globalColumns(0)),
                Combinators.combine(positive, Arbitraries.integers().between(0, 3), Arbitraries.longs(), Arbitraries.of(true, false)).as(Pattern::randomBlocks)));
    }

    /** Either alignment, sometimes named on the whole pattern with {@code aligned}. */
    static Arbitrary<Pattern> trees(Function<CausalAlignment, Arbitrary<Pattern>> primitives) {
        return Arbitraries.of(CausalAlignment.class).flatMap(a -> trees(a, primitives));
    }

    static Arbitrary<Pattern> trees(CausalAlignment a, Function<CausalAlignment, Arbitrary<Pattern>> primitives) {
        // Not lazyOf: jqwik memoizes lazy arbitraries by the supplier's class, which would mix alignments.
        Arbitrary<Pattern> prim = primitives.apply(a);
        Arbitrary<Pattern> tree = Arbitraries.oneOf(List.of(
                prim,
                Combinators.combine(prim, prim).as(Pattern::and),
                Combinators.combine(prim, prim).as(Pattern::or),
                Combinators.combine(prim, prim, prim).as((x, y, z) -> x.and(y).or(z)),
                Combinators.combine(prim, prim, prim).as((x, y, z) -> x.or(y).and(z))));
        return Combinators.combine(tree, Arbitraries.of(true, false)).as((p, name) -> name ? p.aligned(a) : p);
    }

    static final int MAX_LEN = 160;

    static long mix(long z) {
        z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
        z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
        return z ^ (z >>> 33);
    }

    @Provide
    Arbitrary<Pattern> patterns() {
        return trees(PatternProperties::primitives);
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

    // ---------------------------------------------------------------- positions

    /** A pattern of positional primitives with the alignment it is placed by. */
    record Placed(CausalAlignment alignment, Pattern pattern) {}

    @Provide
    Arbitrary<Placed> placed() {
        // Named on the whole pattern: an unnamed tree would be top-left whatever a is.
        return Arbitraries.of(CausalAlignment.class).flatMap(a -> trees(a, PatternProperties::positional).map(p -> new Placed(a, p.aligned(a))));
    }

    /**
     * The point of positions: with qLen ≤ kvLen, query i sees exactly what its position sees in the
     * full kvLen × kvLen pattern (bottom-right: the last qLen rows, a decoding step or a chunk of
     * prefill against a cache; top-left: the first qLen rows), and the compiled layout agrees.
     */
    @Property(tries = 200)
    void aQuerySeesWhatItsPositionSeesInTheFullSequence(@ForAll("placed") Placed placed,
                                                        @ForAll @IntRange(min = 1, max = MAX_LEN) int a, @ForAll @IntRange(min = 1, max = MAX_LEN) int b,
                                                        @ForAll @IntRange(min = 1, max = 40) int blockQ, @ForAll @IntRange(min = 1, max = 40) int blockKV) {
        int qLen = Math.min(a, b), kvLen = Math.max(a, b);
        Pattern p = placed.pattern();
        int offset = placed.alignment() == CausalAlignment.BOTTOM_RIGHT ? kvLen - qLen : 0;
        ElementPredicate part = p.predicate(qLen, kvLen), whole = p.predicate(kvLen, kvLen);
        for (int i = 0; i < qLen; i++) {
            for (int j = 0; j < kvLen; j++) {
                assertThat(part.allows(i, j)).as("%s, qLen=%d, kvLen=%d: query %d (position %d), key %d", p, qLen, kvLen, i, i + offset, j)
                        .isEqualTo(whole.allows(i + offset, j));
            }
        }
        checkLayout(p, qLen, kvLen, blockQ, blockKV);
    }

    /** A documents or axial pattern, its alignment, and the one key length it is defined for. */
    record OnGrid(CausalAlignment alignment, Pattern pattern, int kvLen) {}

    @Provide
    Arbitrary<OnGrid> onGrid() {
        Arbitrary<OnGrid> documents = Combinators.combine(Arbitraries.of(CausalAlignment.class), Arbitraries.integers().between(1, 30).list().ofMinSize(1).ofMaxSize(6))
                .as((a, l) -> new OnGrid(a, Pattern.documents(l.stream().mapToInt(Integer::intValue).toArray()), l.stream().mapToInt(Integer::intValue).sum()));
        Arbitrary<OnGrid> axial = Combinators.combine(Arbitraries.of(CausalAlignment.class), Arbitraries.integers().between(1, 12), Arbitraries.integers().between(1, 12))
                .as((a, r, c) -> new OnGrid(a, Pattern.axial(r, c), r * c));
        return Combinators.combine(Arbitraries.oneOf(List.of(documents, axial)), Arbitraries.integers().between(0, 3), Arbitraries.integers().between(0, 8))
                .as((g, how, w) -> {
                    CausalAlignment a = g.alignment();
                    Pattern p = g.pattern();
                    return new OnGrid(a, switch (how) {
                        case 0 -> p.aligned(a);
                        case 1 -> p.and(Pattern.causal(a));
                        case 2 -> p.and(Pattern.slidingWindow(w, 0)).aligned(a);
                        default -> p.and(Pattern.causal()).or(Pattern.slidingWindow(w).and(p)).aligned(a);
                    }, g.kvLen());
                });
    }

    /** Documents and axial grids need the keys to be the whole sequence; any number of queries on it works, both alignments. */
    @Property(tries = 150)
    void documentsAndAxialAtFewerQueriesThanKeys(@ForAll("onGrid") OnGrid grid, @ForAll @IntRange(min = 0, max = 1000) int qSeed,
                                                 @ForAll @IntRange(min = 1, max = 40) int blockQ, @ForAll @IntRange(min = 1, max = 40) int blockKV) {
        Pattern p = grid.pattern();
        int kvLen = grid.kvLen(), qLen = 1 + qSeed % kvLen;
        int offset = grid.alignment() == CausalAlignment.BOTTOM_RIGHT ? kvLen - qLen : 0;
        ElementPredicate part = p.predicate(qLen, kvLen), whole = p.predicate(kvLen, kvLen);
        for (int i = 0; i < qLen; i++) {
            for (int j = 0; j < kvLen; j++) assertThat(part.allows(i, j)).as("%s at query %d, key %d", p, i, j).isEqualTo(whole.allows(i + offset, j));
        }
        checkLayout(p, qLen, kvLen, blockQ, blockKV);
        // More queries than grid positions cannot be placed on the grid.
        assertThatThrownBy(() -> p.compile(kvLen + 1, kvLen, blockQ, blockKV)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("qLen=" + (kvLen + 1)).hasMessageContaining("kvLen=" + kvLen);
    }

    @Provide
    Arbitrary<Pattern> topLeftTrees() { return trees(CausalAlignment.TOP_LEFT, PatternProperties::primitives); }

    @Provide
    Arbitrary<Pattern> bottomRightTrees() { return trees(CausalAlignment.BOTTOM_RIGHT, PatternProperties::primitives); }

    @Property(tries = 50)
    void combiningTwoAlignmentsIsRejected(@ForAll("topLeftTrees") Pattern x, @ForAll("bottomRightTrees") Pattern y) {
        Pattern topLeft = x.and(Pattern.causal(CausalAlignment.TOP_LEFT)), bottomRight = y.or(Pattern.full()).aligned(CausalAlignment.BOTTOM_RIGHT);
        assertThatThrownBy(() -> topLeft.and(bottomRight)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("and() mixes alignments").hasMessageContaining("is TOP_LEFT").hasMessageContaining("is BOTTOM_RIGHT");
        assertThatThrownBy(() -> bottomRight.or(topLeft)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("or() mixes alignments");
        assertThatThrownBy(() -> topLeft.aligned(CausalAlignment.BOTTOM_RIGHT)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("aligned(BOTTOM_RIGHT) contradicts");
        // Leaving the alignment open combines with either.
        assertThat(topLeft.and(Pattern.slidingWindow(3)).and(Pattern.causal()).toString()).isNotBlank();
        assertThat(bottomRight.and(Pattern.slidingWindow(3)).and(Pattern.causal()).toString()).isNotBlank();
    }

    // ---------------------------------------------------------------- algebra laws

    static void assertSameElements(Pattern a, Pattern b, int qLen, int kvLen) {
        ElementPredicate x = a.predicate(qLen, kvLen), y = b.predicate(qLen, kvLen);
        for (int i = 0; i < qLen; i++) for (int j = 0; j < kvLen; j++) {
            assertThat(x.allows(i, j)).as("%s vs %s at (%d, %d)", a, b, i, j).isEqualTo(y.allows(i, j));
        }
    }

    /** Three patterns of one alignment (patterns naming different alignments cannot be combined). */
    @Provide
    Arbitrary<List<Pattern>> triples() {
        return Arbitraries.of(CausalAlignment.class).flatMap(a -> trees(a, PatternProperties::primitives).list().ofSize(3));
    }

    @Property(tries = 100)
    void andOrAreCommutativeAndAssociative(@ForAll("triples") List<Pattern> abc,
                                           @ForAll @IntRange(min = 1, max = 60) int qLen, @ForAll @IntRange(min = 1, max = 60) int kvLen) {
        Pattern a = abc.get(0), b = abc.get(1), c = abc.get(2);
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
