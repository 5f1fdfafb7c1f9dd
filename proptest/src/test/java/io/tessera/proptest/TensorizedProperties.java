package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.tensorized.TensorizedAttention;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** Block-term multi-linear attention against its explicit float64 einsum definition. */
class TensorizedProperties {

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    /** X·A·Bᵀ in float64, and the same with absolute values (for the rounding bound). */
    static double[][][] project(Tensor x, Tensor a, Tensor b) {
        int n = (int) x.size(0), m = (int) x.size(1), s = (int) a.size(1), r = (int) b.size(0);
        double[][] out = new double[n][r], abs = new double[n][r];
        for (int i = 0; i < n; i++) for (int k = 0; k < r; k++) for (int j = 0; j < m; j++) for (int t = 0; t < s; t++) {
            double term = (double) x.get(i, j) * a.get(j, t) * b.get(k, t);
            out[i][k] += term;
            abs[i][k] += Math.abs(term);
        }
        return new double[][][] {out, abs};
    }

    @Property(tries = 80)
    void equalsTheExplicitEinsum(@ForAll @IntRange(min = 1, max = 8) int n, @ForAll @IntRange(min = 1, max = 6) int modelDim,
                                 @ForAll @IntRange(min = 1, max = 4) int rank, @ForAll @IntRange(min = 1, max = 3) int cpRank,
                                 @ForAll @IntRange(min = 1, max = 3) int blocks, @ForAll @IntRange(min = 1, max = 4) int outDim,
                                 @ForAll long seed, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            TensorizedAttention t = TensorizedAttention.random(n, modelDim, rank, cpRank, blocks, outDim, seed);
            Tensor xq = Tensor.randomNormal(arena, seed + 10, 1f, n, modelDim), xk = Tensor.randomNormal(arena, seed + 11, 1f, n, modelDim);
            Tensor xv = Tensor.randomNormal(arena, seed + 12, 1f, n, modelDim), out = Tensor.zeros(arena, n, outDim);
            t.on(Backend.named(backend)).forward(xq, xk, xv, out);
            double[][][] q = project(xq, t.factor(0), t.factor(1)), k = project(xk, t.factor(2), t.factor(3)), v = project(xv, t.factor(4), t.factor(5));
            Tensor wo = t.outputProjection();
            double worst = 0;
            for (int a = 0; a < n; a++) for (int c = 0; c < outDim; c++) {
                double y = 0, abs = 0;
                for (int b = 0; b < n; b++) for (int e = 0; e < n; e++) {
                    double tbar = 0, tabs = 0;   // (1/P) Σ_p Σ_r g_p[r] Q[a,r] K[b,r] V[e,r]
                    for (int p = 0; p < blocks; p++) {
                        float[] g = t.core(p);
                        for (int r = 0; r < rank; r++) {
                            tbar += g[r] * q[0][a][r] * k[0][b][r] * v[0][e][r] / blocks;
                            tabs += Math.abs(g[r]) * q[1][a][r] * k[1][b][r] * v[1][e][r] / blocks;
                        }
                    }
                    double w = wo.get((long) b * n + e, c);
                    y += tbar * w;
                    abs += tabs * Math.abs(w);
                }
                // fp32 sums of R·n² terms, each built from projections of modelDim·S terms.
                double bound = 16 * (rank * n * n + modelDim * cpRank + blocks + 4) * 0x1p-24 * abs + 1e-7;
                double err = Math.abs(out.get(a, c) - y);
                assertThat(err).as("(%d, %d): %s vs %s", a, c, out.get(a, c), y).isLessThanOrEqualTo(bound);
                worst = Math.max(worst, err);
            }
        }
    }

    @Example
    void badInputs() {
        assertThatThrownBy(() -> TensorizedAttention.random(8, 4, 0, 2, 2, 3, 1)).hasMessage("rank R must be >= 1, got 0");
        assertThatThrownBy(() -> TensorizedAttention.random(8, 4, 2, 2, 0, 3, 1)).hasMessage("blocks P must be >= 1, got 0");
        try (Arena arena = Arena.ofShared()) {
            TensorizedAttention t = TensorizedAttention.random(8, 4, 2, 2, 2, 3, 1);
            Tensor x = Tensor.zeros(arena, 7, 4);
            assertThatThrownBy(() -> t.forward(x, x, x, Tensor.zeros(arena, 7, 3))).hasMessageContaining("xq must be [n=8, modelDim=4], got [7, 4]");
        }
    }
}
