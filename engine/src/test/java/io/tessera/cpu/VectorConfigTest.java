package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

class VectorConfigTest {

    @Test
    void everySimdKernelUsesTheConfiguredSpecies() {
        String forced = System.getProperty(VectorConfig.BIT_SIZE_PROPERTY);
        int expected = forced == null ? FloatVector.SPECIES_PREFERRED.vectorBitSize() : Integer.parseInt(forced);
        assertThat(VectorConfig.FLOATS.vectorBitSize()).isEqualTo(expected);
        assertThat(SimdAttentionKernel.F).isSameAs(VectorConfig.FLOATS);
        assertThat(SimdGemm.F).isSameAs(VectorConfig.FLOATS);
        assertThat(VectorConfig.INTS.length()).isEqualTo(VectorConfig.FLOATS.length());
        assertThat(new SimdBackend(1).description()).contains(expected + "-bit species");
    }

    @Test
    void laneBitsHoldOneBitPerLane() {
        int[] bits = VectorConfig.laneBits().toArray();
        for (int i = 0; i < bits.length; i++) assertThat(bits[i]).isEqualTo(1 << i);
    }
}
