package io.tessera.proptest;

import static io.tessera.proptest.TornadoAttentionProperties.ranOnDevice;
import static io.tessera.proptest.TornadoAttentionProperties.tornado;
import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.cache.PagedAttention;
import io.tessera.pattern.Pattern;
import io.tessera.proptest.PagedAttentionProperties.Filled;
import io.tessera.proptest.PagedAttentionProperties.Setup;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * A decode step (q-length 1..16) against a paged KV cache on the device. The tornado backend has no
 * decode kernel ({@code PagedAttentionDevice}): {@code PagedAttention} runs the device's fused
 * kernel on each reached page's view in the pool and merges the pages by log-sum-exp in float64 on
 * the host. Checked here against the float64 oracle on the gathered keys and values, with free
 * pool slots poisoned with NaN, every pattern of the CPU suite; each page's kernel ran on the device.
 */
class TornadoDecodeProperties {

    @Provide
    Arbitrary<Setup> setups() { return new PagedAttentionProperties().setups(); }

    @Provide
    Arbitrary<Pattern> patterns() { return new PagedAttentionProperties().patterns(); }

    @Property(tries = 12)
    void decodeOnTheDeviceEqualsTheOracleOnTheGatheredCache(@ForAll("setups") Setup s, @ForAll("patterns") Pattern pattern) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = PagedAttentionProperties.fill(arena, s, 1, true);
            PagedAttention decode = PagedAttention.of(pattern).on(tornado());
            for (int seq = 0; seq < s.sequences(); seq++) {
                Tensor q = Tensor.randomNormal(arena, s.seed() + 30 + seq, 1f, 1, s.heads(), s.qLen(), s.headDim());
                Tensor out = Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), lse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
                int read = decode.forward(f.cache(), seq, q, out, lse);
                if (read > 0) ranOnDevice("attention");
                int length = f.cache().length(seq);
                double scale = 1.0 / Math.sqrt(s.headDim());
                var mask = decode.pattern().asMask(s.qLen(), length);
                Tensor k = f.keys()[seq], v = f.values()[seq];
                DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale);
                DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, mask, scale);
                Tolerance tolerance = Tolerance.exact(q, k, v, scale, naive, oracle);
                assertThat(Tolerance.maxError(out, oracle.output())).as("output of sequence %d (length %d) under %s", seq, length, decode)
                        .isLessThanOrEqualTo(tolerance.output());
                assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE of sequence %d under %s", seq, decode)
                        .isLessThanOrEqualTo(tolerance.logSumExp());
            }
        }
    }
}
