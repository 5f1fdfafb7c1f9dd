package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.variant.lowrank.Linformer;
import io.tessera.variant.lowrank.Nystromformer;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** Linformer and Nyström attention against dense attention. */
class LowRankProperties {

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    @Property(tries = 40)
    void linformerWithIdentityProjectionsIsDenseAttention(@ForAll @IntRange(min = 1, max = 40) int n, @ForAll @IntRange(min = 1, max = 12) int d,
                                                          @ForAll @IntRange(min = 1, max = 2) int heads, @ForAll long seed, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 1f, 1, heads, n, d), k = Tensor.randomNormal(arena, seed + 1, 1f, 1, heads, n, d);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, heads, n, d), out = Tensor.zeros(arena, 1, heads, n, d);
            Tensor identity = Tensor.zeros(arena, 1, n, n);
            for (int i = 0; i < n; i++) identity.set(1f, 0, i, i);
            Linformer.of(identity, identity).on(Backend.named(backend)).forward(q, k, v, out);
            DenseReference.Result oracle = DenseReference.attention(q, k, v), naive = DenseReference.naiveFloat32(q, k, v, (b, h, i, j) -> true, Double.NaN);
            assertThat(Tolerance.maxError(out, oracle.output())).isLessThanOrEqualTo(Tolerance.exact(q, k, v, Double.NaN, naive, oracle).output());
        }
    }

    /** Mean over seeds of the max-abs error of a JL Linformer against dense attention. */
    static double linformerError(int k, Tensor q, Tensor keys, Tensor v, Arena arena) {
        double[] dense = DenseReference.attention(q, keys, v).output();
        double total = 0;
        int seeds = 6;
        for (int s = 0; s < seeds; s++) {
            Tensor out = Tensor.zeros(arena, q.size(0), q.size(1), q.size(2), v.size(3));
            Linformer.random((int) keys.size(2), k, (int) keys.size(1), Linformer.Sharing.PER_HEAD, s).forward(q, keys, v, out);
            total += Tolerance.maxError(out, dense);
        }
        return total / seeds;
    }

    @Property(tries = 4)
    void linformerJlErrorShrinksAsKGrows(@ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 0.5f, 1, 2, 128, 16), k = Tensor.randomNormal(arena, seed + 1, 0.5f, 1, 2, 128, 16);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 2, 128, 8);
            double e8 = linformerError(8, q, k, v, arena), e32 = linformerError(32, q, k, v, arena), e128 = linformerError(128, q, k, v, arena);
            assertThat(e32).as("mean errors k=8: %s, k=32: %s, k=128: %s", e8, e32, e128).isLessThan(e8);
            assertThat(e128).as("mean errors k=8: %s, k=32: %s, k=128: %s", e8, e32, e128).isLessThan(e32);
        }
    }

    @Example
    void linformerBadInputs() {
        assertThatThrownBy(() -> Linformer.random(64, 65, 1, Linformer.Sharing.PER_HEAD, 0)).hasMessageContaining("projected length k=65 exceeds n=64");
        assertThatThrownBy(() -> Linformer.random(64, 0, 1, Linformer.Sharing.PER_HEAD, 0)).hasMessage("projected length k must be >= 1, got 0");
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.zeros(arena, 1, 1, 32, 4);
            assertThatThrownBy(() -> Linformer.random(64, 8, 1, Linformer.Sharing.KEY_VALUE, 0).forward(x, x, x, Tensor.zeros(arena, 1, 1, 32, 4)))
                    .hasMessageContaining("projects sequences of n=64, kv length is 32");
        }
    }

    /**
     * Building a seeded Linformer allocates nothing, whatever k·n is: the projections are drawn on
     * first use (a call needs them and does at least k·n work with them). A call of the wrong length
     * is rejected without drawing; instances derived by withScale and on share the same matrices.
     */
    @Example
    void linformerDrawsItsProjectionsOnFirstUse() {
        java.lang.management.BufferPoolMXBean direct = java.lang.management.ManagementFactory.getPlatformMXBeans(java.lang.management.BufferPoolMXBean.class)
                .stream().filter(p -> p.getName().equals("direct")).findFirst().orElseThrow();
        long before = direct.getMemoryUsed();
        // Drawn up front, these would be 2 heads × 2 matrices × 2^10 × 2^13 floats = 128 MiB.
        Linformer big = Linformer.random(1 << 13, 1 << 10, 2, Linformer.Sharing.PER_HEAD, 1);
        assertThat(direct.getMemoryUsed() - before).as("native memory taken by building the Linformer").isLessThan(1 << 20);
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.zeros(arena, 1, 2, 16, 4);
            assertThatThrownBy(() -> big.forward(x, x, x, Tensor.zeros(arena, 1, 2, 16, 4))).hasMessageContaining("projects sequences of n=8192, kv length is 16");
            assertThat(direct.getMemoryUsed() - before).as("native memory after a rejected call").isLessThan(1 << 20);
            Linformer small = Linformer.random(16, 4, 2, Linformer.Sharing.PER_HEAD, 3);
            Tensor q = Tensor.randomNormal(arena, 5, 1f, 1, 2, 16, 4), out = Tensor.zeros(arena, 1, 2, 16, 4), again = Tensor.zeros(arena, 1, 2, 16, 4);
            small.withScale(0.5f).forward(q, q.contiguous(arena), q.contiguous(arena), out);
            assertThat(small.on(Backend.named("scalar")).keyProjection()).isSameAs(small.keyProjection());
            assertThat(small.valueProjection()).isNotSameAs(small.keyProjection());
            // The matrices are the seed's: a second Linformer with the same seed draws the same ones.
            Linformer twin = Linformer.random(16, 4, 2, Linformer.Sharing.PER_HEAD, 3);
            twin.withScale(0.5f).forward(q, q.contiguous(arena), q.contiguous(arena), again);
            assertThat(again.toArray()).isEqualTo(out.toArray());
            assertThat(twin.keyProjection().toArray()).isEqualTo(small.keyProjection().toArray());
        }
    }

    @Property(tries = 20)
    void nystromWithEveryTokenALandmarkIsDenseAttention(@ForAll @IntRange(min = 1, max = 12) int n, @ForAll @IntRange(min = 4, max = 8) int d,
                                                         @ForAll long seed, @ForAll("backends") String backend) {
        try (Arena arena = Arena.ofShared()) {
            // The m = n identity needs softmax(QKᵀ) invertible and well conditioned for the iterative
            // pseudo-inverse to converge in 40 steps: keys equal to the queries with large norms make
            // it diagonally dominant (near-uniform attention would be near rank one).
            Tensor q = Tensor.randomNormal(arena, seed, 2f, 1, 1, n, d), k = q;
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 1, n, d), out = Tensor.zeros(arena, 1, 1, n, d);
            Nystromformer.withLandmarks(n).iterations(40).on(Backend.named(backend)).forward(q, k, v, out);
            assertThat(Tolerance.maxError(out, DenseReference.attention(q, k, v).output())).isLessThanOrEqualTo(1e-3);
        }
    }

    @Property(tries = 5)
    void nystromErrorDecreasesWithLandmarks(@ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 0.5f, 1, 2, 64, 8), k = Tensor.randomNormal(arena, seed + 1, 0.5f, 1, 2, 64, 8);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 2, 64, 8);
            double[] dense = DenseReference.attention(q, k, v).output();
            double[] errors = new double[3];
            int[] landmarks = {4, 16, 64};
            for (int i = 0; i < 3; i++) {
                Tensor out = Tensor.zeros(arena, 1, 2, 64, 8);
                Nystromformer.withLandmarks(landmarks[i]).iterations(30).forward(q, k, v, out);
                errors[i] = Tolerance.maxError(out, dense);
            }
            assertThat(errors[2]).as("errors for m = 4, 16, 64: %s", java.util.Arrays.toString(errors)).isLessThan(errors[0]);
        }
    }

    /**
     * The forward pass keeps its per-head matrices in per-thread memory across calls: a call on NaN
     * inputs, or on a longer sequence, in between must leave a later call's output bit for bit as it was.
     */
    @Example
    void nystromOutputDoesNotDependOnEarlierCalls() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 3, 40, 8), k = Tensor.randomNormal(arena, 2, 1f, 1, 3, 40, 8);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 3, 40, 8);
            Tensor nan = Tensor.zeros(arena, 1, 3, 40, 8);
            nan.fill(Float.NaN);
            Tensor longer = Tensor.randomNormal(arena, 4, 1f, 1, 3, 90, 8), longerOut = Tensor.zeros(arena, 1, 3, 90, 8);
            for (String backend : new String[] {"scalar", "simd"}) {
                Nystromformer nystrom = Nystromformer.withLandmarks(8).on(Backend.named(backend));
                Tensor first = Tensor.zeros(arena, 1, 3, 40, 8), after = Tensor.zeros(arena, 1, 3, 40, 8), ignored = Tensor.zeros(arena, 1, 3, 40, 8);
                nystrom.forward(q, k, v, first);
                nystrom.forward(nan, nan, nan, ignored);
                nystrom.forward(longer, longer, longer, longerOut);
                nystrom.forward(q, k, v, after);
                for (float x : first.toArray()) assertThat(x).as(backend).isFinite();
                assertThat(after.toArray()).as(backend).isEqualTo(first.toArray());
            }
        }
    }

    /**
     * Scratch beyond what a thread keeps (32 MiB) is the call's own: Linformer on a batch whose
     * projected keys and values take 34 MB gives, batch element by batch element, the bits of the
     * same call on each element alone (1/2100 of it, in the kept scratch); Nyström at n = 70,000
     * (36 MB of per-head matrices) gives finite outputs, the same bits twice.
     */
    @Example
    void scratchTooLargeToKeepGivesTheSameResults() {
        try (Arena arena = Arena.ofShared()) {
            int batch = 2100, n = 64, d = 32;
            Tensor q = Tensor.randomNormal(arena, 1, 1f, batch, 1, n, d), k = Tensor.randomNormal(arena, 2, 1f, batch, 1, n, d);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, batch, 1, n, d), out = Tensor.zeros(arena, batch, 1, n, d);
            Linformer linformer = Linformer.random(n, 64, 1, Linformer.Sharing.PER_HEAD, 9).on(Backend.named("simd"));
            linformer.forward(q, k, v, out);
            Tensor one = Tensor.zeros(arena, 1, 1, n, d);
            for (int b = 0; b < batch; b += 299) {
                linformer.forward(q.slice(0, b, b + 1), k.slice(0, b, b + 1), v.slice(0, b, b + 1), one);
                assertThat(one.toArray()).as("batch element %d", b).isEqualTo(out.slice(0, b, b + 1).contiguous(arena).toArray());
            }
            int longN = 70_000;
            Tensor lq = Tensor.randomNormal(arena, 4, 1f, 1, 1, longN, 4), lk = Tensor.randomNormal(arena, 5, 1f, 1, 1, longN, 4);
            Tensor lv = Tensor.randomNormal(arena, 6, 1f, 1, 1, longN, 4);
            Tensor first = Tensor.zeros(arena, 1, 1, longN, 4), second = Tensor.zeros(arena, 1, 1, longN, 4);
            Nystromformer nystrom = Nystromformer.withLandmarks(64).on(Backend.named("simd"));
            nystrom.forward(lq, lk, lv, first);
            nystrom.forward(lq, lk, lv, second);
            float[] values = first.toArray();
            for (float x : values) assertThat(x).isFinite();
            assertThat(second.toArray()).isEqualTo(values);
        }
    }

    @Example
    void nystromBadInputs() {
        assertThatThrownBy(() -> Nystromformer.withLandmarks(0)).hasMessage("landmarks m must be >= 1, got 0");
        assertThatThrownBy(() -> Nystromformer.withLandmarks(4).iterations(0)).hasMessage("pseudo-inverse iterations must be >= 1, got 0");
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.zeros(arena, 1, 1, 8, 4);
            assertThatThrownBy(() -> Nystromformer.withLandmarks(9).forward(x, x, x, Tensor.zeros(arena, 1, 1, 8, 4))).hasMessageContaining("landmarks m=9 exceeds the sequence");
        }
    }
}
