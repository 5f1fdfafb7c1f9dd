package io.tessera.pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** A compile that fails inside and/or leaves the thread's mask scratch as it found it. */
class MaskScratchTest {

    @Test
    void aPredicateThatThrowsInsideAndLeavesNoScratchRowsInUse() {
        Pattern boom = Pattern.predicate("boom", (i, j) -> {
            if (i == 5 && j == 3) throw new IllegalStateException("user predicate failed at (5, 3)");
            return (i + j) % 3 == 0;
        });
        MaskScratch scratch = MaskScratch.local();
        int before = scratch.depth();
        // causal classifies lower tiles FULL, so and() asks the predicate's rows through fillRow (two scratch rows deep).
        for (Pattern p : new Pattern[] {boom.and(Pattern.causal()), Pattern.full().or(Pattern.slidingWindow(2).and(boom)).and(Pattern.causal().and(boom))}) {
            for (int attempt = 0; attempt < 3; attempt++) {
                assertThatThrownBy(() -> PatternCompiler.compile(p, 16, 16, 4, 4)).isInstanceOf(IllegalStateException.class)
                        .hasMessage("user predicate failed at (5, 3)");
                assertThat(scratch.depth()).as("scratch rows in use after a failed compile of %s", p).isEqualTo(before);
            }
        }
        // And the scratch still works: a good compile afterwards agrees with the element rule.
        Pattern good = Pattern.predicate("thirds", (i, j) -> (i + j) % 3 == 0).and(Pattern.causal());
        var layout = PatternCompiler.compile(good, 16, 16, 4, 4);
        long expected = 0;
        for (int i = 0; i < 16; i++) for (int j = 0; j <= i; j++) if ((i + j) % 3 == 0) expected++;
        assertThat(layout.allowedPairs()).isEqualTo(expected);
        assertThat(scratch.depth()).isEqualTo(before);
    }

    @Test
    void andPopsItsRowsWhenTheRightOperandThrows() {
        MaskScratch scratch = MaskScratch.local();
        int before = scratch.depth();
        Node and = (Node) Pattern.slidingWindow(3).and(Pattern.predicate("boom", (i, j) -> { throw new IllegalStateException("boom"); }));
        assertThatThrownBy(() -> and.fillRow(0, 0, 8, new Frame(8, 8, CausalAlignment.TOP_LEFT), new long[1], 0, scratch)).hasMessage("boom");
        assertThat(scratch.depth()).isEqualTo(before);
    }
}
