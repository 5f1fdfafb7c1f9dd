package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.attention.Attention;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Example;

/** The README's "Decoding with a KV cache" example, compiled and checked against attention on the gathered cache. */
class DecodingExample {

    @Example
    void readmeExampleDecodesLikeAttentionOverTheWholeSequence() {
        int promptLength = 40, steps = 30;
        try (Arena arena = Arena.ofShared()) {
            Tensor allK = Tensor.randomNormal(arena, 1, 1f, 1, 2, promptLength + steps, 64);
            Tensor allV = Tensor.randomNormal(arena, 2, 1f, 1, 2, promptLength + steps, 64);
            Tensor allQ = Tensor.randomNormal(arena, 3, 1f, 1, 8, promptLength + steps, 64);
            Tensor promptK = allK.slice(2, 0, promptLength), promptV = allV.slice(2, 0, promptLength);
            Tensor expected = Attention.sparse(Pattern.causal().and(Pattern.slidingWindow(1024, 0))).forward(arena, allQ, allK, allV);
            float[][] decoded = new float[steps][];

            // --- README: Decoding with a KV cache
            KvCache cache = KvCache.allocate(arena, 4, 256, 16, 2, 64, 64);  // 4 sequences, 256 pages of 16 tokens, 2 KV heads, D = 64
            PagedAttention decode = PagedAttention.of(Pattern.causal().and(Pattern.slidingWindow(1024, 0)));
            int seq = 0;
            cache.append(seq, promptK, promptV);             // [1, kvHeads, promptLength, D]: the prefill's keys and values
            Tensor out = Tensor.zeros(arena, 1, 8, 1, 64);   // 8 query heads share the 2 KV heads (grouped-query)
            for (int step = 0; step < steps; step++) {
                int t = promptLength + step;
                Tensor newK = allK.slice(2, t, t + 1), newV = allV.slice(2, t, t + 1), newQ = allQ.slice(2, t, t + 1);
                cache.append(seq, newK, newV);               // [1, kvHeads, 1, D]: the new token's key and value
                decode.forward(cache, seq, newQ, out, null); // newQ [1, 8, 1, D]; returns the number of pages read
                decoded[step] = out.toArray();
            }
            cache.release(seq);
            // --- end

            assertThat(cache.freePages()).isEqualTo(256);
            // Both sides are fp32 attention on order-one values within the EXACT contract of the float64
            // oracle (PagedAttentionProperties, FusedAttentionProperties); here a plain few-ulp bound.
            for (int step = 0; step < steps; step++) {
                int t = promptLength + step;
                float[] want = expected.slice(2, t, t + 1).contiguous(arena).toArray();
                for (int i = 0; i < want.length; i++) assertThat(decoded[step][i]).as("step %d element %d", step, i).isCloseTo(want[i], org.assertj.core.data.Offset.offset(1e-5f));
            }
        }
    }
}
