package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantRegistry;
import java.lang.foreign.Arena;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * What every registered variant's operator promises, whatever its function: checked on each
 * variant the registry hands out, so a new variant is covered the moment it registers. (Each
 * variant's own contract, against its float64 definition, is checked by its property class; see
 * {@link VariantCoverageTest}.)
 */
class VariantOperatorProperties {

    @Provide
    Arbitrary<VariantInfo> variants() {
        return Arbitraries.of(VariantRegistry.all());
    }

    /** A configured operator of {@code info} and random inputs of the shapes it asks for. */
    private record Inputs(AttentionOperator op, Tensor q, Tensor k, Tensor v) {
        static Inputs of(VariantInfo info, Arena arena, int batch, int heads, int n, int d, long seed) {
            VariantInfo.Configured c = info.create(batch, heads, n, d);
            return new Inputs(c.operator(), Tensor.randomNormal(arena, seed, 1f, c.qShape()),
                    Tensor.randomNormal(arena, seed + 1, 1f, c.kShape()), Tensor.randomNormal(arena, seed + 2, 1f, c.vShape()));
        }

        Tensor run(AttentionOperator with, Arena arena, float garbage) {
            Tensor out = Tensor.zeros(arena, with.outputShape(q, k, v));
            out.fill(garbage);
            with.forward(q, k, v, out);
            return out;
        }
    }

    /**
     * The two forms of forward agree bit for bit, the output does not depend on what the output
     * tensor held before (NaN included), and finite inputs give a finite output.
     */
    @Property(tries = 60)
    void forwardFormsAgreeAndOverwriteTheOutput(@ForAll("variants") VariantInfo info, @ForAll @IntRange(min = 1, max = 2) int batch,
                                                @ForAll @IntRange(min = 1, max = 2) int heads, @ForAll @IntRange(min = 1, max = 24) int n,
                                                @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Inputs in = Inputs.of(info, arena, batch, heads, n, d, seed);
            Tensor fresh = in.op().forward(arena, in.q(), in.k(), in.v());
            assertThat(fresh.shape()).isEqualTo(in.op().outputShape(in.q(), in.k(), in.v()));
            float[] expected = fresh.toArray();
            assertThat(in.run(in.op(), arena, Float.NaN).toArray()).as("%s into a NaN-filled output", info.name()).isEqualTo(expected);
            for (float x : expected) assertThat(x).as("%s output", info.name()).isFinite();
        }
    }

    /** Bit-identical results for one thread and several, on every backend (the engine's determinism rule). */
    @Property(tries = 40)
    void resultsDoNotDependOnTheThreadCount(@ForAll("variants") VariantInfo info, @ForAll @IntRange(min = 1, max = 2) int batch,
                                            @ForAll @IntRange(min = 1, max = 3) int heads, @ForAll @IntRange(min = 1, max = 40) int n,
                                            @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Inputs in = Inputs.of(info, arena, batch, heads, n, d, seed);
            for (Backend backend : Backend.available()) {
                float[] one = in.run(in.op().on(backend.withThreads(1)), arena, 0f).toArray();
                float[] three = in.run(in.op().on(backend.withThreads(3)), arena, 0f).toArray();
                assertThat(three).as("%s on %s, 3 threads vs 1", info.name(), backend.name()).isEqualTo(one);
            }
        }
    }

    /** Setting the default scale 1/√D explicitly changes nothing; scale operators reject a non-finite scale. */
    @Property(tries = 40)
    void explicitDefaultScaleIsTheDefault(@ForAll("variants") VariantInfo info, @ForAll @IntRange(min = 1, max = 24) int n,
                                          @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Inputs in = Inputs.of(info, arena, 1, 2, n, d, seed);
            if (!(in.op() instanceof AttentionOperator.Scaled scaled)) return;
            float defaultScale = (float) (1.0 / Math.sqrt(in.q().size(3)));
            assertThat(in.run(scaled.withScale(defaultScale), arena, 0f).toArray()).as(info.name()).isEqualTo(in.run(scaled, arena, 0f).toArray());
            assertThatThrownBy(() -> scaled.withScale(Float.NaN)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("scale");
            assertThatThrownBy(() -> scaled.withScale(Float.POSITIVE_INFINITY)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("scale");
        }
    }

    /** With a log-sum-exp: the same output as forward, and an LSE that is finite or −∞ (for a row that attends nothing). */
    @Property(tries = 40)
    void forwardWithLseGivesTheSameOutput(@ForAll("variants") VariantInfo info, @ForAll @IntRange(min = 1, max = 24) int n,
                                          @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Inputs in = Inputs.of(info, arena, 2, 2, n, d, seed);
            if (!(in.op() instanceof AttentionOperator.WithLse withLse)) return;
            long[] outShape = in.op().outputShape(in.q(), in.k(), in.v());
            Tensor out = Tensor.zeros(arena, outShape), lse = Tensor.zeros(arena, Arrays.copyOf(outShape, 3));
            lse.fill(Float.NaN);
            withLse.forwardWithLse(in.q(), in.k(), in.v(), out, lse);
            assertThat(out.toArray()).isEqualTo(in.run(in.op(), arena, 0f).toArray());
            for (float x : lse.toArray()) assertThat(x == Float.NEGATIVE_INFINITY || Float.isFinite(x)).as("%s LSE %s", info.name(), x).isTrue();
        }
    }

    @Example
    void everyVariantHasAFactoryAndChecksItsArguments() {
        for (VariantInfo info : VariantRegistry.all()) {
            assertThat(info.create(1, 1, 1, 1).operator()).as(info.name()).isNotNull();
            AttentionOperator op = info.create(1, 2, 8, 4).operator();
            assertThatThrownBy(() -> op.on(null)).as(info.name()).isInstanceOf(NullPointerException.class).hasMessage("backend");
            assertThatThrownBy(() -> op.forward(Arena.ofAuto(), null, null, null)).as(info.name()).isInstanceOf(NullPointerException.class);
            assertThatThrownBy(() -> info.create(1, 0, 8, 4)).hasMessage("heads must be >= 1, got 0");
            assertThatThrownBy(() -> info.create(1, 1, 0, 4)).hasMessage("seqLen must be >= 1, got 0");
        }
    }
}
