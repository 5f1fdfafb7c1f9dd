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
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Half-precision storage in the variants: every registered variant's forward takes BF16/F16 q, k,
 * v and out, runs its float32 path on the exactly widened inputs and rounds the output once to its
 * type, so the result equals, bit for bit, the same operator on float32 copies of the inputs with
 * its float32 output rounded to out's type (the accuracy contract follows: the variant's own
 * contract on the rounded inputs plus one rounding of the output, {@code Tolerance#stored}). The
 * backward passes do the same with q, k, v and dOut of any type and each gradient in F32 or its
 * input's type; any other gradient type, and a half-precision log-sum-exp, is rejected by name.
 */
class HalfPrecisionVariantProperties {

    /**
     * The registered variants whose forward takes half-precision tensors (through float32 copies):
     * the kernelized, low-rank, factorized, content-based, tensorized, explicit sparse and top-k
     * ones and the causal convolution (every registered variant: {@code everyVariantTakesHalves}).
     */
    static final Set<String> TAKE_HALVES = Set.of("linear-attention", "performer", "linformer", "nystrom", "factorized", "axial", "lsh", "routing", "tensorized",
            "explicit-sparse", "top-k", "causal-conv");

    @Provide
    Arbitrary<VariantInfo> halfVariants() {
        return Arbitraries.of(VariantRegistry.all().stream().filter(i -> TAKE_HALVES.contains(i.name())).toList());
    }

    /**
     * The variants whose operator also gives the log-sum-exp. (Drawing from all of them and assuming
     * this rejected about 6 draws in 7: some seeds exhausted jqwik's discard ratio.)
     */
    @Provide
    Arbitrary<VariantInfo> halfVariantsWithLse() {
        return Arbitraries.of(VariantRegistry.all().stream().filter(i -> TAKE_HALVES.contains(i.name()))
                .filter(i -> i.create(1, 2, 4, 4).operator() instanceof AttentionOperator.WithLse).toList());
    }

    @Example
    void everyVariantTakesHalves() {
        // dense and block-sparse run the fused kernels, which read half-precision tensors natively (HalfPrecisionProperties).
        assertThat(VariantRegistry.all().stream().map(VariantInfo::name).filter(name -> !Set.of("dense", "block-sparse").contains(name)).toList())
                .allMatch(TAKE_HALVES::contains);
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

    /**
     * The backward passes: any mix of q, k, v and dOut types, each gradient in F32 or its input's
     * type: the float32 backward pass on the widened inputs, each half-precision gradient rounded
     * once to its type (so the gradient contracts hold on the rounded inputs, plus that rounding).
     */
    @Property(tries = 120)
    void halfBackwardGivesTheFloat32GradientsOfTheWidenedInputsRoundedOnce(
            @ForAll("halfVariants") VariantInfo info, @ForAll("types") ElementType qType, @ForAll("types") ElementType kType,
            @ForAll("types") ElementType vType, @ForAll("types") ElementType dOutType, @ForAll boolean halfDq, @ForAll boolean halfDk,
            @ForAll boolean halfDv, @ForAll @IntRange(min = 1, max = 2) int batch, @ForAll @IntRange(min = 1, max = 2) int heads,
            @ForAll @IntRange(min = 1, max = 24) int n, @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        ElementType dqType = halfDq ? qType : ElementType.F32, dkType = halfDk ? kType : ElementType.F32, dvType = halfDv ? vType : ElementType.F32;
        Assume.that(qType != ElementType.F32 || kType != ElementType.F32 || vType != ElementType.F32 || dOutType != ElementType.F32);
        try (Arena arena = Arena.ofShared()) {
            VariantInfo.Configured c = info.create(batch, heads, n, d);
            Assume.that(c.operator() instanceof AttentionOperator.Differentiable);
            AttentionOperator.Differentiable op = (AttentionOperator.Differentiable) c.operator();
            Tensor q = Tensor.randomNormal(arena, seed, 1f, c.qShape()).to(arena, qType);
            Tensor k = Tensor.randomNormal(arena, seed + 1, 1f, c.kShape()).to(arena, kType);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, c.vShape()).to(arena, vType);
            Tensor dOut = Tensor.randomNormal(arena, seed + 3, 1f, op.outputShape(q, k, v)).to(arena, dOutType);
            float[][] before = {q.toArray(), k.toArray(), v.toArray(), dOut.toArray()};

            Tensor dq32 = Tensor.zeros(arena, c.qShape()), dk32 = Tensor.zeros(arena, c.kShape()), dv32 = Tensor.zeros(arena, c.vShape());
            op.backward(wide(arena, q), wide(arena, k), wide(arena, v), wide(arena, dOut), dq32, dk32, dv32);

            Tensor dq = GradientOracles.gradient(arena, q, dqType), dk = GradientOracles.gradient(arena, k, dkType), dv = GradientOracles.gradient(arena, v, dvType);
            op.backward(q, k, v, dOut, dq, dk, dv);
            String what = info.name() + ", q " + qType + ", k " + kType + ", v " + vType + ", dOut " + dOutType;
            assertThat(dq.toArray()).as("dq in %s of %s", dqType, what).isEqualTo(dq32.to(arena, dqType).toArray());
            assertThat(dk.toArray()).as("dk in %s of %s", dkType, what).isEqualTo(dk32.to(arena, dkType).toArray());
            assertThat(dv.toArray()).as("dv in %s of %s", dvType, what).isEqualTo(dv32.to(arena, dvType).toArray());
            Tensor[] inputs = {q, k, v, dOut};
            for (int i = 0; i < 4; i++) assertThat(inputs[i].toArray()).as("input %d unchanged", i).isEqualTo(before[i]);
        }
    }

    /** The operators that also give the log-sum-exp: with half-precision inputs and out, the lse (F32) of the float32 call on the widened inputs too. */
    @Property(tries = 60)
    void halfForwardWithLseGivesTheFloat32LseOfTheWidenedInputs(
            @ForAll("halfVariantsWithLse") VariantInfo info, @ForAll("types") ElementType qType, @ForAll("types") ElementType kType,
            @ForAll("types") ElementType vType, @ForAll("types") ElementType outType, @ForAll @IntRange(min = 1, max = 24) int n,
            @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        Assume.that(qType != ElementType.F32 || kType != ElementType.F32 || vType != ElementType.F32 || outType != ElementType.F32);
        try (Arena arena = Arena.ofShared()) {
            VariantInfo.Configured c = info.create(1, 2, n, d);
            AttentionOperator.WithLse op = (AttentionOperator.WithLse) c.operator();
            Tensor q = Tensor.randomNormal(arena, seed, 1f, c.qShape()).to(arena, qType);
            Tensor k = Tensor.randomNormal(arena, seed + 1, 1f, c.kShape()).to(arena, kType);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, c.vShape()).to(arena, vType);
            long[] outShape = op.outputShape(q, k, v), lseShape = java.util.Arrays.copyOf(outShape, 3);
            Tensor out32 = Tensor.zeros(arena, outShape), lse32 = Tensor.zeros(arena, lseShape);
            op.forwardWithLse(wide(arena, q), wide(arena, k), wide(arena, v), out32, lse32);
            Tensor out = Tensor.zeros(arena, outType, outShape), lse = Tensor.zeros(arena, lseShape);
            out.fill(Float.NaN);
            lse.fill(Float.NaN);
            op.forwardWithLse(q, k, v, out, lse);
            assertThat(out.toArray()).as("%s out in %s", info.name(), outType).isEqualTo(out32.to(arena, outType).toArray());
            assertThat(lse.toArray()).as("%s lse", info.name()).isEqualTo(lse32.toArray());
        }
    }

    /**
     * The content-based backward given the forward's out and lse: a half-precision out (and q, k,
     * v, dOut) gives the float32 gradients of the widened tensors, each rounded once to its type.
     */
    @Property(tries = 40)
    void contentBackwardWithAHalfOutputGivesTheGradientsOfTheWidenedTensors(
            @ForAll boolean lsh, @ForAll("halfTypes") ElementType type, @ForAll boolean halfGradients, @ForAll @IntRange(min = 1, max = 24) int n,
            @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            VariantInfo.Configured c = VariantRegistry.named(lsh ? "lsh" : "routing").create(1, 2, n, d);
            AttentionOperator.WithLse op = (AttentionOperator.WithLse) c.operator();
            ContentBackward backward = lsh ? ((io.tessera.variant.content.LshAttention) op)::backward : ((io.tessera.variant.content.RoutingAttention) op)::backward;
            Tensor q = Tensor.randomNormal(arena, seed, 1f, c.qShape()).to(arena, type), k = Tensor.randomNormal(arena, seed + 1, 1f, c.kShape()).to(arena, type);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, c.vShape()).to(arena, type);
            long[] outShape = op.outputShape(q, k, v);
            Tensor dOut = Tensor.randomNormal(arena, seed + 3, 1f, outShape).to(arena, type);
            Tensor out = Tensor.zeros(arena, type, outShape), lse = Tensor.zeros(arena, java.util.Arrays.copyOf(outShape, 3));
            op.forwardWithLse(q, k, v, out, lse);
            ElementType gradientType = halfGradients ? type : ElementType.F32;
            Tensor dq32 = Tensor.zeros(arena, c.qShape()), dk32 = Tensor.zeros(arena, c.kShape()), dv32 = Tensor.zeros(arena, c.vShape());
            backward.run(wide(arena, q), wide(arena, k), wide(arena, v), wide(arena, out), lse, wide(arena, dOut), dq32, dk32, dv32);
            Tensor dq = GradientOracles.gradient(arena, q, gradientType), dk = GradientOracles.gradient(arena, k, gradientType), dv = GradientOracles.gradient(arena, v, gradientType);
            backward.run(q, k, v, out, lse, dOut, dq, dk, dv);
            assertThat(dq.toArray()).isEqualTo(dq32.to(arena, gradientType).toArray());
            assertThat(dk.toArray()).isEqualTo(dk32.to(arena, gradientType).toArray());
            assertThat(dv.toArray()).isEqualTo(dv32.to(arena, gradientType).toArray());
        }
    }

    /**
     * Linformer's backward with the projections' gradients: half-precision q, keys, values, dOut and
     * projections E, F; dE, dF in F32 or the projections' type: the float32 call on float32 copies
     * (projections included), each half-precision gradient rounded once.
     */
    @Property(tries = 30)
    void linformerProjectionGradientsInHalfPrecision(@ForAll("halfTypes") ElementType type, @ForAll boolean halfGradients, @ForAll boolean halfProjections,
                                                     @ForAll @IntRange(min = 1, max = 24) int n, @ForAll @IntRange(min = 1, max = 24) int kProjected,
                                                     @ForAll @IntRange(min = 1, max = 8) int d, @ForAll long seed) {
        int kp = Math.min(kProjected, n);
        ElementType projectionType = halfProjections ? type : ElementType.F32, gradientType = halfGradients ? type : ElementType.F32;
        try (Arena arena = Arena.ofShared()) {
            Tensor e = Tensor.randomNormal(arena, seed + 4, 0.3f, 2, kp, n).to(arena, projectionType), f = Tensor.randomNormal(arena, seed + 5, 0.3f, 2, kp, n).to(arena, projectionType);
            io.tessera.variant.lowrank.Linformer op = io.tessera.variant.lowrank.Linformer.of(e, f);
            io.tessera.variant.lowrank.Linformer wideOp = io.tessera.variant.lowrank.Linformer.of(wide(arena, e), wide(arena, f));
            Tensor q = Tensor.randomNormal(arena, seed, 1f, 1, 4, n, d).to(arena, type), k = Tensor.randomNormal(arena, seed + 1, 1f, 1, 2, n, d).to(arena, type);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 2, n, 3).to(arena, type), dOut = Tensor.randomNormal(arena, seed + 3, 1f, 1, 4, n, 3).to(arena, type);
            Tensor[] g32 = {Tensor.zeros(arena, q.shape()), Tensor.zeros(arena, k.shape()), Tensor.zeros(arena, v.shape()), Tensor.zeros(arena, e.shape()), Tensor.zeros(arena, f.shape())};
            wideOp.backward(wide(arena, q), wide(arena, k), wide(arena, v), wide(arena, dOut), g32[0], g32[1], g32[2], g32[3], g32[4]);
            ElementType[] types = {gradientType, gradientType, gradientType, halfGradients ? projectionType : ElementType.F32, halfGradients ? projectionType : ElementType.F32};
            Tensor[] g = new Tensor[5];
            for (int i = 0; i < 5; i++) g[i] = GradientOracles.gradient(arena, g32[i], types[i]);
            op.backward(q, k, v, dOut, g[0], g[1], g[2], g[3], g[4]);
            for (int i = 0; i < 5; i++) assertThat(g[i].toArray()).as("gradient %d in %s", i, types[i]).isEqualTo(g32[i].to(arena, types[i]).toArray());
        }
    }

    /**
     * A gradient is stored in F32 or in its input's type: any other type is rejected by name, with
     * both types, before any work; so is a half-precision log-sum-exp.
     */
    @Property(tries = 40)
    void gradientsOfAnotherTypeAreRejectedByName(@ForAll("halfVariants") VariantInfo info, @ForAll("types") ElementType inputType,
                                                 @ForAll("halfTypes") ElementType gradientType, @ForAll @IntRange(min = 0, max = 2) int which, @ForAll long seed) {
        Assume.that(inputType != gradientType);
        try (Arena arena = Arena.ofShared()) {
            VariantInfo.Configured c = info.create(1, 2, 8, 4);
            Assume.that(c.operator() instanceof AttentionOperator.Differentiable);
            AttentionOperator.Differentiable op = (AttentionOperator.Differentiable) c.operator();
            Tensor[] t = {Tensor.randomNormal(arena, seed, 1f, c.qShape()).to(arena, inputType), Tensor.randomNormal(arena, seed + 1, 1f, c.kShape()).to(arena, inputType),
                    Tensor.randomNormal(arena, seed + 2, 1f, c.vShape()).to(arena, inputType), null, null, null, null};
            t[3] = Tensor.randomNormal(arena, seed + 3, 1f, op.outputShape(t[0], t[1], t[2]));
            for (int i = 0; i < 3; i++) t[4 + i] = Tensor.zeros(arena, t[i].shape());
            t[4 + which] = t[4 + which].to(arena, gradientType);
            float[] untouched = t[4 + which].toArray();
            String name = new String[] {"dq", "dk", "dv"}[which], input = new String[] {"q", "k", "v"}[which];
            assertThatThrownBy(() -> op.backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6]))
                    .as("%s backward, %s in %s for %s in %s", info.name(), name, gradientType, input, inputType)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(name + " has element type " + gradientType + " but " + input + " has element type " + inputType);
            assertThat(t[4 + which].toArray()).isEqualTo(untouched);
        }
    }

    @Example
    void halfPrecisionLogSumExpsAreRejectedByName() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 8, 4).to(arena, ElementType.BF16);
            Tensor out = Tensor.zeros(arena, 1, 2, 8, 4), halfLse = Tensor.zeros(arena, ElementType.F16, 1, 2, 8);
            for (String name : new String[] {"explicit-sparse", "top-k", "lsh", "routing"}) {
                AttentionOperator.WithLse op = (AttentionOperator.WithLse) VariantRegistry.named(name).create(1, 2, 8, 4).operator();
                assertThatThrownBy(() -> op.forwardWithLse(q, q, q, out, halfLse)).as(name)
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("lse has element type F16");
            }
            io.tessera.attention.AttentionResult partial = new io.tessera.attention.AttentionResult(out.to(arena, ElementType.BF16), Tensor.zeros(arena, 1, 2, 8));
            assertThatThrownBy(() -> io.tessera.attention.Attention.merge(java.util.List.of(partial), Tensor.zeros(arena, 1, 2, 8, 4), halfLse))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("lse has element type F16");
            io.tessera.attention.AttentionResult halfPartialLse = new io.tessera.attention.AttentionResult(out, halfLse);
            assertThatThrownBy(() -> io.tessera.attention.Attention.merge(arena, java.util.List.of(halfPartialLse)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("partials[0].logSumExp has element type F16");
        }
    }

    /** The content-based operators' backward pass given the forward's out and lse. */
    @FunctionalInterface
    private interface ContentBackward {
        void run(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut, Tensor dq, Tensor dk, Tensor dv);
    }

    private static Tensor wide(Arena arena, Tensor t) { return t.to(arena, ElementType.F32); }
}
