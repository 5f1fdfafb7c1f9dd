package io.tessera.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/**
 * The write record a resident device trusts ({@link KvCache#pageGenerations}): between two changes of
 * a page's generation its tokens are only appended. {@link KvCache#truncate} cuts tokens whose slots
 * the next append writes again, so the page it cuts into must change generation; whole pages kept
 * must not (the device keeps what it holds of them).
 */
class KvCacheWriteRecordTest {

    @Test
    void truncateGivesTheCutPageANewGenerationAndLeavesWholePagesAlone() {
        try (Arena arena = Arena.ofConfined()) {
            KvCache cache = KvCache.allocate(arena, 1, 4, 4, 1, 2, 2);
            Tensor k = Tensor.randomNormal(arena, 1, 1f, 1, 1, 10, 2), v = Tensor.randomNormal(arena, 2, 1f, 1, 1, 10, 2);
            cache.append(0, k, v);                               // pages 0, 1 full, page 2 holds 2 tokens
            long[] before = cache.pageGenerations().clone();
            int p0 = cache.page(0, 0), p1 = cache.page(0, 1), p2 = cache.page(0, 2);

            cache.truncate(0, 10);                               // nothing cut
            assertThat(cache.pageGenerations()).containsExactly(before);

            cache.truncate(0, 8);                                // page 2 released, pages 0 and 1 whole
            assertThat(cache.pageGenerations()).containsExactly(before);
            assertThat(cache.freePages()).isEqualTo(2);

            cache.truncate(0, 6);                                // cuts into page 1: its slots 2, 3 will be rewritten
            long[] after = cache.pageGenerations();
            assertThat(after[p0]).isEqualTo(before[p0]);
            assertThat(after[p1]).isNotEqualTo(before[p1]);
            assertThat(after[p2]).isEqualTo(before[p2]);         // free: a new generation comes when it is handed out
            long cut = after[p1];

            cache.append(0, k.slice(2, 0, 3), v.slice(2, 0, 3)); // fills page 1, then takes a free page
            assertThat(cache.pageGenerations()[p1]).isEqualTo(cut);
            assertThat(cache.length(0)).isEqualTo(9);
            assertThat(cache.pageGenerations()[cache.page(0, 2)]).isNotEqualTo(before[cache.page(0, 2)]);

            cache.truncate(0, 0);
            assertThat(cache.pageCount(0)).isZero();
            assertThat(cache.freePages()).isEqualTo(4);
        }
    }
}
