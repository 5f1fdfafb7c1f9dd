package io.tessera.proptest;

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
}
