package io.tessera.tensor;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.util.HashSet;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;

/** {@link Tensor#overlaps} is exact: it agrees with the brute-force intersection of element sets. */
class TensorOverlapTest {

    @Test
    void typicalViews() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.zeros(arena, 2, 4, 8, 6), other = Tensor.zeros(arena, 2, 4, 8, 6);
            assertThat(t.overlaps(t)).isTrue();
            assertThat(t.overlaps(other)).isFalse();
            assertThat(t.slice(1, 0, 2).overlaps(t.slice(1, 2, 4))).isFalse();        // two head groups, interleaved over the batch
            assertThat(t.slice(3, 0, 3).overlaps(t.slice(3, 3, 6))).isFalse();        // two channel halves
            assertThat(t.slice(2, 0, 5).overlaps(t.slice(2, 4, 8))).isTrue();         // row 4 shared
            assertThat(t.transpose(2, 3).overlaps(t.slice(3, 5, 6))).isTrue();
            Tensor evenOdd = t.reshape(2, 4, 8, 3, 2);
            assertThat(evenOdd.select(4, 0).overlaps(evenOdd.select(4, 1))).isFalse(); // every other element
        }
    }

    @RepeatedTest(300)
    void agreesWithBruteForce(RepetitionInfo info) {
        SplittableRandom random = new SplittableRandom(info.getCurrentRepetition());
        try (Arena arena = Arena.ofConfined()) {
            Tensor base = Tensor.zeros(arena, random.nextInt(1, 5), random.nextInt(1, 6), random.nextInt(1, 7));
            Tensor a = randomView(base, random), b = randomView(base, random);
            assertThat(a.overlaps(b)).as("%s vs %s", a, b).isEqualTo(!intersection(elements(a), elements(b)).isEmpty());
            assertThat(b.overlaps(a)).isEqualTo(a.overlaps(b));
        }
    }

    private static Tensor randomView(Tensor t, SplittableRandom random) {
        for (int step = random.nextInt(0, 5); step > 0; step--) {
            int dim = random.nextInt(t.rank());
            switch (random.nextInt(3)) {
                case 0 -> {
                    long size = t.size(dim), from = random.nextLong(size), to = random.nextLong(from + 1, size + 1);
                    t = t.slice(dim, from, to);
                }
                case 1 -> t = t.transpose(dim, random.nextInt(t.rank()));
                default -> { if (t.rank() > 1) t = t.select(dim, random.nextLong(t.size(dim))); }
            }
        }
        return t;
    }

    private static Set<Long> elements(Tensor t) {
        Set<Long> out = new HashSet<>();
        long[] shape = t.shape(), index = new long[shape.length];
        long count = t.elementCount();
        for (long e = 0; e < count; e++) {
            long rem = e;
            for (int d = shape.length - 1; d >= 0; d--) { index[d] = rem % shape[d]; rem /= shape[d]; }
            out.add(t.elementIndex(index));
        }
        return out;
    }

    private static Set<Long> intersection(Set<Long> a, Set<Long> b) {
        Set<Long> c = new HashSet<>(a);
        c.retainAll(b);
        return c;
    }
}
