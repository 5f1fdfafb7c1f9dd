package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/**
 * SimdGemm's bits against a plain-Java model of its summation order: per depth slice of
 * {@link SimdGemm#KC}, each element of c is one fma chain over the slice's depths in order, then
 * c = acc·alpha (beta = 0) or c·beta + acc·alpha on the first slice, c = acc·alpha + c after it.
 * Whatever copies op(a) to the heap (a bulk copy per row of a row-major a, per depth of a transposed
 * one, element by element for other strides and half precision), however the panels are grouped
 * into work items and however many threads run them, the same floats must meet in the same fmas.
 */
class SimdGemmTest {
    @Test
    void everyLayoutGivesTheModelsBits() {
        // 1 and 7 rows: only the 2- and 1-row blocks; 130 and 250: several 120-row chunks, an item's
        // rows parts of a transposed a's storage; 481: past one thin chunk (depth ≤ 64 has 480 rows);
        // 45, 17 and 70 columns: ragged panels (at 512 bits, where panels go in pairs: 33 and 45 a
        // pair with a ragged second panel, 70 a pair and a single panel, 100 two pairs; 64, 130 and 250
        // rows end in a 4-row pair block); depth 300
        // and 530: several slices (KC is 128 or 256); 262 × 30 × 600 on one thread: one or two
        // panels, so 256-row items (and a 6-row one), op(a) copied in runs of 512 and 88. On two
        // threads, 256 × 70 × 300 runs whole chunks (120, 120, 16 rows: balanced enough), the
        // others with one or two chunks split their panels into groups.
        int[][] shapes = {{7, 33, 5}, {1, 17, 300}, {64, 64, 40}, {64, 45, 300}, {130, 64, 300}, {250, 45, 64}, {481, 17, 64}, {13, 100, 530}, {481, 33, 65}, {256, 70, 300}, {262, 30, 600}};
        for (int[] shape : shapes) {
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    for (int threads : new int[] {1, 2}) {
                        check(shape[0], shape[1], shape[2], ta, tb, ElementType.F32, ElementType.F32, threads, shape[0] * 31 + shape[2]);
                    }
                }
            }
        }
    }

    @Test
    void halfPrecisionAndStridedOperandsGiveTheModelsBits() {
        for (ElementType type : new ElementType[] {ElementType.BF16, ElementType.F16}) {
            for (boolean ta : new boolean[] {false, true}) {
                check(130, 45, 300, ta, false, type, ElementType.F32, 2, 5);
                check(481, 33, 64, ta, true, ElementType.F32, type, 1, 6);
                check(7, 17, 65, ta, ta, type, type, 2, 7);
                check(260, 20, 600, ta, false, type, type, 1, 8);   // 256-row items, a copied in runs of 512 and 88
            }
        }
        // Strided views: a [m, k] with strides (2k, 2) (neither layout's bulk copy), b column-major with row stride 3k
        try (Arena arena = Arena.ofConfined()) {
            int m = 37, n = 45, k = 70;
            Tensor a = Tensor.randomNormal(arena, 9, 1f, m, k, 2).select(2, 1);
            Tensor b = Tensor.randomNormal(arena, 10, 1f, n, 3 * k).slice(1, k, 2 * k).transpose(0, 1);
            for (int threads : new int[] {1, 2}) {
                Tensor c = Tensor.randomNormal(arena, 11, 1f, m, n);
                float[] expected = model(a, b, c.toArray(), m, n, k, 0.75f, -0.5f);
                new SimdBackend(threads).gemm(a, false, b, false, c, 0.75f, -0.5f);
                assertSameBits(c.toArray(), expected, "strided, " + threads + " threads");
            }
        }
    }

    private static void check(int m, int n, int k, boolean ta, boolean tb, ElementType aType, ElementType bType, int threads, long seed) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.randomNormal(arena, seed, 1f, ta ? k : m, ta ? m : k).to(arena, aType);
            Tensor b = Tensor.randomNormal(arena, seed + 1, 1f, tb ? n : k, tb ? k : n).to(arena, bType);
            Tensor opA = ta ? a.transpose(0, 1) : a, opB = tb ? b.transpose(0, 1) : b;
            for (float beta : new float[] {0f, -0.5f}) {
                Tensor c = Tensor.randomNormal(arena, seed + 2, 1f, m, n);
                float[] expected = model(opA, opB, c.toArray(), m, n, k, 0.75f, beta);
                new SimdBackend(threads).gemm(a, ta, b, tb, c, 0.75f, beta);
                assertSameBits(c.toArray(), expected, String.format("m=%d n=%d k=%d ta=%s tb=%s %s·%s beta=%s threads=%d", m, n, k, ta, tb, aType, bType, beta, threads));
            }
        }
    }

    @Test
    void panelGroupsKeepTheThreadsBusy() {
        try (Arena arena = Arena.ofConfined()) {
            // 3 chunks of 120, 120 and 16 rows on 2 threads: 136 of 256 rows on the busiest, whole chunks
            assertThat(SimdGemm.panelGroups(call(arena, 256, 70, 300), 2)).isEqualTo(1);
            // one chunk: split into up to 8 groups (4 items per thread), never more than the panels
            assertThat(SimdGemm.panelGroups(call(arena, 64, 64 * SimdGemm.PANEL, 40), 2)).isEqualTo(8);
            assertThat(SimdGemm.panelGroups(call(arena, 64, 3, 40), 2)).isEqualTo(1);
            assertThat(SimdGemm.panelGroups(call(arena, 64, 64 * SimdGemm.PANEL, 40), 1)).isEqualTo(1);
            // at most two panels on one thread: 256-row items (E·K of Linformer, 256 × 64, is one); on two, 120
            assertThat(SimdGemm.items(call(arena, 256, 2 * SimdGemm.PANEL, 300), 1)).isEqualTo(1);
            assertThat(SimdGemm.items(call(arena, 257, 2 * SimdGemm.PANEL, 300), 1)).isEqualTo(2);
            assertThat(SimdGemm.items(call(arena, 256, 2 * SimdGemm.PANEL + 1, 300), 1)).isEqualTo(3);
            assertThat(SimdGemm.items(call(arena, 256, 2 * SimdGemm.PANEL, 300), 2)).isEqualTo(3);
            // 5 full chunks on 2 threads: 3 on one, 2 on the other (1.2 of an even share): 2 groups
            assertThat(SimdGemm.panelGroups(call(arena, 600, 4 * SimdGemm.PANEL, 300), 2)).isEqualTo(2);
            // no rows or no columns (tensors have none, a GemmCall made by hand may): no items, on any thread count
            java.lang.foreign.MemorySegment none = arena.allocate(4);
            assertThat(SimdGemm.items(new GemmCall(none, 0, 40, 1, none, 0, 64, 1, none, 0, 64, 0, 64, 40, 1f, 0f, ElementType.F32, ElementType.F32), 2)).isZero();
            assertThat(SimdGemm.items(new GemmCall(none, 0, 40, 1, none, 0, 0, 1, none, 0, 0, 64, 0, 40, 1f, 0f, ElementType.F32, ElementType.F32), 2)).isZero();
        }
    }

    private static GemmCall call(Arena arena, int m, int n, int k) {
        return GemmCall.of(Tensor.zeros(arena, m, k), false, Tensor.zeros(arena, k, n), false, Tensor.zeros(arena, m, n), 1f, 0f);
    }

    /** SimdGemm's summation order in scalar Java over the logical op(a) [m, k] and op(b) [k, n]. */
    private static float[] model(Tensor opA, Tensor opB, float[] c, int m, int n, int k, float alpha, float beta) {
        float[] out = c.clone();
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                for (int k0 = 0; k0 < k; k0 += SimdGemm.KC) {
                    float acc = 0f;
                    for (int p = k0; p < Math.min(k, k0 + SimdGemm.KC); p++) acc = Math.fma(opB.get(p, j), opA.get(i, p), acc);
                    float r = acc * alpha, old = out[i * n + j];
                    if (k0 > 0) r = r + old;
                    else if (beta != 0f) r = old * beta + r;
                    out[i * n + j] = r;
                }
            }
        }
        return out;
    }

    private static void assertSameBits(float[] got, float[] expected, String what) {
        for (int i = 0; i < got.length; i++) {
            assertThat(Float.floatToRawIntBits(got[i])).as("%s at %d (%s vs %s)", what, i, got[i], expected[i]).isEqualTo(Float.floatToRawIntBits(expected[i]));
        }
    }
}
