package io.tessera.proptest;

import static io.tessera.proptest.FusedAttentionProperties.mask;
import static io.tessera.proptest.FusedAttentionProperties.predicate;
import static io.tessera.proptest.FusedAttentionProperties.spec;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionGradients;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.proptest.FusedAttentionProperties.MaskKind;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantRegistry;
import java.lang.foreign.Arena;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Half-precision storage (BF16, F16) end to end: the fused forward and backward on every CPU
 * backend, every mask kind and every compiled pattern against the float64 oracle on the same
 * rounded inputs (the EXACT contract, plus the output's one rounding, {@link Tolerance#stored}),
 * GEMM with half operands, thread-count bit identity, fp32 accumulation over long key ranges, and
 * clear rejections wherever a half type is not supported.
 */
class HalfPrecisionProperties {

    /** Element types of q, k and v: the common cases and a mixed one. */
    enum Storage {
        ALL_F32(ElementType.F32, ElementType.F32, ElementType.F32),
        ALL_BF16(ElementType.BF16, ElementType.BF16, ElementType.BF16),
        ALL_F16(ElementType.F16, ElementType.F16, ElementType.F16),
        F32_QUERIES_BF16_KV(ElementType.F32, ElementType.BF16, ElementType.BF16),
        F32_QUERIES_F16_KV(ElementType.F32, ElementType.F16, ElementType.F16),
        MIXED(ElementType.F16, ElementType.BF16, ElementType.F32);

        final ElementType q, k, v;

        Storage(ElementType q, ElementType k, ElementType v) {
            this.q = q;
            this.k = k;
            this.v = v;
        }

        /** The output types the kernels accept for these inputs that the tests use: F32 or the value type. */
        ElementType output(boolean f32) { return f32 ? ElementType.F32 : v == ElementType.F32 ? q : v; }
    }

    /** The storages with at least one half-precision tensor (float32 alone is what every other property covers). */
    @Provide
    Arbitrary<Storage> halves() { return Arbitraries.of(Storage.values()).filter(s -> s != Storage.ALL_F32); }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(40, 40, 12); }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    @Property(tries = 120)
    void forwardMatchesTheOracleOnRoundedInputs(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend,
                                                @ForAll("halves") Storage storage, @ForAll boolean f32Output, @ForAll boolean paddedRows,
                                                @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(Backend.named(backend)).withBlockSizes(blockQ, blockKV);
            checkForward(arena, attn, stored(arena, c.q(arena), storage.q, paddedRows), stored(arena, c.k(arena), storage.k, paddedRows),
                    stored(arena, c.v(arena), storage.v, paddedRows), mask(p), storage.output(f32Output));
        }
    }

    /** {@code t} in {@code type}, contiguous or as a view whose rows are 3 elements apart from each other's ends (strided rows). */
    private static Tensor stored(Arena arena, Tensor t, ElementType type, boolean paddedRows) {
        if (!paddedRows) return t.to(arena, type);
        long[] shape = t.shape();
        long width = shape[3];
        shape[3] = width + 3;
        Tensor padded = Tensor.zeros(arena, type, shape);
        padded.fill(Float.NaN);   // the padding is never read
        Tensor view = padded.slice(3, 0, width);
        view.copyFrom(t);
        return view;
    }

    /** Every pattern the compiler produces, at the backend's own block sizes, in both half types. */
    @Property(tries = 100)
    void compiledPatternsMatchTheOracleInHalfPrecision(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern,
                                                       @ForAll("backends") String backend, @ForAll("halves") Storage storage, @ForAll boolean f32Output) {
        try (Arena arena = Arena.ofShared()) {
            Attention attn = Attention.sparse(pattern).on(Backend.named(backend));
            checkForward(arena, attn, c.q(arena).to(arena, storage.q), c.k(arena).to(arena, storage.k), c.v(arena).to(arena, storage.v),
                    pattern.asMask(c.qLen(), c.kvLen()), storage.output(f32Output));
        }
    }

    /**
     * The backward pass with half-precision q, k, v and dOut (F32 gradients, F32 forward output as in
     * mixed-precision training): the EXACT gradient contract on the rounded inputs.
     */
    @Property(tries = 80)
    void gradientsMatchTheOracleOnRoundedInputs(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("backends") String backend,
                                                @ForAll("halves") Storage storage, @ForAll @IntRange(min = 1, max = 20) int blockQ,
                                                @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        if ((long) c.qLen() * c.kvLen() > 900) return;   // the float64 gradient oracle is cubic; keep CI-sized
        try (Arena arena = Arena.ofShared()) {
            ElementPredicate p = predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(spec(kind.name(), p)).on(Backend.named(backend)).withBlockSizes(blockQ, blockKV);
            Tensor dOut = Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim()).to(arena, storage.v);
            GradientProperties.checkGradients(arena, attn, c.q(arena).to(arena, storage.q), c.k(arena).to(arena, storage.k),
                    c.v(arena).to(arena, storage.v), dOut, mask(p), Float.NaN);
        }
    }

    @Property(tries = 30)
    void simdIsBitIdenticalForAnyThreadCountInHalfPrecision(@ForAll("cases") AttentionCase c, @ForAll MaskKind kind, @ForAll("halves") Storage storage,
                                                            @ForAll boolean f32Output) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena).to(arena, storage.q), k = c.k(arena).to(arena, storage.k), v = c.v(arena).to(arena, storage.v);
            Attention attn = Attention.sparse(spec(kind.name(), predicate(kind, c.qLen(), c.kvLen(), c.seed()))).withBlockSizes(7, 16);
            Backend simd = Backend.named("simd");
            Tensor one = run(arena, attn.on(simd.withThreads(1)), q, k, v, storage.output(f32Output));
            Tensor three = run(arena, attn.on(simd.withThreads(3)), q, k, v, storage.output(f32Output));
            assertThat(three.toArray()).containsExactly(one.toArray());
        }
    }

    /** GEMM with half-precision a and b (c is F32): within Higham's fp32 bound of the float64 product of the rounded operands. */
    @Property(tries = 80)
    void gemmWithHalfOperandsMatchesTheFloat64Product(@ForAll("backends") String backend, @ForAll boolean transposeA, @ForAll boolean transposeB,
                                                      @ForAll @IntRange(min = 1, max = 130) int m, @ForAll @IntRange(min = 1, max = 70) int n,
                                                      @ForAll @IntRange(min = 1, max = 300) int k, @ForAll("halves") Storage storage,
                                                      @ForAll @IntRange(min = 1, max = 3) int threads, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Tensor a = Tensor.randomNormal(arena, seed, 1f, transposeA ? k : m, transposeA ? m : k).to(arena, storage.q);
            Tensor b = Tensor.randomNormal(arena, seed + 1, 1f, transposeB ? n : k, transposeB ? k : n).to(arena, storage.k);
            Tensor c = Tensor.randomNormal(arena, seed + 2, 1f, m, n);
            float[] before = c.toArray();
            float alpha = 0.75f, beta = -0.5f;
            Backend.named(backend).withThreads(threads).gemm(a, transposeA, b, transposeB, c, alpha, beta);
            float[] got = c.toArray();
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double dot = 0, absDot = 0;
                    for (int p = 0; p < k; p++) {
                        double x = transposeA ? a.get(p, i) : a.get(i, p), y = transposeB ? b.get(j, p) : b.get(p, j);
                        dot += x * y;
                        absDot += Math.abs(x * y);
                    }
                    double expected = alpha * dot + beta * before[i * n + j];
                    double bound = k * 0x1p-24 * Math.abs(alpha) * absDot + 4 * 0x1p-24 * (Math.abs(expected) + 1);
                    assertThat(Math.abs(got[i * n + j] - expected)).as("c[%d][%d]", i, j).isLessThanOrEqualTo(bound);
                }
            }
        }
    }

    /**
     * Accumulation is float32 whatever the storage: over 4096 bf16 keys whose values share a common
     * offset (the case where a half-precision running sum loses the small terms, about 1 % off),
     * the output stays within the float32 EXACT contract of the oracle, far below one bf16 ulp.
     */
    @Example
    void longKeyRangesAccumulateInFloat32() {
        try (Arena arena = Arena.ofShared()) {
            int n = 4096, d = 64;
            Tensor q = Tensor.randomNormal(arena, 11, 0.05f, 1, 1, 4, d).to(arena, ElementType.BF16);
            Tensor k = Tensor.randomNormal(arena, 12, 1f, 1, 1, n, d).to(arena, ElementType.BF16);
            Tensor v = Tensor.randomUniform(arena, 13, 0.5f, 1.5f, 1, 1, n, d).to(arena, ElementType.BF16);
            for (Backend be : Backend.available()) {
                AttentionResult r = Attention.dense().on(be).forwardWithLse(arena, q, k, v);
                DenseReference.Result oracle = DenseReference.attention(q, k, v, (b, h, i, j) -> true, Double.NaN);
                double error = Tolerance.maxError(r.output(), oracle.output());
                assertThat(error).as("%s: error over %d bf16 keys", be.name(), n).isLessThan(1e-4);
            }
        }
    }

    @Provide
    Arbitrary<PagedAttentionProperties.Setup> cacheSetups() { return new PagedAttentionProperties().setups(); }

    @Provide
    Arbitrary<Pattern> cachePatterns() { return new PagedAttentionProperties().patterns(); }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Decoding against a half-precision KV cache: appended float32 tokens are rounded once into the
     * cache, and paged attention over them (F32 or half queries) is within the EXACT contract of the
     * oracle on the rounded keys and values.
     */
    @Property(tries = 80)
    void decodeWithAHalfCacheMatchesTheOracleOnTheRoundedTokens(@ForAll("cacheSetups") PagedAttentionProperties.Setup s,
                                                                @ForAll("cachePatterns") Pattern pattern, @ForAll("backends") String backend,
                                                                @ForAll("halfTypes") ElementType type, @ForAll boolean halfQueries) {
        try (Arena arena = Arena.ofShared()) {
            int length = 1 + (int) Math.floorMod(s.seed(), (long) s.maxLength());
            KvCache cache = KvCache.allocate(arena, type, 1, (length + s.pageSize() - 1) / s.pageSize(), s.pageSize(), s.kvHeads(), s.headDim(), s.valueDim());
            Tensor k = Tensor.randomNormal(arena, s.seed() + 1, 1f, 1, s.kvHeads(), length, s.headDim());
            Tensor v = Tensor.randomNormal(arena, s.seed() + 2, 1f, 1, s.kvHeads(), length, s.valueDim());
            int half = length / 2;
            if (half > 0) cache.append(0, k.slice(2, 0, half), v.slice(2, 0, half));
            cache.append(0, k.slice(2, half, length), v.slice(2, half, length));
            assertThat(cache.keyStorage().type()).isEqualTo(type);
            Tensor q = Tensor.randomNormal(arena, s.seed() + 3, 1f, 1, s.heads(), s.qLen(), s.headDim()).to(arena, halfQueries ? type : ElementType.F32);
            Tensor out = Tensor.zeros(arena, 1, s.heads(), s.qLen(), s.valueDim()), lse = Tensor.zeros(arena, 1, s.heads(), s.qLen());
            PagedAttention decode = PagedAttention.of(pattern).on(Backend.named(backend));
            decode.forward(cache, 0, q, out, lse);
            Tensor kRounded = k.to(arena, type), vRounded = v.to(arena, type);
            double scale = 1.0 / Math.sqrt(s.headDim());
            MaskFunction m = decode.pattern().asMask(s.qLen(), length);
            DenseReference.Result oracle = DenseReference.attention(q, kRounded, vRounded, m, scale);
            DenseReference.Result naive = DenseReference.naiveFloat32(q, kRounded, vRounded, m, scale);
            Tolerance tolerance = Tolerance.exact(q, kRounded, vRounded, scale, naive, oracle);
            assertThat(Tolerance.maxError(out, oracle.output())).as("output under %s with a %s cache", decode, type).isLessThanOrEqualTo(tolerance.output());
            assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE under %s with a %s cache", decode, type).isLessThanOrEqualTo(tolerance.logSumExp());
            assertThat(cache.keyStorage().segment().byteSize()).isEqualTo(2L * s.kvHeads() * cache.pages() * s.pageSize() * s.headDim());
        }
    }

    /**
     * bfloat16 has float32's range, so finite bf16 inputs can overflow float32 scores: the call says
     * so naming the first row, as for F32; a NaN or infinity in a row's own bf16 query gives a NaN
     * row (the finiteness check reads the inputs in their own type).
     */
    @Example
    void bfloat16ScoresThatOverflowFloat32AreAClearError() {
        for (String backend : new String[] {"scalar", "simd"}) {
            try (Arena arena = Arena.ofConfined()) {
                int n = 37, d = 8, row = 21;
                Tensor q = Tensor.randomNormal(arena, 31, 1f, 1, 2, n, d), k = Tensor.randomNormal(arena, 32, 1f, 1, 2, n, d);
                Tensor v = Tensor.randomNormal(arena, 33, 1f, 1, 2, n, d).to(arena, ElementType.BF16);
                for (int c = 0; c < d; c++) q.set(1e20f, 0, 1, row, c);
                for (int j = 0; j < n; j++) for (int c = 0; c < d; c++) k.set(Math.abs(k.get(0, 1, j, c)) * 1e20f + 1f, 0, 1, j, c);
                Tensor qb = q.to(arena, ElementType.BF16), kb = k.to(arena, ElementType.BF16);
                Attention attention = Attention.dense().on(Backend.named(backend));
                assertThatThrownBy(() -> attention.forwardWithLse(arena, qb, kb, v)).as(backend)
                        .isInstanceOf(ArithmeticException.class).hasMessageContaining("overflowed float32 at batch 0, head 1, query row " + row);
                Tensor clean = Tensor.randomNormal(arena, 34, 1f, 1, 1, n, d).to(arena, ElementType.BF16);
                clean.set(Float.NaN, 0, 0, 5, 3);
                Tensor keys = Tensor.randomNormal(arena, 35, 1f, 1, 1, n, d).to(arena, ElementType.BF16);
                AttentionResult r = Attention.sparse(Pattern.causal()).on(Backend.named(backend)).forwardWithLse(arena, clean, keys, keys);
                assertThat(r.logSumExp().get(0, 0, 5)).as("%s: LSE of a row with a NaN bf16 query", backend).isNaN();
                assertThat(r.logSumExp().get(0, 0, 4)).as("%s: LSE of a clean row", backend).isFinite();
            }
        }
    }

    @Example
    void unsupportedTypesAreRejectedByName() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 8, 16).to(arena, ElementType.BF16);
            Tensor k = Tensor.randomNormal(arena, 2, 1f, 1, 2, 8, 16).to(arena, ElementType.BF16);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 2, 8, 16).to(arena, ElementType.BF16);
            for (Backend be : Backend.available()) {
                Attention dense = Attention.dense().on(be);
                assertThatThrownBy(() -> dense.forwardWithLse(q, k, v, Tensor.zeros(arena, 1, 2, 8, 16), Tensor.zeros(arena, ElementType.F16, 1, 2, 8)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("lse has element type F16");
                AttentionResult r = dense.forwardWithLse(arena, q, k, v);
                Tensor dOut = Tensor.zeros(arena, 1, 2, 8, 16);
                assertThatThrownBy(() -> dense.backward(q, k, v, r.output(), r.logSumExp(), dOut,
                        Tensor.zeros(arena, ElementType.BF16, 1, 2, 8, 16), Tensor.zeros(arena, 1, 2, 8, 16), Tensor.zeros(arena, 1, 2, 8, 16)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dq has element type BF16");
                assertThatThrownBy(() -> be.gemm(q.reshape(16, 16), false, k.reshape(16, 16), true, Tensor.zeros(arena, ElementType.BF16, 16, 16), 1f, 0f))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("c has element type BF16");
            }
        }
    }

    /**
     * Every registered variant either runs on half-precision inputs, giving exactly the bits it
     * gives on float32 copies of the same (rounded) values, since widening is exact and everything
     * after it is float32, or rejects them up front naming the parameter and the type.
     */
    @Example
    void everyVariantRunsHalfInputsExactlyOrRejectsThemByName() {
        try (Arena arena = Arena.ofShared()) {
            int supported = 0;
            for (VariantInfo info : VariantRegistry.all()) {
                VariantInfo.Configured cfg = info.create(1, 2, 16, 8);
                Tensor q = Tensor.randomNormal(arena, 1, 1f, cfg.qShape()).to(arena, ElementType.BF16);
                Tensor k = Tensor.randomNormal(arena, 2, 1f, cfg.kShape()).to(arena, ElementType.BF16);
                Tensor v = Tensor.randomNormal(arena, 3, 1f, cfg.vShape()).to(arena, ElementType.BF16);
                AttentionOperator op = cfg.operator();
                Tensor out = Tensor.zeros(arena, op.outputShape(q, k, v));
                try {
                    op.forward(q, k, v, out);
                } catch (IllegalArgumentException e) {
                    assertThat(e).as(info.name()).hasMessageContaining("has element type BF16").hasMessageContaining("supports only F32");
                    continue;
                }
                Tensor widened = op.forward(arena, q.to(arena, ElementType.F32), k.to(arena, ElementType.F32), v.to(arena, ElementType.F32));
                assertThat(out.toArray()).as(info.name()).containsExactly(widened.toArray());
                supported++;
            }
            assertThat(supported).as("variants that run half-precision storage (all of them)").isEqualTo(VariantRegistry.all().size());
        }
    }

    /** Merge takes half-precision partial outputs (MergeProperties); a half-precision partial log-sum-exp is rejected by name. */
    @Example
    void mergeRejectsHalfLogSumExpsByName() {
        try (Arena arena = Arena.ofShared()) {
            AttentionResult partial = new AttentionResult(Tensor.zeros(arena, ElementType.F16, 1, 2, 8, 16), Tensor.zeros(arena, ElementType.BF16, 1, 2, 8));
            assertThatThrownBy(() -> Attention.merge(arena, List.of(partial)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("partials[0].logSumExp has element type BF16");
        }
    }

    private static Tensor run(Arena arena, Attention attn, Tensor q, Tensor k, Tensor v, ElementType outType) {
        AttentionShape s = AttentionShape.of(q, k, v);
        Tensor out = Tensor.zeros(arena, outType, s.outputShape()), lse = Tensor.zeros(arena, s.lseShape());
        attn.forwardWithLse(q, k, v, out, lse);
        return out;
    }

    /** The output within {@link Tolerance#stored} of the oracle element by element; the LSE (always F32) within the EXACT contract. */
    static void checkForward(Arena arena, Attention attn, Tensor q, Tensor k, Tensor v, MaskFunction mask, ElementType outType) {
        AttentionShape s = AttentionShape.of(q, k, v);
        Tensor out = Tensor.zeros(arena, outType, s.outputShape()), lse = Tensor.zeros(arena, s.lseShape());
        attn.forwardWithLse(q, k, v, out, lse);
        double scale = 1.0 / Math.sqrt(q.size(3));
        DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale);
        DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, mask, scale);
        Tolerance tolerance = Tolerance.exact(q, k, v, scale, naive, oracle);
        float[] got = out.toArray();
        double[] expected = oracle.output();
        for (int i = 0; i < got.length; i++) {
            double bound = Tolerance.stored(outType, tolerance.output(), expected[i]);
            assertThat(Tolerance.maxError(new float[] {got[i]}, new double[] {expected[i]}))
                    .as("output[%d] of %s in %s (%s q, %s k, %s v)", i, attn, outType, q.type(), k.type(), v.type()).isLessThanOrEqualTo(bound);
        }
        assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE error of %s", attn).isLessThanOrEqualTo(tolerance.logSumExp());
    }
}
