package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.PatternCompiler;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * Extreme parameters (issue #17): costs follow the work the output needs, not a parameter's
 * magnitude, and values that cannot be honoured are rejected up front, naming the parameter.
 * Timeouts are generous: each case takes milliseconds when the cost is bounded.
 */
class PatternLimitsTest {

    static final Duration BOUNDED = Duration.ofSeconds(20);

    @Test
    void aHugeDilatedWindowCostsWhatItsKeysCost() {
        BlockLayout layout = assertTimeoutPreemptively(BOUNDED, () -> PatternCompiler.compile(Pattern.dilatedWindow(Integer.MAX_VALUE, 1), 300, 200, 32, 32));
        assertThat(layout.partialTiles()).isZero();
        assertThat(layout.allowedPairs()).isEqualTo(300L * 200);
        BlockLayout dilated = assertTimeoutPreemptively(BOUNDED, () -> PatternCompiler.compile(Pattern.dilatedWindow(Integer.MAX_VALUE, 3), 300, 200, 32, 32));
        // Regenerating PARTIAL masks (what kernels do on every call) is bounded too.
        assertTimeoutPreemptively(BOUNDED, () -> PatternProperties.checkLayout(Pattern.dilatedWindow(Integer.MAX_VALUE, 3), 300, 200, 32, 32));
        long expected = 0;
        for (int i = 0; i < 300; i++) for (int j = 0; j < 200; j++) if ((i - j) % 3 == 0) expected++;
        assertThat(dilated.allowedPairs()).isEqualTo(expected);
        // A huge dilation is just as bounded: only the query's own key is in reach.
        assertThat(assertTimeoutPreemptively(BOUNDED, () -> PatternCompiler.compile(Pattern.dilatedWindow(Integer.MAX_VALUE, Integer.MAX_VALUE), 100, 100, 16, 16)).allowedPairs())
                .isEqualTo(100);
    }

    @Test
    void manyRandomBlocksAreDrawnInTimeProportionalToTheDraw() {
        // 300,000 of 1,048,576 key blocks per query block: quadratic draws would take hours.
        BlockLayout layout = assertTimeoutPreemptively(BOUNDED, () -> PatternCompiler.compile(Pattern.randomBlocks(1, 300_000, 7, false), 4, 1 << 20, 4, 4096));
        assertThat(layout.tileCount()).isEqualTo(256);   // 300,000 random keys of 1M touch every 4096-key block
        var rule = Pattern.randomBlocks(1, 300_000, 7, false).predicate(4, 1 << 20);
        for (int i = 0; i < 4; i++) {
            int seen = 0;
            for (int j = 0; j < 1 << 20; j++) if (rule.allows(i, j)) seen++;
            assertThat(seen).as("keys of query %d", i).isEqualTo(300_000);
        }
    }

    @Test
    void negativeRandomBlockCountsAreRejected() {
        assertThatThrownBy(() -> Pattern.bigBird(64, 3, 1, -1, 0)).isInstanceOf(IllegalArgumentException.class).hasMessage("randomBlocks must be >= 0, got -1");
        assertThatThrownBy(() -> Pattern.randomBlocks(64, -2, 0, true)).isInstanceOf(IllegalArgumentException.class).hasMessage("random blocks must be >= 0, got -2");
    }

    @Test
    void bigBirdGlobalBlocksThatOverflowAreRejectedNamingThem() {
        assertThatThrownBy(() -> Pattern.bigBird(1 << 16, 3, 1 << 16, 0, 0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("globalBlocks=65536 of block size 65536 make 4294967296 global tokens, more than the largest sequence length 2147483647");
        // BigBird's global block is one run: no int per global token is allocated.
        assertThat(Pattern.bigBird(1 << 15, 3, 1 << 15, 0, 0).toString()).contains("globalTokens[0..1073741823]");
    }

    @Test
    void documentLengthsThatOverflowAreRejectedNamingThem() {
        assertThatThrownBy(() -> Pattern.documents(Integer.MAX_VALUE, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("document lengths[0..1] sum to 2147483648, more than the largest sequence length 2147483647");
    }

    @Test
    void aRandomBlockLargerThanTheKeysIsOneBlockOfEveryKey() {
        BlockLayout random = PatternCompiler.compile(Pattern.randomBlocks(Integer.MAX_VALUE, 1, 3, false), 10, 10, 4, 4);
        assertThat(random.partialTiles()).isZero();
        assertThat(random.allowedPairs()).isEqualTo(100);
        assertThat(keysOf(Pattern.randomBlocks(Integer.MAX_VALUE, 1, 3, true), 10, 10, 9)).hasSize(10);
    }

    @Test
    void blockSizesFarBeyondTheLengthsCostWhatTheTilesCost() {
        // Scratch is sized by the lengths, not the block sizes, and block ends do not overflow.
        BlockLayout prefix = assertTimeoutPreemptively(BOUNDED, () -> PatternCompiler.compile(Pattern.causal(), Integer.MAX_VALUE, 1, (1 << 30) + 1, Integer.MAX_VALUE));
        assertThat(prefix.qBlocks()).isEqualTo(2);
        assertThat(prefix.colIndices()).containsExactly(0, 0);
        assertThat(prefix.kinds()).containsExactly(TileKind.FULL.code(), TileKind.FULL.code());
    }

    @Test
    void aStoredTileTooLargeForOneArrayIsRefusedUpFront() {
        // A predicate stores its masks: a tile too large for one array is refused before anything is evaluated.
        assertThatThrownBy(() -> PatternCompiler.compile(Pattern.predicate("diagonal", (i, j) -> i == j), 1 << 20, 1 << 20, 1 << 20, 1 << 20))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("predicate(diagonal) stores the masks of its PARTIAL tiles, and a 1048576 x 1048576 tile (qLen=1048576, kvLen=1048576,"
                        + " blockQ=1048576, blockKV=1048576) needs 17179869184 mask words, more than one array holds; use smaller blocks");
    }

    static java.util.List<Integer> keysOf(Pattern p, int qLen, int kvLen, int i) {
        var rule = p.predicate(qLen, kvLen);
        var keys = new java.util.ArrayList<Integer>();
        for (int j = 0; j < kvLen; j++) if (rule.allows(i, j)) keys.add(j);
        return keys;
    }

    @Test
    void extremeWindowsAndBandsStayExact() {
        for (Pattern p : new Pattern[] {Pattern.slidingWindow(Integer.MAX_VALUE), Pattern.blockWindow(Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE),
                Pattern.blockDiagonal(3, Integer.MAX_VALUE), Pattern.summaryColumns(Integer.MAX_VALUE, Integer.MAX_VALUE), Pattern.stride(Integer.MAX_VALUE),
                Pattern.causal(io.tessera.pattern.CausalAlignment.BOTTOM_RIGHT).and(Pattern.slidingWindow(Integer.MAX_VALUE, 0))}) {
            PatternProperties.checkLayout(p, 70, 50, 16, 16);
            PatternProperties.checkLayout(p, 50, 70, 16, 16);
        }
    }
}
