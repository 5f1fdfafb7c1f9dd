package io.tessera.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.pattern.Pattern;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import org.junit.jupiter.api.Test;

class TensorWrapTest {

    @Test
    void wrappedSegmentIsUsedInPlaceBothWays() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment foreign = arena.allocate(6 * Float.BYTES, 4);
            for (int i = 0; i < 6; i++) foreign.setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
            Tensor t = Tensor.wrap(foreign, 2, 3);
            assertThat(t.segment().address()).isEqualTo(foreign.address());
            assertThat(t.get(1, 2)).isEqualTo(5f);
            t.set(42f, 0, 1);
            assertThat(foreign.getAtIndex(ValueLayout.JAVA_FLOAT, 1)).isEqualTo(42f);
            foreign.setAtIndex(ValueLayout.JAVA_FLOAT, 3, -7f);
            assertThat(t.get(1, 0)).isEqualTo(-7f);
        }
    }

    @Test
    void stridesDescribeColumnMajorAndPaddedLayouts() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment foreign = arena.allocate(8 * Float.BYTES, 4);
            for (int i = 0; i < 8; i++) foreign.setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
            // column-major 2x3: element (i, j) at i + 2j
            Tensor colMajor = Tensor.wrap(foreign, new long[] {2, 3}, new long[] {1, 2});
            assertThat(colMajor.toArray()).containsExactly(0, 2, 4, 1, 3, 5);
            // rows of 3 padded to 4: element (i, j) at 4i + j, reaching element 7 exactly
            Tensor padded = Tensor.wrap(foreign.asSlice(4), new long[] {2, 3}, new long[] {4, 1});
            assertThat(padded.toArray()).containsExactly(1, 2, 3, 5, 6, 7);
            // size-1 dimensions may have any non-negative stride, as NumPy and PyTorch produce
            assertThat(Tensor.wrap(foreign, new long[] {1, 4}, new long[] {0, 1}).toArray()).containsExactly(0, 1, 2, 3);
        }
    }

    @Test
    void directFloatBufferFromItsPosition() {
        FloatBuffer buffer = ByteBuffer.allocateDirect(10 * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
        for (int i = 0; i < 10; i++) buffer.put(i, 10 + i);
        buffer.position(4);
        Tensor t = Tensor.wrap(buffer, 3, 2);
        assertThat(t.toArray()).containsExactly(14, 15, 16, 17, 18, 19);
        t.set(-1f, 0, 0);
        assertThat(buffer.get(4)).isEqualTo(-1f);
        assertThatThrownBy(() -> Tensor.wrap(buffer, 4, 2))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("reaches element 7").hasMessageContaining("holds 6 floats");
    }

    @Test
    void badMemoryIsRefusedUpFrontNamingTheProblem() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment foreign = arena.allocate(16 * Float.BYTES, 8);
            assertThatThrownBy(() -> Tensor.wrap(MemorySegment.ofArray(new float[4]), 4))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("Java heap").hasMessageContaining("Tensor.of");
            assertThatThrownBy(() -> Tensor.wrap(foreign.asReadOnly(), 4))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("read-only");
            assertThatThrownBy(() -> Tensor.wrap(foreign.asSlice(2), 4))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a multiple of 4 bytes");
            assertThatThrownBy(() -> Tensor.wrap(foreign, 17))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("reaches element 16").hasMessageContaining("holds 16 floats");
            assertThatThrownBy(() -> Tensor.wrap(foreign, new long[] {4, 4}, new long[] {5, 1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("reaches element 18");
            assertThatThrownBy(() -> Tensor.wrap(foreign, new long[] {2, 2}, new long[] {-2, 1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("strides[0]=-2 must be >= 1");
            assertThatThrownBy(() -> Tensor.wrap(foreign, new long[] {2, 2}, new long[] {0, 1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("strides[0]=0 must be >= 1");
            assertThatThrownBy(() -> Tensor.wrap(foreign, new long[] {2, 2}, new long[] {1, 1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("share memory").hasMessageContaining("strides[1]=1 is not larger than 1");
            assertThatThrownBy(() -> Tensor.wrap(foreign, new long[] {3, 2}, new long[] {2, 3}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("strides[1]=3 is not larger than 4");
            assertThatThrownBy(() -> Tensor.wrap(foreign, new long[] {2, 2}, new long[] {1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("has 1 entries but shape [2, 2] has rank 2");
            assertThatThrownBy(() -> Tensor.wrap(foreign, new long[] {3, 2}, new long[] {Long.MAX_VALUE / 2 + 1, 1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("beyond what a long can count");
            assertThatThrownBy(() -> Tensor.wrap(foreign, 0, 4))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("shape[0]=0");
            assertThatThrownBy(() -> Tensor.wrap((MemorySegment) null, 4))
                    .isInstanceOf(NullPointerException.class).hasMessage("segment");
        }
        assertThatThrownBy(() -> Tensor.wrap(FloatBuffer.allocate(4), 4))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("heap FloatBuffer");
        ByteOrder foreignOrder = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
        assertThatThrownBy(() -> Tensor.wrap(ByteBuffer.allocateDirect(16).order(foreignOrder).asFloatBuffer(), 4))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("byte order is " + foreignOrder);
    }

    @Test
    void wrappedTensorsSayTheyHaveNoHeaderSlotForTheDevice() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor wrapped = Tensor.wrap(arena.allocate(64 * Float.BYTES, 64), 4, 16);
            assertThat(wrapped.hasHeaderSlot()).isFalse();
            assertThat(wrapped.slice(0, 1, 3).hasHeaderSlot()).isFalse();
            assertThatThrownBy(wrapped::storageWithHeader)
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("Tensor.wrap").hasMessageContaining("contiguous(arena)");
            assertThatThrownBy(wrapped::segmentWithHeader)
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("no 16-byte header slot");
            Tensor copy = wrapped.contiguous(arena);
            assertThat(copy.hasHeaderSlot()).isTrue();
            assertThat(copy.storageWithHeader().byteSize()).isEqualTo(Tensor.HEADER_BYTES + 64 * Float.BYTES);
            assertThat(Tensor.zeros(arena, 3).hasHeaderSlot()).isTrue();
        }
    }

    /** Wraps of one memory region at different start addresses are compared by address, like views. */
    @Test
    void overlapSeesWrapsOfOneRegion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(64 * Float.BYTES, 64);
            Tensor first = Tensor.wrap(region, 8);
            assertThat(first.overlaps(Tensor.wrap(region.asSlice(7 * Float.BYTES), 8))).isTrue();    // share element 7
            assertThat(first.overlaps(Tensor.wrap(region.asSlice(8 * Float.BYTES), 8))).isFalse();   // adjacent
            Tensor evens = Tensor.wrap(region, new long[] {16}, new long[] {2});
            Tensor odds = Tensor.wrap(region.asSlice(Float.BYTES), new long[] {16}, new long[] {2});
            assertThat(evens.overlaps(odds)).isFalse();                                              // interleaved
            assertThat(evens.overlaps(Tensor.wrap(region.asSlice(2 * Float.BYTES), new long[] {4}, new long[] {8}))).isTrue();
            assertThat(first.overlaps(Tensor.zeros(arena, 8))).isFalse();
            // A view of a wrap and another wrap of the same bytes.
            Tensor grid = Tensor.wrap(region, 8, 8);
            assertThat(grid.select(0, 3).overlaps(Tensor.wrap(region.asSlice(24 * Float.BYTES), 8))).isTrue();
            assertThat(grid.select(1, 3).overlaps(odds)).isTrue();    // column 3 holds odd elements 3, 11, …
            assertThat(grid.select(1, 2).overlaps(odds)).isFalse();
        }
    }

    @Test
    void closedArenaEndsTheWrappedTensor() {
        Tensor t;
        try (Arena arena = Arena.ofConfined()) {
            t = Tensor.wrap(arena.allocate(16), 4);
        }
        assertThatThrownBy(() -> t.get(0)).isInstanceOf(IllegalStateException.class).hasMessageContaining("arena was closed");
    }

    /** Attention reads wrapped q/k/v (one of them strided) and writes a wrapped output in place. */
    @Test
    void attentionRunsOnWrappedMemoryLikeOnItsOwn() {
        try (Arena arena = Arena.ofShared()) {
            long[] shape = {1, 2, 40, 8};
            Tensor q = Tensor.randomNormal(arena, 1, 1f, shape);
            Tensor k = Tensor.randomNormal(arena, 2, 1f, shape);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, shape);
            Attention attention = Attention.sparse(Pattern.causal().and(Pattern.slidingWindow(9)));
            Tensor expected = attention.forward(arena, q, k, v);

            // k stored as [B, N, H, D] (the layout many libraries use), seen as [B, H, N, D] through strides
            MemorySegment kForeign = arena.allocate(k.elementCount() * Float.BYTES, 4);
            Tensor kBnhd = Tensor.wrap(kForeign, new long[] {1, 40, 2, 8}, Shapes.rowMajorStrides(new long[] {1, 40, 2, 8}));
            kBnhd.copyFrom(k.transpose(1, 2).contiguous(arena));
            Tensor kWrapped = Tensor.wrap(kForeign, shape, new long[] {640, 8, 16, 1});
            MemorySegment qForeign = arena.allocate(q.elementCount() * Float.BYTES, 4);
            MemorySegment.copy(q.segment(), 0, qForeign, 0, qForeign.byteSize());
            MemorySegment outForeign = arena.allocate(q.elementCount() * Float.BYTES, 4);
            Tensor out = Tensor.wrap(outForeign, shape);

            attention.forward(Tensor.wrap(qForeign, shape), kWrapped, v, out);
            assertThat(outForeign.toArray(ValueLayout.JAVA_FLOAT)).containsExactly(expected.toArray());
        }
    }
}
