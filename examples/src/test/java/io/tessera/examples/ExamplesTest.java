package io.tessera.examples;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.attention.Attention;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every example runs at a small size, and what it prints and computes is checked. */
class ExamplesTest {
    private final ByteArrayOutputStream printed = new ByteArrayOutputStream();
    private final PrintStream out = new PrintStream(printed, true, StandardCharsets.UTF_8);

    private String printed() { return printed.toString(StandardCharsets.UTF_8); }

    @Test
    void quickStartMatchesTheOracle() {
        double error = QuickStart.run(out, 256);
        assertThat(error).isLessThan(1e-4);
        assertThat(printed()).contains("BlockLayout[causal().and(slidingWindow(16)).or(globalTokens[0, 1]), q=256 kv=256")
                .contains("max |error| vs float64 oracle");
    }

    @Test
    void trainingThroughSparseAttentionLowersTheLoss() {
        double[] loss = TrainingStep.run(out, 256, 30);
        assertThat(loss[1]).as("loss after 30 steps vs before").isLessThan(0.5 * loss[0]);
        assertThat(printed()).contains("step   0  loss").contains("step  30  loss");
    }

    @Test
    void decodeLoopMatchesAttentionOverTheWholeSequences() {
        double difference = DecodeLoop.run(out, 300, 40);
        assertThat(difference).isLessThan(1e-5);
        // Step 0 reads the pages of each query's window of 257 keys (positions 44–300, 0–151, 51–307 in pages of 16): 17 + 10 + 17.
        assertThat(printed()).contains("step   0: lengths 301, 152, 308; 44 pages read").contains("step  39: lengths 340, 191, 347;")
                .contains("max |decode − attention over the whole sequences|");
    }

    @Test
    void customPatternIsDrawnPrintedAndRun() {
        double error = CustomPattern.run(out, 192);
        assertThat(error).isLessThan(1e-4);
        String[] rows = printed().split("\n");
        assertThat(rows[0]).startsWith("element mask");
        assertThat(rows[1]).isEqualTo("█" + "·".repeat(23));                      // query 0 sees itself only
        assertThat(rows[8]).isEqualTo("█".repeat(8) + "·".repeat(16));                  // query 7: its sentence, keys 0–7
        assertThat(rows[10]).isEqualTo("·".repeat(7) + "███" + "·".repeat(14));          // query 9: summary 7, its sentence 8–9
        assertThat(rows[17]).isEqualTo("·".repeat(7) + "█" + "·".repeat(7) + "██" + "·".repeat(7));   // query 16: summaries 7, 15, itself
        assertThat(printed()).contains("BlockLayout[predicate(sentence-or-summary).and(causal()), q=192 kv=192").contains("attention with the custom pattern");
    }

    @Test
    void interopComputesWhatPlainTensorsCompute(@TempDir Path dir) throws Exception {
        float[] fromNpy = Interop.run(out, 96, dir);
        // The same computation on Tessera-allocated tensors with the same seeds.
        try (Arena arena = Arena.ofShared()) {
            long[] shape = {1, 4, 96, 32};
            Tensor q = Tensor.randomNormal(arena, 1, 1f, shape), k = Tensor.randomNormal(arena, 2, 1f, shape), v = Tensor.randomNormal(arena, 3, 1f, shape);
            assertThat(fromNpy).containsExactly(Attention.sparse(Pattern.causal()).forward(arena, q, k, v).toArray());
        }
        assertThat(printed()).contains("q wraps the FloatBuffer in place: true").contains("contiguous false")
                .contains("Npy.Header[<f4, C, shape=[1, 4, 96, 32], data at byte 128]").contains("have no device header slot: true");
    }
}
