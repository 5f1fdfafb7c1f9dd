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
 * The decode peers compute one decode step of grouped-query attention: every query head of every
 * sequence, against all {@code keys} keys of its KV head, within the float64 oracle's EXACT
 * tolerance. ONNX Runtime's GroupQueryAttention gets the last key as the op's new token and appends it
 * in place; PyTorch's SDPA reads a KV head's query heads as its query rows. Repeated steps give the
 * same output (the in-place append is idempotent). Runs with the peers profile:
 * ./tessera mvn -Ppeers -pl bench -am verify -Dtest=DecodePeersTest -Dsurefire.failIfNoSpecifiedTests=false
 */
class DecodePeersTest {

    @Test
    void onnxRuntimeDecodeStepMatchesTheOracleForEveryHeadAndSequence() throws Exception {
        everyShape("onnxruntime-gqa");
    }

    @Test
    void sdpaDecodeStepMatchesTheOracleForEveryHeadAndSequence() throws Exception {
        everyShape("djl-sdpa");
    }

    private static void everyShape(String id) throws Exception {
        check(id, 1, 32, 8, 4096, 128, 2);
        check(id, 2, 8, 2, 77, 64, 1);     // a batch, an odd cache length, another grouping
        check(id, 1, 4, 4, 1, 32, 1);      // one key: the new token alone
        check(id, 3, 6, 1, 5, 24, 1);      // every query head on one KV head, odd sizes (ONNX Runtime wants D % 8 == 0)
    }

    private static void check(String id, int batch, int heads, int kvHeads, int keys, int headDim, int threads) throws Exception {
        try (Arena arena = Arena.ofConfined(); DecodePeer peer = DecodePeer.find(id)) {
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
            assertThat(Tolerance.maxError(first, oracle.output())).as("%s B=%d H=%d Hkv=%d keys=%d D=%d", id, batch, heads, kvHeads, keys, headDim)
                    .isLessThanOrEqualTo(tolerance.output());
            peer.step();
            assertThat(peer.output()).as("a second step on the same cache").containsExactly(first);
        }
    }
}
