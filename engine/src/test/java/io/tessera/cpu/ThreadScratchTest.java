package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.jupiter.api.Test;

/**
 * A call's scratch is reused by the next call, but a thread does not keep more than
 * {@link ThreadScratch#RETAINED_BYTES} of it once the call is done: one call with 16384-row blocks
 * needs about 40 MiB of tile masks and rows a thread, and used to leave them held by the pool
 * threads for the life of the process.
 */
class ThreadScratchTest {
    private static final int N = 16384, D = 8;

    @Test
    void aSmallCallsScratchIsKeptForTheNextCall() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, 256, 32), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, 256, 32);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 1, 256, 32);
            Attention.sparse(Pattern.causal()).on(Backend.named("simd").withThreads(1)).forward(arena, q, k, v);
            long kept = ThreadScratch.retainedByCurrentThread();
            assertThat(kept).isPositive().isLessThanOrEqualTo(ThreadScratch.RETAINED_BYTES);
        }
    }

    @Test
    void aHugeCallsScratchIsDroppedOnTheCallersThread() {
        for (String backend : new String[] {"simd", "scalar"}) {
            try (Arena arena = Arena.ofConfined()) {
                hugeCall(arena, Backend.named(backend).withThreads(1), 1);
                assertThat(ThreadScratch.retainedByCurrentThread()).as(backend).isLessThanOrEqualTo(ThreadScratch.RETAINED_BYTES);
            }
        }
    }

    @Test
    void aHugeCallsScratchIsDroppedOnThePoolThreads() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            hugeCall(arena, Backend.named("simd").withThreads(2), 2);
        }
        // Both threads of the pool report what they hold; the barrier makes each take one item.
        CyclicBarrier both = new CyclicBarrier(2);
        AtomicLongArray held = new AtomicLongArray(2);
        WorkerPool.of(2).forEach(2, item -> {
            try {
                both.await(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
            held.set(item, ThreadScratch.retainedByCurrentThread());
        });
        assertThat(held.get(0)).isLessThanOrEqualTo(ThreadScratch.RETAINED_BYTES);
        assertThat(held.get(1)).isLessThanOrEqualTo(ThreadScratch.RETAINED_BYTES);
    }

    /** A narrow window in one 16384 × 16384 block per head: little work, a whole block of tile masks (two heads give both pool threads one). */
    private static void hugeCall(Arena arena, Backend backend, int heads) {
        Tensor q = Tensor.randomNormal(arena, 4, 1f, 1, heads, N, D), k = Tensor.randomNormal(arena, 5, 1f, 1, heads, N, D);
        Tensor v = Tensor.randomNormal(arena, 6, 1f, 1, heads, N, D);
        Attention.sparse(Pattern.slidingWindow(8)).on(backend).withBlockSizes(N, N).forward(arena, q, k, v);
    }
}
