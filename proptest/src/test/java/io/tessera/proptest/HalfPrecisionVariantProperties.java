package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantRegistry;
import java.lang.foreign.Arena;
import java.util.Set;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Assume;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Half-precision storage in the variants: those whose forward takes BF16/F16 q, k, v and out run
 * their float32 path on the exactly widened inputs and round the output once to its type, so the
 * result equals, bit for bit, the same operator on float32 copies of the inputs with its float32
 * output rounded to out's type (the accuracy contract follows: the variant's own contract on the
 * rounded inputs plus one rounding of the output, {@code Tolerance#stored}). Every other variant
 * rejects a half-precision tensor by name, and so do the backward passes.
 */
class HalfPrecisionVariantProperties {

    /**
     * The registered variants whose forward takes half-precision tensors (through float32 copies):
     * the kernelized, low-rank, factorized, content-based and tensorized ones.
     */
    static final Set<String> TAKE_HALVES = Set.of("linear-attention", "performer", "linformer", "nystrom", "factorized", "axial", "lsh", "routing", "tensorized");

    /** The registered variants that read float32 memory only (the fused ones, dense and block-sparse, read half types natively). */
    static final Set<String> FLOAT32_ONLY = Set.of("explicit-sparse", "top-k", "causal-conv");

    @Provide
    Arbitrary<VariantInfo> halfVariants() {
        return Arbitraries.of(VariantRegistry.all().stream().filter(i -> TAKE_HALVES.contains(i.name())).toList());
    }

    @Provide
    Arbitrary<VariantInfo> float32Variants() {
        return Arbitraries.of(VariantRegistry.all().stream().filter(i -> FLOAT32_ONLY.contains(i.name())).toList());
    }

    @Provide
    Arbitrary<ElementType> types() {
        return Arbitraries.of(ElementType.F32, ElementType.BF16, ElementType.F16);
    }

    @Provide
    Arbitrary<ElementType> halfTypes() {
        return Arbitraries.of(ElementType.BF16, ElementType.F16);
    }

    /** Any mix of q, k, v types, out in F32 or a half type: the float32 operator on the widened inputs, rounded once. */
    @Property(tries = 120)
    void halfInputsGiveTheFloat32ResultOfTheWidenedInputsRoundedOnce(
            @ForAll("halfVariants") VariantInfo info, @ForAll("types") ElementType qType, @ForAll("types") ElementType kType,
            @ForAll("types") ElementType vType, @ForAll("types") ElementType outType,
            @ForAll @IntRange(min = 1, max = 2) int batch, @ForAll @IntRange(min = 1, max = 2) int heads,
            @ForAll @IntRange(min = 1, max = 24) int n, @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        Assume.that(qType != ElementType.F32 || kType != ElementType.F32 || vType != ElementType.F32 || outType != ElementType.F32);
        try (Arena arena = Arena.ofShared()) {
            VariantInfo.Configured c = info.create(batch, heads, n, d);
            AttentionOperator op = c.operator();
            Tensor q = Tensor.randomNormal(arena, seed, 1f, c.qShape()).to(arena, qType);
            Tensor k = Tensor.randomNormal(arena, seed + 1, 1f, c.kShape()).to(arena, kType);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, c.vShape()).to(arena, vType);
            float[] q0 = q.toArray(), k0 = k.toArray(), v0 = v.toArray();

            Tensor wide = op.forward(arena, q.to(arena, ElementType.F32), k.to(arena, ElementType.F32), v.to(arena, ElementType.F32));
            float[] expected = wide.to(arena, outType).toArray();

            Tensor out = Tensor.zeros(arena, outType, op.outputShape(q, k, v));
            out.fill(Float.NaN);
            op.forward(q, k, v, out);
            assertThat(out.type()).isEqualTo(outType);
            assertThat(out.toArray()).as("%s, q %s, k %s, v %s, out %s", info.name(), qType, kType, vType, outType).isEqualTo(expected);
            assertThat(q.toArray()).as("q unchanged").isEqualTo(q0);
            assertThat(k.toArray()).as("k unchanged").isEqualTo(k0);
            assertThat(v.toArray()).as("v unchanged").isEqualTo(v0);
        }
    }

    /** The backward passes stay float32: a half-precision input or gradient is rejected by name, before any work. */
    @Property(tries = 40)
    void backwardRejectsHalfPrecisionByName(@ForAll("halfVariants") VariantInfo info, @ForAll("halfTypes") ElementType type,
                                            @ForAll @IntRange(min = 0, max = 6) int which, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            VariantInfo.Configured c = info.create(1, 2, 8, 4);
            Assume.that(c.operator() instanceof AttentionOperator.Differentiable);
            AttentionOperator.Differentiable op = (AttentionOperator.Differentiable) c.operator();
            long[][] shapes = {c.qShape(), c.kShape(), c.vShape(), op.outputShape(
                    Tensor.zeros(arena, c.qShape()), Tensor.zeros(arena, c.kShape()), Tensor.zeros(arena, c.vShape())), c.qShape(), c.kShape(), c.vShape()};
            Tensor[] t = new Tensor[7];
            for (int i = 0; i < 7; i++) {
                Tensor x = Tensor.randomNormal(arena, seed + i, 1f, shapes[i]);
                t[i] = i == which ? x.to(arena, type) : x;
            }
            String name = new String[] {"q", "k", "v", "dOut", "dq", "dk", "dv"}[which];
            assertThatThrownBy(() -> op.backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6]))
                    .as("%s backward, %s in %s", info.name(), name, type)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("has element type " + type)
                    .hasMessageContaining("backward pass");
        }
    }

    /** The variants that still read float32 memory only reject a half-precision q, k, v or out by name. */
    @Property(tries = 40)
    void otherVariantsRejectHalfPrecisionByName(@ForAll("float32Variants") VariantInfo info, @ForAll("halfTypes") ElementType type,
                                                @ForAll @IntRange(min = 0, max = 3) int which, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            // The convolution's forward reads only v (the sequence) into out; q and k are not read.
            Assume.that(!info.name().equals("causal-conv") || which >= 2);
            VariantInfo.Configured c = info.create(1, 2, 8, 4);
            AttentionOperator op = c.operator();
            Tensor[] t = {Tensor.randomNormal(arena, seed, 1f, c.qShape()), Tensor.randomNormal(arena, seed + 1, 1f, c.kShape()),
                    Tensor.randomNormal(arena, seed + 2, 1f, c.vShape()), null};
            t[3] = Tensor.zeros(arena, op.outputShape(t[0], t[1], t[2]));
            t[which] = t[which].to(arena, type);
            assertThatThrownBy(() -> op.forward(t[0], t[1], t[2], t[3]))
                    .as("%s forward, tensor %d in %s", info.name(), which, type)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("has element type " + type);
        }
    }
}
