package io.tessera.bench.peers;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.bench.decode.DecodePeer;
import io.tessera.pattern.MaskFunction;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.nio.FloatBuffer;
import org.junit.jupiter.api.Test;

/**
 * ONNX Runtime's GroupQueryAttention decode peer computes one decode step of grouped-query attention:
 * every query head of every sequence, against all {@code keys} keys of its KV head (the last one
 * passed as the op's new token and appended in place), within the float64 oracle's EXACT tolerance.
 * Repeated steps give the same output (the in-place append is idempotent). Runs with the peers profile:
 * ./tessera mvn -Ppeers -pl bench -am verify -Dtest=OnnxRuntimeGqaDecodePeerTest -Dsurefire.failIfNoSpecifiedTests=false
 */
class OnnxRuntimeGqaDecodePeerTest {

    @Test
    void decodeStepMatchesTheOracleForEveryHeadAndSequence() throws Exception {
        check(1, 32, 8, 4096, 128, 2);
        check(2, 8, 2, 77, 64, 1);     // a batch, an odd cache length, another grouping
        check(1, 4, 4, 1, 32, 1);      // one key: the new token alone
    }

    private static void check(int batch, int heads, int kvHeads, int keys, int headDim, int threads) throws Exception {
        try (Arena arena = Arena.ofConfined(); DecodePeer peer = DecodePeer.find("onnxruntime-gqa")) {
            assertThat(peer.unavailableReason()).isNull();
            Tensor q = Tensor.randomNormal(arena, 1, 1f, batch, heads, 1, headDim);
            Tensor k = Tensor.randomNormal(arena, 2, 1f, batch, kvHeads, keys, headDim);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, batch, kvHeads, keys, headDim);
            peer.prepare(batch, heads, kvHeads, keys, headDim, FloatBuffer.wrap(q.toArray()), FloatBuffer.wrap(k.toArray()), FloatBuffer.wrap(v.toArray()), threads);
            peer.step();
            float[] first = peer.output();
            DenseReference.Result oracle = DenseReference.attention(q, k, v, MaskFunction.all(), Double.NaN);
            Tolerance tolerance = Tolerance.exact(q, k, v, MaskFunction.all(), Double.NaN, oracle);
            assertThat(first).hasSize(batch * heads * headDim);
            assertThat(Tolerance.maxError(first, oracle.output())).as("B=%d H=%d Hkv=%d keys=%d D=%d", batch, heads, kvHeads, keys, headDim)
                    .isLessThanOrEqualTo(tolerance.output());
            peer.step();
            assertThat(peer.output()).as("a second step on the same cache").containsExactly(first);
        }
    }
}
