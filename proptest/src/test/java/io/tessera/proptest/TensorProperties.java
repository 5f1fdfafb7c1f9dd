package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** The tensor's views and strides against a naive index computation; round trips; lifetime. */
class TensorProperties {

    @Provide
    Arbitrary<long[]> shapes() {
        return Arbitraries.longs().between(1, 6).array(long[].class).ofMinSize(1).ofMaxSize(4);
    }

    /** Row-major ordinal of a multi-index: the naive model every view is checked against. */
    private static long ordinal(long[] shape, long[] index) {
        long o = 0;
        for (int d = 0; d < shape.length; d++) o = o * shape[d] + index[d];
        return o;
    }

    private static boolean next(long[] index, long[] shape) {
        for (int d = shape.length - 1; d >= 0; d--) {
            if (++index[d] < shape[d]) return true;
            index[d] = 0;
        }
        return false;
    }

    private static float[] iota(long n) {
        float[] a = new float[(int) n];
        for (int i = 0; i < a.length; i++) a[i] = i;
        return a;
    }

    @Property(tries = 200)
    void ofThenToArrayRoundTrips(@ForAll("shapes") long[] shape) {
        try (Arena arena = Arena.ofConfined()) {
            float[] values = iota(Arrays.stream(shape).reduce(1, (a, b) -> a * b));
            Tensor t = Tensor.of(arena, values, shape);
            assertThat(t.isContiguous()).isTrue();
            assertThat(t.toArray()).containsExactly(values);
            long[] index = new long[shape.length];
            do {
                assertThat(t.get(index)).isEqualTo((float) ordinal(shape, index));
            } while (next(index, shape));
        }
    }

    @Property(tries = 200)
    void transposeMatchesNaiveIndexing(@ForAll("shapes") long[] shape, @ForAll @IntRange(max = 3) int a, @ForAll @IntRange(max = 3) int b) {
        a %= shape.length;
        b %= shape.length;
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.of(arena, iota(Arrays.stream(shape).reduce(1, (x, y) -> x * y)), shape);
            Tensor tt = t.transpose(a, b);
            long[] index = new long[shape.length];
            do {
                long[] original = index.clone();
                original[a] = index[b];
                original[b] = index[a];
                assertThat(tt.get(index)).isEqualTo((float) ordinal(shape, original));
            } while (next(index, tt.shape()));
            // A contiguous copy of the view holds the same elements in the view's order.
            Tensor copy = tt.contiguous(arena);
            assertThat(copy.isContiguous()).isTrue();
            assertThat(copy.toArray()).containsExactly(tt.toArray());
        }
    }

    @Property(tries = 200)
    void sliceAndSelectMatchNaiveIndexing(@ForAll("shapes") long[] shape, @ForAll @IntRange(max = 3) int dim,
                                          @ForAll @IntRange(max = 5) int from, @ForAll @IntRange(max = 5) int len) {
        dim %= shape.length;
        long start = from % shape[dim];
        long end = Math.min(shape[dim], start + 1 + len);
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.of(arena, iota(Arrays.stream(shape).reduce(1, (x, y) -> x * y)), shape);
            Tensor s = t.slice(dim, start, end);
            long[] index = new long[shape.length];
            do {
                long[] original = index.clone();
                original[dim] += start;
                assertThat(s.get(index)).isEqualTo((float) ordinal(shape, original));
            } while (next(index, s.shape()));
            if (shape.length > 1) {
                Tensor sel = t.select(dim, start);
                assertThat(sel.rank()).isEqualTo(shape.length - 1);
                long[] sub = new long[shape.length - 1];
                do {
                    long[] original = new long[shape.length];
                    for (int d = 0, o = 0; d < shape.length; d++) original[d] = d == dim ? start : sub[o++];
                    assertThat(sel.get(sub)).isEqualTo((float) ordinal(shape, original));
                } while (next(sub, sel.shape()));
            }
        }
    }

    @Property(tries = 100)
    void writesThroughAViewAreSeenByTheBase(@ForAll("shapes") long[] shape, @ForAll float value) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.zeros(arena, shape);
            int last = shape.length - 1;
            Tensor view = t.transpose(0, last).slice(0, shape[last] - 1, shape[last]);
            view.fill(value);
            long[] index = new long[shape.length];
            do {
                float expected = index[last] == shape[last] - 1 ? value : 0f;
                assertThat(t.get(index)).isEqualTo(expected);
            } while (next(index, shape));
        }
    }

    @Property(tries = 50)
    void seededRandomFillIsReproducible(@ForAll("shapes") long[] shape, @ForAll long seed) {
        try (Arena arena = Arena.ofConfined()) {
            assertThat(Tensor.randomNormal(arena, seed, 1f, shape).toArray())
                    .containsExactly(Tensor.randomNormal(arena, seed, 1f, shape).toArray());
            float[] u = Tensor.randomUniform(arena, seed, -2f, 3f, shape).toArray();
            for (float x : u) assertThat(x).isBetween(-2f, 3f);
        }
    }

    @Example
    void dataIsAlignedWithAReservedHeaderForTornadoVM() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.zeros(arena, 3, 5);
            assertThat(t.segment().address() % Tensor.ALIGNMENT).isZero();
            assertThat(t.segmentWithHeader().byteSize()).isEqualTo(Tensor.HEADER_BYTES + 15 * Float.BYTES);
            assertThat(t.segmentWithHeader().address()).isEqualTo(t.segment().address() - Tensor.HEADER_BYTES);
            assertThatThrownBy(() -> t.slice(0, 1, 2).segmentWithHeader()).isInstanceOf(IllegalStateException.class);
        }
    }

    @Example
    void useAfterCloseIsAnIllegalStateNotACrash() {
        Tensor t;
        Tensor view;
        try (Arena arena = Arena.ofConfined()) {
            t = Tensor.zeros(arena, 4, 4);
            view = t.transpose(0, 1);
        }
        assertThat(t.isAlive()).isFalse();
        assertThatThrownBy(() -> t.get(0, 0)).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(view::toArray).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(() -> view.set(1f, 0, 0)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(t::segment).isInstanceOf(IllegalStateException.class);
    }

    @Example
    void badInputsNameTheParameterAndValue() {
        try (Arena arena = Arena.ofConfined()) {
            assertThatThrownBy(() -> Tensor.zeros(arena, 2, 0, 3)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("shape[1]=0");
            assertThatThrownBy(() -> Tensor.zeros(arena, -4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("shape[0]=-4");
            assertThatThrownBy(() -> Tensor.zeros(arena, 1L << 40, 1L << 40)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("more elements than a long");
            assertThatThrownBy(() -> Tensor.zeros(arena, 1L << 31, 1L << 31)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("more bytes");
            assertThatThrownBy(() -> Tensor.of(arena, new float[5], 2, 3)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("values has 5 elements");
            Tensor t = Tensor.zeros(arena, 2, 3);
            assertThatThrownBy(() -> t.get(0, 3)).isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("index[1]=3");
            assertThatThrownBy(() -> t.get(0)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("rank is 2");
            assertThatThrownBy(() -> t.slice(1, 2, 2)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("slice [2, 2)");
            assertThatThrownBy(() -> t.transpose(0, 2)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("b=2");
            assertThatThrownBy(() -> t.transpose(0, 1).reshape(6)).isInstanceOf(IllegalStateException.class).hasMessageContaining("contiguous");
            assertThatThrownBy(() -> t.reshape(7)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("newShape [7]");
            assertThatThrownBy(() -> t.copyFrom(Tensor.zeros(arena, 3, 2))).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("source shape [3, 2]");
        }
    }
}
