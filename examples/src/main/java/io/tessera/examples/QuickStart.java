package io.tessera.examples;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.pattern.Pattern;
import io.tessera.reference.DenseReference;
import io.tessera.tensor.Tensor;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.util.Locale;

/**
 * The README's quick start, runnable: sparse attention (causal ∩ sliding window ∪ two global tokens)
 * on random q, k, v, its compiled block map, and the output checked against the float64 oracle.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp … io.tessera.examples.QuickStart [sequenceLength]
 * </pre>
 */
public final class QuickStart {
    private QuickStart() {}

    public static void main(String[] args) {
        run(System.out, args.length > 0 ? Integer.parseInt(args[0]) : 4096);
    }

    /** Runs the quick start at sequence length {@code n}; returns the largest error against the float64 oracle. */
    public static double run(PrintStream out, int n) {
        int heads = 8, headDim = 64;
        try (Arena arena = Arena.ofShared()) {               // shared: the SIMD backend uses all cores
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, heads, n, headDim);   // [batch, heads, seq, headDim]
            Tensor k = Tensor.randomNormal(arena, 2, 1f, 1, heads, n, headDim);   // [batch, kvHeads, seq, headDim]
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, heads, n, headDim);
            Tensor output = Tensor.zeros(arena, 1, heads, n, headDim);

            Pattern pattern = Pattern.causal().and(Pattern.slidingWindow(n / 16)).or(Pattern.globalTokens(0, 1));
            Attention attention = Attention.sparse(pattern);   // Attention.dense() for full attention
            attention.forward(q, k, v, output);                // no allocation on the hot path
            AttentionResult withLse = attention.on(Backend.named("scalar")).forwardWithLse(arena, q, k, v);

            out.println(pattern.compile(n, n, 64, 64));        // the block map, printable
            DenseReference.Result oracle = DenseReference.attention(q, k, v, pattern.asMask(n, n), Double.NaN);
            double simdError = maxError(output, oracle.output()), scalarError = maxError(withLse.output(), oracle.output());
            out.printf(Locale.ROOT, "backend %s: max |error| vs float64 oracle %.2e (scalar backend %.2e)%n",
                    attention.backend().name(), simdError, scalarError);
            return Math.max(simdError, scalarError);
        }
    }

    static double maxError(Tensor t, double[] reference) {
        float[] got = t.toArray();
        double worst = 0;
        for (int i = 0; i < got.length; i++) worst = Math.max(worst, Float.isNaN(got[i]) ? Double.POSITIVE_INFINITY : Math.abs(got[i] - reference[i]));
        return worst;
    }
}
