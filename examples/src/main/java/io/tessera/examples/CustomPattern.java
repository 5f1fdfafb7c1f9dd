package io.tessera.examples;

import io.tessera.attention.Attention;
import io.tessera.layout.BlockLayout;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.Pattern;
import io.tessera.reference.DenseReference;
import io.tessera.tensor.Tensor;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.util.Locale;

/**
 * A pattern of your own: a mask is a function of (query, key). Here every query sees the keys of its
 * own 8-token "sentence" and every 8th key before it (a summary stride), causally. The example draws
 * the element mask of the first tokens, prints the compiled block map, and runs attention with it.
 */
public final class CustomPattern {
    private CustomPattern() {}

    public static void main(String[] args) {
        run(System.out, args.length > 0 ? Integer.parseInt(args[0]) : 2048);
    }

    /** The pattern this example builds. */
    public static Pattern pattern() {
        ElementPredicate sentenceOrSummary = (q, kv) -> q / 8 == kv / 8 || kv % 8 == 7;
        return Pattern.predicate("sentence-or-summary", sentenceOrSummary).and(Pattern.causal());
    }

    /** Runs at sequence length {@code n}; returns the largest error against the float64 oracle. */
    public static double run(PrintStream out, int n) {
        Pattern pattern = pattern();
        out.println("element mask of the first 24 queries and keys (█ attends, · masked):");
        out.print(draw(pattern.predicate(n, n), Math.min(24, n)));
        BlockLayout layout = pattern.compile(n, n, 64, 64);
        out.println(layout);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 4, 1f, 1, 2, n, 32);
            Tensor k = Tensor.randomNormal(arena, 5, 1f, 1, 2, n, 32);
            Tensor v = Tensor.randomNormal(arena, 6, 1f, 1, 2, n, 32);
            Tensor output = Attention.sparse(pattern).forward(arena, q, k, v);
            double error = QuickStart.maxError(output, DenseReference.attention(q, k, v, pattern.asMask(n, n), Double.NaN).output());
            out.printf(Locale.ROOT, "attention with the custom pattern: max |error| vs float64 oracle %.2e%n", error);
            return error;
        }
    }

    /** The top-left {@code size}×{@code size} corner of a mask, one row per query. */
    static String draw(ElementPredicate mask, int size) {
        StringBuilder sb = new StringBuilder();
        for (int q = 0; q < size; q++) {
            for (int kv = 0; kv < size; kv++) sb.append(mask.allows(q, kv) ? '█' : '·');
            sb.append('\n');
        }
        return sb.toString();
    }
}
