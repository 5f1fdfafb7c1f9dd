package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** GEMM on every backend against a float64 product, for every transpose combination and view. */
class GemmProperties {

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    @Property(tries = 150)
    void matchesFloat64Product(@ForAll("backends") String backend, @ForAll boolean transposeA, @ForAll boolean transposeB,
                               @ForAll @IntRange(min = 1, max = 150) int m, @ForAll @IntRange(min = 1, max = 150) int n,
                               @ForAll @IntRange(min = 1, max = 300) int k, @ForAll @IntRange(min = 0, max = 2) int betaCase,
                               @ForAll @IntRange(min = 1, max = 3) int threads, @ForAll long seed) {
        checkAgainstFloat64(Backend.named(backend).withThreads(threads), transposeA, transposeB, m, n, k, betaCase, seed);
    }

    /**
     * Products of depth ≤ 64 run 480 rows of c per work item (120 deeper): row counts past one and
     * several such items, at and around the depth where the item size changes, on two threads.
     */
    @Example
    void thinProductsSpanSeveralWorkItems() {
        Backend simd = Backend.named("simd").withThreads(2);
        for (int m : new int[] {481, 1000}) {
            for (int k : new int[] {5, 64, 65}) {
                checkAgainstFloat64(simd, false, false, m, 33, k, 0, m + k);
                checkAgainstFloat64(simd, true, false, m, 16, k, 2, m * k);
            }
        }
        // A half-precision a is widened per work item into a buffer sized for 120 rows × depth 256 = 480 rows × depth 64.
        checkBfloat16A(simd, 1000, 20, 64, 3);
    }

    /** A bfloat16 a (widened while copied) times a float32 b against the float64 product of the same (rounded) values. */
    private static void checkBfloat16A(Backend backend, int m, int n, int k, long seed) {
        try (Arena arena = Arena.ofShared()) {
            Tensor a = Tensor.randomNormal(arena, seed, 1f, m, k).to(arena, io.tessera.tensor.ElementType.BF16), b = Tensor.randomNormal(arena, seed + 1, 1f, k, n);
            Tensor c = Tensor.zeros(arena, m, n);
            backend.gemm(a, false, b, false, c, 1f, 0f);
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double dot = 0, absDot = 0;
                    for (int p = 0; p < k; p++) {
                        dot += (double) a.get(i, p) * b.get(p, j);
                        absDot += Math.abs((double) a.get(i, p) * b.get(p, j));
                    }
                    assertThat(Math.abs(c.get(i, j) - dot)).as("c[%d][%d]", i, j).isLessThanOrEqualTo(k * 0x1p-24 * absDot + 4 * 0x1p-24 * (Math.abs(dot) + 1));
                }
            }
        }
    }

    /**
     * On one thread a product of at most two panels runs 256 rows of c per work item, and a row-major
     * op(a) is copied 512 deep at a time (four or two depth slices, by vector width): row counts
     * around and past one such item, 16 and 33 columns (one or two panels, or more at 128 bits),
     * depths past one and two runs, both layouts of a, and a bfloat16 a.
     */
    @Example
    void narrowProductsOnOneThreadCopyLongRuns() {
        Backend one = Backend.named("simd").withThreads(1);
        for (int m : new int[] {257, 600}) {
            for (int n : new int[] {16, 33}) {
                for (int k : new int[] {513, 1100}) {
                    checkAgainstFloat64(one, false, false, m, n, k, 2, m + n + k);
                    checkAgainstFloat64(one, true, false, m, n, k, 0, m * n + k);
                }
            }
        }
        checkBfloat16A(one, 300, 20, 700, 5);
    }

    /** One GEMM on {@code backend} against the float64 product, within Higham's fp32 dot-product bound. */
    static void checkAgainstFloat64(Backend backend, boolean transposeA, boolean transposeB, int m, int n, int k, int betaCase, long seed) {
        float alpha = 0.75f, beta = new float[] {0f, 1f, -0.5f}[betaCase];
        try (Arena arena = Arena.ofShared()) {
            // Operands stored transposed when op() transposes them, so op(x) always has the logical shape.
            Tensor a = Tensor.randomNormal(arena, seed, 1f, transposeA ? k : m, transposeA ? m : k);
            Tensor b = Tensor.randomNormal(arena, seed + 1, 1f, transposeB ? n : k, transposeB ? k : n);
            Tensor c = Tensor.randomNormal(arena, seed + 2, 1f, m, n);
            if (beta == 0f) c.fill(Float.NaN);   // beta = 0 must ignore c entirely
            float[] before = c.toArray();
            backend.gemm(a, transposeA, b, transposeB, c, alpha, beta);
            float[] got = c.toArray();
            double worst = 0, bound = 0;
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double dot = 0, absDot = 0;
                    for (int p = 0; p < k; p++) {
                        double x = transposeA ? a.get(p, i) : a.get(i, p), y = transposeB ? b.get(j, p) : b.get(p, j);
                        dot += x * y;
                        absDot += Math.abs(x * y);
                    }
                    double expected = alpha * dot + (beta == 0f ? 0 : beta * before[i * n + j]);
                    worst = Math.max(worst, Math.abs(got[i * n + j] - expected));
                    // fp32 dot-product error bound: k·ε·Σ|xy| (Higham), plus rounding of the update.
                    bound = Math.max(bound, k * 0x1p-24 * Math.abs(alpha) * absDot + 4 * 0x1p-24 * (Math.abs(expected) + 1));
                }
            }
            assertThat(worst).isLessThanOrEqualTo(bound);
        }
    }

    @Property(tries = 30)
    void stridedViewsAreReadCorrectly(@ForAll("backends") String backend, @ForAll @IntRange(min = 2, max = 40) int m, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Tensor big = Tensor.randomNormal(arena, seed, 1f, 2 * m, 3 * m);
            Tensor a = big.slice(0, 1, m + 1).slice(1, 2, m + 2);            // m×m view with row stride 3m
            Tensor b = big.transpose(0, 1).slice(0, 0, m).slice(1, 0, m);     // column-major view
            Tensor c = Tensor.zeros(arena, m, m);
            Backend.named(backend).gemm(a, false, b, false, c, 1f, 0f);
            Tensor ca = a.contiguous(arena), cb = b.contiguous(arena), c2 = Tensor.zeros(arena, m, m);
            Backend.named("scalar").gemm(ca, false, cb, false, c2, 1f, 0f);
            float[] x = c.toArray(), y = c2.toArray();
            for (int i = 0; i < x.length; i++) assertThat((double) x[i]).isCloseTo(y[i], org.assertj.core.api.Assertions.within(1e-4 * (1 + Math.abs(y[i]))));
        }
    }

    @Example
    void badShapesNameTheParameter() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.zeros(arena, 3, 4), b = Tensor.zeros(arena, 5, 6), c = Tensor.zeros(arena, 3, 6);
            for (Backend be : Backend.available()) {
                assertThatThrownBy(() -> be.gemm(a, false, b, false, c, 1f, 0f)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("inner dimensions differ");
                assertThatThrownBy(() -> be.gemm(a, false, Tensor.zeros(arena, 4, 6), false, Tensor.zeros(arena, 3, 5), 1f, 0f))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("c shape [3, 5] must be [3, 6]");
                assertThatThrownBy(() -> be.gemm(Tensor.zeros(arena, 1, 3, 4), false, b, false, c, 1f, 0f))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("a must be rank 2");
            }
        }
    }
}
