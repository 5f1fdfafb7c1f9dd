package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/**
 * A transposed float32 a is read from a heap copy of the item's rows ({@code copyTransposedRows}):
 * the same floats into the same FMAs in the same order as a row-major a read from its segment, so
 * the products are bit-identical, for whole rows of a (one bulk copy) and for parts of them.
 */
class SimdGemmTest {
    @Test
    void transposedAGivesTheRowMajorProductsBits() {
        SimdBackend simd = new SimdBackend(1);
        // m ≤ 120: an item's rows are whole rows of a's storage; 130 and 250: parts of them;
        // depth 40 (thin items of 480 rows), 300 (two depth slices); 45 columns: a ragged panel
        for (int[] shape : new int[][] {{64, 64, 40}, {64, 45, 300}, {130, 64, 300}, {250, 45, 64}, {7, 33, 5}}) {
            int m = shape[0], n = shape[1], k = shape[2];
            try (Arena arena = Arena.ofConfined()) {
                Tensor aT = Tensor.randomNormal(arena, m + n, 1f, k, m), b = Tensor.randomNormal(arena, k, 1f, k, n);
                Tensor a = aT.transpose(0, 1).contiguous(arena);
                for (float beta : new float[] {0f, 0.5f}) {
                    Tensor c1 = Tensor.randomNormal(arena, 3, 1f, m, n), c2 = c1.contiguous(arena);
                    simd.gemm(aT, true, b, false, c1, 1f, beta);
                    simd.gemm(a, false, b, false, c2, 1f, beta);
                    float[] x = c1.toArray(), y = c2.toArray();
                    for (int i = 0; i < x.length; i++) {
                        assertThat(Float.floatToRawIntBits(x[i])).as("m=%d n=%d k=%d beta=%s at %d", m, n, k, beta, i).isEqualTo(Float.floatToRawIntBits(y[i]));
                    }
                }
            }
        }
    }
}
