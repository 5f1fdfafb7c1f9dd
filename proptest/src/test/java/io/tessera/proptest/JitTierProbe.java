package io.tessera.proptest;

import io.tessera.layout.CsrMatrix;
import io.tessera.tensor.Tensor;
import io.tessera.variant.sparse.SparseAttention;
import io.tessera.variant.sparse.TopKAttention;
import java.lang.foreign.Arena;
import java.util.Arrays;

/**
 * Run in a fresh JVM by {@code RobustnessExamples}: the first calls of explicit sparse and top-k
 * attention run in the interpreter, the later ones compiled by C1 and then C2. Prints the bits of
 * the first result and the number of later calls whose bits differ from it (0 when the reduction
 * order does not depend on the JIT tier).
 */
public final class JitTierProbe {
    private JitTierProbe() {}

    public static void main(String[] args) {
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 3000;
        int n = 24, d = 67;   // 67: several full vectors plus a tail at every width
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, n, d);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 1, n, d), out = Tensor.zeros(arena, 1, 1, n, d);
            int[] offsets = new int[n + 1], cols = new int[n * n];
            for (int r = 0; r < n; r++) {
                offsets[r + 1] = (r + 1) * n;
                for (int c = 0; c < n; c++) cols[r * n + c] = c;
            }
            CsrMatrix all = new CsrMatrix(n, n, offsets, cols);
            TopKAttention topK = TopKAttention.withK(5);
            float[] first = null;
            int differing = 0;
            for (int call = 0; call < calls; call++) {
                SparseAttention.forward(q, k, v, all, 0.125f, out, null);
                float[] a = out.toArray();
                topK.forward(q, k, v, out);
                float[] b = out.toArray();
                float[] both = Arrays.copyOf(a, a.length + b.length);
                System.arraycopy(b, 0, both, a.length, b.length);
                if (first == null) first = both;
                else if (!Arrays.equals(first, both)) differing++;
            }
            System.out.println("first=" + Arrays.hashCode(first) + " differing=" + differing);
        }
    }
}
