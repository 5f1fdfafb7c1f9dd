package io.tessera.examples;

import io.tessera.attention.Attention;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.util.Locale;

/**
 * A decode loop with a paged KV cache: three sequences with prompts of different lengths are
 * prefilled into one {@link KvCache}, then generate token after token — each step appends every
 * sequence's new key and value and runs one batched {@link PagedAttention} call for their new
 * queries (Mistral's sliding window, 8 query heads over 2 KV heads). Each step's output is compared
 * with attention over the whole sequence computed at once.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp … io.tessera.examples.DecodeLoop [promptLength] [steps]
 * </pre>
 */
public final class DecodeLoop {
    private DecodeLoop() {}

    public static void main(String[] args) {
        run(System.out, args.length > 0 ? Integer.parseInt(args[0]) : 1000, args.length > 1 ? Integer.parseInt(args[1]) : 50);
    }

    /** Runs {@code steps} decode steps after prompts of about {@code promptLength} tokens; returns the largest difference from full attention. */
    public static double run(PrintStream out, int promptLength, int steps) {
        int heads = 8, kvHeads = 2, d = 64, window = 256, pageSize = 16;
        int[] prompts = {promptLength, promptLength / 2 + 1, promptLength + 7};   // ragged batch
        int batch = prompts.length;
        Pattern pattern = Pattern.causal().and(Pattern.slidingWindow(window, 0));
        try (Arena arena = Arena.ofShared()) {
            // What a model would produce: keys, values and queries of every position of each sequence.
            Tensor[] k = new Tensor[batch], v = new Tensor[batch], q = new Tensor[batch];
            int pages = 0;
            for (int b = 0; b < batch; b++) {
                int length = prompts[b] + steps;
                k[b] = Tensor.randomNormal(arena, 10 + b, 1f, 1, kvHeads, length, d);
                v[b] = Tensor.randomNormal(arena, 20 + b, 1f, 1, kvHeads, length, d);
                q[b] = Tensor.randomNormal(arena, 30 + b, 1f, 1, heads, length, d);
                pages += (length + pageSize - 1) / pageSize;
            }

            KvCache cache = KvCache.allocate(arena, batch, pages, pageSize, kvHeads, d, d);   // every buffer made once
            PagedAttention decode = PagedAttention.of(pattern);
            int[] sequences = {0, 1, 2};
            for (int b = 0; b < batch; b++) cache.append(b, k[b].slice(2, 0, prompts[b]), v[b].slice(2, 0, prompts[b]));   // prefill
            Tensor newQ = Tensor.zeros(arena, batch, heads, 1, d), output = Tensor.zeros(arena, batch, heads, 1, d);
            Tensor[] decoded = new Tensor[batch];
            for (int b = 0; b < batch; b++) decoded[b] = Tensor.zeros(arena, 1, heads, steps, d);
            for (int step = 0; step < steps; step++) {
                for (int b = 0; b < batch; b++) {
                    int t = prompts[b] + step;
                    cache.append(b, k[b].slice(2, t, t + 1), v[b].slice(2, t, t + 1));   // the new token's key and value
                    newQ.slice(0, b, b + 1).copyFrom(q[b].slice(2, t, t + 1));
                }
                int pagesRead = decode.forward(cache, sequences, newQ, output, null);   // one call for the batch
                for (int b = 0; b < batch; b++) decoded[b].slice(2, step, step + 1).copyFrom(output.slice(0, b, b + 1));
                if (step == 0 || step == steps - 1) {
                    out.printf(Locale.ROOT, "step %3d: lengths %d, %d, %d; %d pages read%n", step, cache.length(0), cache.length(1), cache.length(2), pagesRead);
                }
            }

            double worst = 0;
            Attention full = Attention.sparse(pattern);
            for (int b = 0; b < batch; b++) {
                int length = prompts[b] + steps;
                float[] want = full.forward(arena, q[b], k[b], v[b]).slice(2, prompts[b], length).contiguous(arena).toArray();
                float[] got = decoded[b].toArray();
                for (int i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(want[i] - got[i]));
            }
            out.printf(Locale.ROOT, "max |decode − attention over the whole sequences| = %.2e%n", worst);
            return worst;
        }
    }
}
