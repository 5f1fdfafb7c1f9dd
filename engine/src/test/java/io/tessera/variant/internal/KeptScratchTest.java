package io.tessera.variant.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** A thread keeps its scratch across calls, grows it when asked for more, and keeps nothing above the limit. */
class KeptScratchTest {

    @Test
    void keepsGrowsAndRefusesAboveTheLimit() throws Exception {
        KeptScratch scratch = KeptScratch.create();
        MemorySegment first = scratch.get(1000);
        assertThat(first.byteSize()).isGreaterThanOrEqualTo(1000);
        assertThat(first.address() % 64).isZero();
        assertThat(scratch.get(10)).isSameAs(first);           // smaller: the same memory
        MemorySegment grown = scratch.get(5000);
        assertThat(grown).isNotSameAs(first);
        assertThat(grown.byteSize()).isGreaterThanOrEqualTo(5000);
        assertThat(scratch.get(1000)).isSameAs(grown);
        assertThat(scratch.get(KeptScratch.RETAINED_BYTES)).isNotNull();
        assertThat(scratch.get(KeptScratch.RETAINED_BYTES + 1)).isNull();
        assertThat(scratch.get(0)).isNotNull();
        // another thread has its own
        AtomicReference<MemorySegment> other = new AtomicReference<>();
        Thread t = new Thread(() -> other.set(scratch.get(10)));
        t.start();
        t.join();
        assertThat(other.get()).isNotNull().isNotSameAs(scratch.get(10));
        assertThatThrownBy(() -> scratch.get(-1)).isInstanceOf(IllegalArgumentException.class).hasMessage("bytes must be >= 0, got -1");
    }

    @Test
    void useRunsOnTheKeptSegmentOrOnTheCallsOwnAboveTheLimit() {
        KeptScratch scratch = KeptScratch.create();
        AtomicReference<MemorySegment> seen = new AtomicReference<>();
        scratch.use(1000, seen::set);
        assertThat(seen.get()).isSameAs(scratch.get(1000));
        long big = KeptScratch.RETAINED_BYTES + 64;
        scratch.use(big, segment -> {
            assertThat(segment.byteSize()).isEqualTo(big);
            assertThat(segment.address() % 64).isZero();
            segment.set(java.lang.foreign.ValueLayout.JAVA_BYTE, big - 1, (byte) 1);   // usable while the work runs
            seen.set(segment);
        });
        assertThat(seen.get().scope().isAlive()).isFalse();   // freed when the work returned
        assertThat(scratch.get(1000).byteSize()).isLessThan(big);   // and not kept
    }
}
