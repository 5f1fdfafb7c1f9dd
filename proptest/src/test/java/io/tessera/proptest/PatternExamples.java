package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.layout.BlockLayout;
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
