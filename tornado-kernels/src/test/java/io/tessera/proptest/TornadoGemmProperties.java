package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.tornado.DeviceRun;
import io.tessera.tornado.TornadoBackend;
import java.lang.foreign.Arena;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/** The device GEMM (Linformer's projections, the linear variants' products) against the float64 product. */
class TornadoGemmProperties {

    @Property(tries = 25)
    void matchesFloat64Product(@ForAll boolean transposeA, @ForAll boolean transposeB,
                               @ForAll @IntRange(min = 1, max = 70) int m, @ForAll @IntRange(min = 1, max = 70) int n,
                               @ForAll @IntRange(min = 1, max = 90) int k, @ForAll @IntRange(min = 0, max = 2) int betaCase, @ForAll long seed) {
        GemmProperties.checkAgainstFloat64(TornadoAttentionProperties.tornado(), transposeA, transposeB, m, n, k, betaCase, seed);
        TornadoAttentionProperties.ranOnDevice("gemm");
    }

    /** Pinned weights travel on a plan's first execution only; pinning again after a write sends the new values. */
    @Example
    void pinnedWeightsAreSentOnce() {
        TornadoBackend tornado = (TornadoBackend) TornadoAttentionProperties.tornado();
        try (Arena arena = Arena.ofShared()) {
            Tensor weights = Tensor.randomNormal(arena, 1, 1f, 256, 64), x = Tensor.randomNormal(arena, 2, 1f, 64, 8);
            Tensor y = Tensor.zeros(arena, 256, 8), expected = Tensor.zeros(arena, 256, 8);
            long weightBytes = 256 * 64 * Float.BYTES;
            tornado.gemm(weights, false, x, false, y, 1f, 0f);
            tornado.gemm(weights, false, x, false, y, 1f, 0f);
            assertThat(TornadoAttentionProperties.ranOnDevice("gemm").bytesToDevice()).isGreaterThan(weightBytes);

            tornado.pin(weights);
            tornado.gemm(weights, false, x, false, y, 1f, 0f);
            assertThat(TornadoAttentionProperties.ranOnDevice("gemm").firstExecution()).isTrue();
            tornado.gemm(weights, false, x, false, y, 1f, 0f);
            DeviceRun steady = TornadoAttentionProperties.ranOnDevice("gemm");
            assertThat(steady.bytesToDevice()).isLessThan(weightBytes);

            weights.fill(0.5f);
            tornado.pin(weights);
            tornado.gemm(weights, false, x, false, y, 1f, 0f);
            Backend.named("scalar").gemm(weights, false, x, false, expected, 1f, 0f);
            float[] got = y.toArray(), want = expected.toArray();
            for (int i = 0; i < want.length; i++) assertThat(got[i]).isCloseTo(want[i], org.assertj.core.data.Offset.offset(1e-4f));
            tornado.unpin(weights);
        }
    }

    /** A pin ends with its arena: a new tensor at the same address is not taken for pinned. */
    @Example
    void aPinDiesWithItsArena() {
        TornadoBackend tornado = (TornadoBackend) TornadoAttentionProperties.tornado();
        long weightBytes = 256 * 64 * Float.BYTES;
        try (Arena arena = Arena.ofConfined()) {
            Tensor weights = Tensor.randomNormal(arena, 1, 1f, 256, 64);
            tornado.pin(weights);
        }
        try (Arena arena = Arena.ofShared()) {
            Tensor weights = Tensor.randomNormal(arena, 1, 1f, 256, 64), x = Tensor.randomNormal(arena, 2, 1f, 64, 8);
            Tensor y = Tensor.zeros(arena, 256, 8);
            tornado.gemm(weights, false, x, false, y, 1f, 0f);
            tornado.gemm(weights, false, x, false, y, 1f, 0f);
            assertThat(TornadoAttentionProperties.ranOnDevice("gemm").bytesToDevice()).isGreaterThan(weightBytes);
        }
    }
}
