package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import io.tessera.pattern.CausalAlignment;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.Pattern;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import net.jqwik.api.Example;

/** Presets against hand-checked cases from their papers, block maps, pictures and bad input. */
class PatternExamples {

    static String map(BlockLayout layout) {
        String s = layout.toString();
        return s.substring(s.indexOf('\n') + 1);
    }

    static List<Integer> keysOf(Pattern p, int n, int i) {
        ElementPredicate rule = p.predicate(n, n);
        List<Integer> keys = new ArrayList<>();
        for (int j = 0; j < n; j++) if (rule.allows(i, j)) keys.add(j);
        return keys;
    }

    @Example
    void causalBlockMap() {
        assertThat(map(Pattern.causal().compile(8, 8, 2, 2))).isEqualTo("""
                ▒···
                █▒··
                ██▒·
                ███▒
                """);
    }

    @Example
    void bottomRightCausalForDecoding() {
        // 2 new queries against a cache of 5 keys: the last query sees every key.
        assertThat(keysOf(Pattern.causal(CausalAlignment.BOTTOM_RIGHT), 5, 0)).containsExactly(0);
        ElementPredicate rule = Pattern.causal(CausalAlignment.BOTTOM_RIGHT).predicate(2, 5);
        assertThat(IntStream.range(0, 5).filter(j -> rule.allows(0, j)).boxed().toList()).containsExactly(0, 1, 2, 3);
        assertThat(IntStream.range(0, 5).filter(j -> rule.allows(1, j)).boxed().toList()).containsExactly(0, 1, 2, 3, 4);
    }

    static List<Integer> keysOf(Pattern p, int qLen, int kvLen, int i) {
        ElementPredicate rule = p.predicate(qLen, kvLen);
        List<Integer> keys = new ArrayList<>();
        for (int j = 0; j < kvLen; j++) if (rule.allows(i, j)) keys.add(j);
        return keys;
    }

    @Example
    void mistralWindowDecodingSeesTheLastWindowOfTheCache() {
        // One new query against a cache of 100 keys: it sits at position 99 and sees 99 and the 4 keys before it.
        Pattern mistral = Pattern.causal(CausalAlignment.BOTTOM_RIGHT).and(Pattern.slidingWindow(4, 0));
        assertThat(keysOf(mistral, 1, 100, 0)).containsExactly(95, 96, 97, 98, 99);
        // A chunk of 3 queries: positions 97, 98, 99.
        assertThat(keysOf(mistral, 3, 100, 0)).containsExactly(93, 94, 95, 96, 97);
        assertThat(keysOf(mistral, 3, 100, 2)).containsExactly(95, 96, 97, 98, 99);
        // The compiled layout visits only the key blocks holding 95..99: 80..95 (PARTIAL) and 96..99 (FULL).
        BlockLayout layout = mistral.compile(1, 100, 16, 16);
        assertThat(layout.colIndices()).containsExactly(5, 6);
        assertThat(layout.kinds()).containsExactly(TileKind.PARTIAL.code(), TileKind.FULL.code());
        assertThat(layout.allowedPairs()).isEqualTo(5);
        // The alignment can sit on either operand, or on the whole pattern.
        assertThat(keysOf(Pattern.slidingWindow(4, 0).and(Pattern.causal(CausalAlignment.BOTTOM_RIGHT)), 1, 100, 0)).containsExactly(95, 96, 97, 98, 99);
        assertThat(keysOf(Pattern.causal().and(Pattern.slidingWindow(4, 0)).aligned(CausalAlignment.BOTTOM_RIGHT), 1, 100, 0)).containsExactly(95, 96, 97, 98, 99);
        // Top-left (the default when nothing names an alignment): query 0 is position 0.
        assertThat(keysOf(Pattern.causal().and(Pattern.slidingWindow(4, 0)), 1, 100, 0)).containsExactly(0);
    }

    @Example
    void everyPositionalPrimitiveDecodesAtItsPosition() {
        CausalAlignment br = CausalAlignment.BOTTOM_RIGHT;
        // Prefix LM decoding: the prefix plus everything up to the query's position 9.
        assertThat(keysOf(Pattern.prefixLM(3).aligned(br), 2, 10, 0)).containsExactly(0, 1, 2, 3, 4, 5, 6, 7, 8);
        // Block-local: position 9 is in block [8, 12).
        assertThat(keysOf(Pattern.blockLocal(4).aligned(br), 1, 10, 0)).containsExactly(8, 9);
        // Dilated and strided rows count from position 9, not from index 0.
        assertThat(keysOf(Pattern.dilatedWindow(2, 3).aligned(br), 1, 10, 0)).containsExactly(3, 6, 9);
        assertThat(keysOf(Pattern.sparseTransformerStrided(3, true).aligned(br), 1, 10, 0)).containsExactly(0, 3, 6, 7, 8, 9);
        // Global rows: the query at position 9 is global; index 0 is a query of an earlier call.
        assertThat(keysOf(Pattern.globalRows(9).aligned(br), 1, 10, 0)).hasSize(10);
        assertThat(keysOf(Pattern.globalRows(0).aligned(br), 1, 10, 0)).isEmpty();
        // Documents: the query at position 4 is in the second document [3, 5).
        assertThat(keysOf(Pattern.documents(3, 2).and(Pattern.causal(br)), 1, 5, 0)).containsExactly(3, 4);
        // Axial 3x4: position 11 is row 2, column 3.
        assertThat(keysOf(Pattern.axial(3, 4).aligned(br), 1, 12, 0)).containsExactly(3, 7, 8, 9, 10, 11);
        // Random blocks: a decoding step sees the blocks its position saw in the prefill.
        Pattern random = Pattern.randomBlocks(4, 2, 11, true).aligned(br);
        assertThat(keysOf(random, 1, 64, 0)).isEqualTo(keysOf(random, 64, 64, 63));
        // Bottom-right with more queries than keys: the first queries sit before position 0.
        assertThat(keysOf(Pattern.causal(br), 4, 2, 1)).isEmpty();
        assertThat(keysOf(Pattern.causal(br), 4, 2, 2)).containsExactly(0);
        assertThat(keysOf(Pattern.slidingWindow(0, 2).aligned(br), 4, 2, 0)).containsExactly(0);
    }

    @Example
    void alignmentsAreNamedOnceAndChecked() {
        assertThatThrownBy(() -> Pattern.causal(CausalAlignment.BOTTOM_RIGHT).and(Pattern.causal(CausalAlignment.TOP_LEFT)))
                .hasMessage("and() mixes alignments: causal(BOTTOM_RIGHT) is BOTTOM_RIGHT but causal(TOP_LEFT) is TOP_LEFT"
                        + " (a pattern places its queries one way; name the alignment once)");
        assertThatThrownBy(() -> Pattern.prefixLM(4).aligned(CausalAlignment.TOP_LEFT).or(Pattern.slidingWindow(2).aligned(CausalAlignment.BOTTOM_RIGHT)))
                .hasMessageContaining("or() mixes alignments");
        assertThatThrownBy(() -> Pattern.causal(CausalAlignment.TOP_LEFT).aligned(CausalAlignment.BOTTOM_RIGHT))
                .hasMessage("aligned(BOTTOM_RIGHT) contradicts causal(TOP_LEFT), which is TOP_LEFT");
        assertThatThrownBy(() -> Pattern.causal(null)).hasMessage("alignment");
        assertThatThrownBy(() -> Pattern.full().aligned(null)).hasMessage("alignment");
        assertThat(Pattern.causal().and(Pattern.slidingWindow(4, 0)).aligned(CausalAlignment.BOTTOM_RIGHT).toString())
                .isEqualTo("causal().and(slidingWindow(4, 0)).aligned(BOTTOM_RIGHT)");
        // Patterns defined only on their grid reject query positions off it, naming the lengths.
        assertThatThrownBy(() -> Pattern.documents(3, 2).compile(6, 5, 2, 2))
                .hasMessage("documents[3, 2] covers positions 0..4 but qLen=6, kvLen=5 (TOP_LEFT: queries at positions 0..5)");
        assertThatThrownBy(() -> Pattern.axial(2, 2).aligned(CausalAlignment.BOTTOM_RIGHT).compile(5, 4, 2, 2))
                .hasMessage("axial 2x2 covers positions 0..3 but qLen=5, kvLen=4 (BOTTOM_RIGHT: queries at positions -1..3)");
        assertThatThrownBy(() -> Pattern.globalRows(10).aligned(CausalAlignment.BOTTOM_RIGHT).compile(2, 10, 2, 2))
                .hasMessage("global token index 10 is past the last query position 9 for qLen=2, kvLen=10 (BOTTOM_RIGHT: queries at positions 8..9)");
    }

    @Example
    void bigBirdBlockMapMatchesThePaper() {
        // Zaheer et al. 2020, Fig. 1 (ITC): 3-block window, first block global, no random blocks.
        assertThat(map(Pattern.bigBird(2, 3, 1, 0, 0).compile(12, 12, 2, 2))).isEqualTo("""
                ██████
                ███···
                ████··
                █·███·
                █··███
                █···██
                """);
        // Random blocks: r per query block, reproducible from the seed.
        BlockLayout a = Pattern.bigBird(4, 3, 1, 2, 42).compile(64, 64, 4, 4), b = Pattern.bigBird(4, 3, 1, 2, 42).compile(64, 64, 4, 4);
        assertThat(a.colIndices()).containsExactly(b.colIndices());
        for (int r = 1; r < a.qBlocks(); r++) assertThat(a.tilesInRow(r)).isBetween(4, 6);   // 1 global + ≤ 3 window + 2 random, overlaps merge
    }

    @Example
    void longformerWindowAndGlobalTokens() {
        // Beltagy et al. 2020: window w = 4 (2 each side), token 0 global.
        Pattern p = Pattern.longformer(4, 1, 0);
        assertThat(keysOf(p, 10, 5)).containsExactly(0, 3, 4, 5, 6, 7);
        assertThat(keysOf(p, 10, 0)).containsExactly(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
        assertThat(keysOf(Pattern.longformer(4, 2), 12, 6)).containsExactly(2, 4, 6, 8, 10);
    }

    @Example
    void sparseTransformerPatternsMatchThePaper() {
        // Child et al. 2019, Fig. 3: strided with l = 3, causal: local {5,6,7} and strided {1,4,7}.
        assertThat(keysOf(Pattern.sparseTransformerStrided(3, true), 10, 7)).containsExactly(1, 4, 5, 6, 7);
        // Fixed with l = 4, c = 1, causal: own block {4,5} and summary column {3}.
        assertThat(keysOf(Pattern.sparseTransformerFixed(4, 1, true), 10, 5)).containsExactly(3, 4, 5);
        List<Pattern> factorized = Pattern.sparseTransformerFactorized(3, true);
        assertThat(keysOf(factorized.get(0), 10, 7)).containsExactly(5, 6, 7);
        assertThat(keysOf(factorized.get(1), 10, 7)).containsExactly(1, 4, 7);
        assertThat(map(Pattern.sparseTransformerFixed(4, 1, true).compile(16, 16, 4, 4))).isEqualTo("""
                ▒···
                ▒▒··
                ▒▒▒·
                ▒▒▒▒
                """);
    }

    @Example
    void axialDocumentsAndPrefixLM() {
        assertThat(keysOf(Pattern.axial(3, 4), 12, 5)).containsExactly(1, 4, 5, 6, 7, 9);
        assertThat(keysOf(Pattern.documents(3, 2), 5, 3)).containsExactly(3, 4);
        assertThat(keysOf(Pattern.documents(3, 2).and(Pattern.causal()), 5, 1)).containsExactly(0, 1);
        assertThat(keysOf(Pattern.prefixLM(2), 5, 0)).containsExactly(0, 1);
        assertThat(keysOf(Pattern.prefixLM(2), 5, 3)).containsExactly(0, 1, 2, 3);
    }

    @Example
    void perHeadPatternsCompileOneLayoutPerHead() {
        var layouts = Pattern.perHead(Pattern.causal(), Pattern.slidingWindow(1)).layouts(2, 8, 8, 4, 4);
        assertThat(layouts.count()).isEqualTo(2);
        assertThat(layouts.forHead(0).description()).isEqualTo("causal()");
        assertThat(layouts.forHead(1).description()).isEqualTo("slidingWindow(1)");
        assertThatThrownBy(() -> Pattern.perHead(Pattern.causal()).layouts(3, 8, 8, 4, 4)).hasMessageContaining("1 patterns but the call has 3 heads");
    }

    @Example
    void compiledLayoutsAreCachedAndPrintable() {
        Pattern p = Pattern.slidingWindow(100).or(Pattern.globalTokens(0, 1));
        assertThat(p.compile(1000, 1000, 64, 64)).isSameAs(p.compile(1000, 1000, 64, 64));
        assertThat(p.toString()).isEqualTo("slidingWindow(100).or(globalTokens[0, 1])");
        assertThat(Pattern.bigBird(64, 3, 1, 2, 7).toString()).isEqualTo("blockWindow(64, 1, 1).or(globalTokens[0..63]).or(randomBlocks(64, 2, seed 7))");
        assertThat(Pattern.globalRows(3, 5, 6, 7, 9).toString()).isEqualTo("globalRows[3, 5..7, 9]");
        assertThat(p.compile(1000, 1000, 64, 64).toString()).startsWith("BlockLayout[slidingWindow(100).or(globalTokens[0, 1]), q=1000 kv=1000, blocks 64x64 -> 16x16");
    }

    @Example
    void badInputsNameTheParameterAndValue() {
        assertThatThrownBy(() -> Pattern.slidingWindow(-1)).hasMessage("left must be >= 0, got -1");
        assertThatThrownBy(() -> Pattern.slidingWindow(2, -3)).hasMessage("right must be >= 0, got -3");
        assertThatThrownBy(() -> Pattern.blockLocal(0)).hasMessage("block size must be >= 1, got 0");
        assertThatThrownBy(() -> Pattern.stride(0)).hasMessage("stride must be >= 1, got 0");
        assertThatThrownBy(() -> Pattern.dilatedWindow(2, 0)).hasMessage("dilation must be >= 1, got 0");
        assertThatThrownBy(() -> Pattern.summaryColumns(4, 5)).hasMessage("summary width=5 must be <= period=4");
        assertThatThrownBy(() -> Pattern.randomBlocks(0, 2, 1, false)).hasMessage("block size must be >= 1, got 0");
        assertThatThrownBy(() -> Pattern.globalTokens()).hasMessageContaining("at least one index");
        assertThatThrownBy(() -> Pattern.globalTokens(-2)).hasMessageContaining("global token index -2 is negative");
        assertThatThrownBy(() -> Pattern.globalTokens(5).compile(4, 4, 2, 2)).hasMessageContaining("global token index 5 is out of range for qLen=4");
        assertThatThrownBy(() -> Pattern.documents(3, 3).compile(7, 7, 2, 2)).hasMessageContaining("document lengths sum to 6 but qLen=7");
        assertThatThrownBy(() -> Pattern.documents(3, 0)).hasMessage("document lengths[1] must be >= 1, got 0");
        assertThatThrownBy(() -> Pattern.axial(3, 4).compile(10, 10, 2, 2)).hasMessageContaining("axial 3x4 needs qLen = kvLen = 12");
        assertThatThrownBy(() -> Pattern.causal().compile(8, 8, 0, 2)).hasMessage("blockQ must be >= 1, got 0");
        assertThatThrownBy(() -> Pattern.causal().compile(0, 8, 2, 2)).hasMessage("qLen must be >= 1, got 0");
        assertThatThrownBy(() -> Pattern.bigBird(64, 2, 1, 1, 0)).hasMessageContaining("windowBlocks must be odd");
        assertThatThrownBy(() -> Pattern.longformer(3, 1)).hasMessageContaining("window must be even");
        assertThatThrownBy(() -> Pattern.perHead()).hasMessageContaining("at least one pattern");
        assertThatThrownBy(() -> Pattern.predicate(" ", (i, j) -> true)).hasMessageContaining("name must be non-blank");
    }
}
