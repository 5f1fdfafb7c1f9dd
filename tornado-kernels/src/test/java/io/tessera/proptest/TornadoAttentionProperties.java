package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.variant.lowrank.Linformer;
import io.tessera.pattern.ElementPredicate;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.layout.CsrMatrix;
import io.tessera.variant.sparse.SparseAttention;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.tornado.DeviceRun;
import io.tessera.tornado.TornadoBackend;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * The fused attention properties of the CPU suite, run on the TornadoVM device: same cases, same
 * float64 oracle, same tolerances ({@link FusedAttentionProperties#checkAgainstOracle}), fp32 on the
 * device. Every call must have run its kernel on the device: a bailout to sequential Java (which
 * would compute the right answer on the host) fails the test. Lives in the suite's package to reuse
 * its package-private helpers from the proptest test-jar.
 */
class TornadoAttentionProperties {

    static Backend tornado() { return Backend.named("tornado"); }

    /** The last call really ran on the device: TornadoVM's profiler saw kernel time there. */
    static DeviceRun ranOnDevice(String kernel) {
        DeviceRun run = TornadoBackend.lastRun();
        assertThat(run.kernel()).isEqualTo(kernel);
        assertThat(run.deviceKernelNanos()).as("device kernel time of %s (0 = bailout to Java)", run).isPositive();
        assertThat(run.hostCopies()).as("host-side staging copies").isZero();
        return run;
    }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(40, 40, 12); }

    @Property(tries = 40)
    void matchesTheMaskedOracle(@ForAll("cases") AttentionCase c, @ForAll FusedAttentionProperties.MaskKind kind,
                                @ForAll @IntRange(min = 1, max = 20) int blockQ, @ForAll @IntRange(min = 1, max = 70) int blockKV) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            ElementPredicate p = FusedAttentionProperties.predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(FusedAttentionProperties.spec(kind.name(), p)).on(tornado()).withBlockSizes(blockQ, blockKV);
            FusedAttentionProperties.checkAgainstOracle(arena, attn, q, k, v, FusedAttentionProperties.mask(p));
            ranOnDevice("attention");
        }
    }

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    @Property(tries = 30)
    void compiledPatternsMatchTheMaskedOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            FusedAttentionProperties.checkAgainstOracle(arena, Attention.sparse(pattern).on(tornado()), q, k, v, pattern.asMask(c.qLen(), c.kvLen()));
            ranOnDevice("attention");
        }
    }

    @Property(tries = 15)
    void largeMagnitudeLogitsNeitherOverflowNorLoseAccuracy(@ForAll("cases") AttentionCase c, @ForAll FusedAttentionProperties.MaskKind kind) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, c.seed(), 30f, c.batch(), c.heads(), c.qLen(), c.headDim());
            Tensor k = Tensor.randomNormal(arena, c.seed() + 1, 30f, c.batch(), c.kvHeads(), c.kvLen(), c.headDim());
            ElementPredicate p = FusedAttentionProperties.predicate(kind, c.qLen(), c.kvLen(), c.seed());
            Attention attn = Attention.sparse(FusedAttentionProperties.spec(kind.name(), p)).on(tornado());
            FusedAttentionProperties.checkAgainstOracle(arena, attn, q, k, c.v(arena), FusedAttentionProperties.mask(p));
            ranOnDevice("attention");
        }
    }

    /** The explicit sparse path's SDDMM and SpMM kernels, on every pattern's CSR, against the oracle. */
    @Property(tries = 25)
    void explicitSparsePathMatchesTheOracle(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern pattern,
                                            @ForAll @IntRange(min = 1, max = 20) int block) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            CsrMatrix csr = CsrMatrix.fromLayout(pattern.compile(c.qLen(), c.kvLen(), block, block));
            Tensor out = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen(), c.valueDim()), lse = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen());
            float scale = (float) (1 / Math.sqrt(c.headDim()));
            SparseAttention.forward(tornado(), q, k, v, csr, scale, out, lse);
            ranOnDevice("sparse");
            MaskFunction mask = pattern.asMask(c.qLen(), c.kvLen());
            DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale), naive = DenseReference.naiveFloat32(q, k, v, mask, scale);
            assertThat(Tolerance.maxError(out, oracle.output())).isLessThanOrEqualTo(Tolerance.exact(q, k, v, scale, naive, oracle).output());
            assertThat(Tolerance.maxError(lse, oracle.logSumExp())).isLessThanOrEqualTo(Tolerance.exact(q, k, v, scale, naive, oracle).logSumExp());
        }
    }

    /** Linformer with identity projections is dense attention: its GEMMs and its attention call both on the device. */
    @Property(tries = 10)
    void linformerWithIdentityProjectionsIsDenseAttention(@ForAll @IntRange(min = 1, max = 40) int n, @ForAll @IntRange(min = 1, max = 12) int d,
                                                          @ForAll @IntRange(min = 1, max = 3) int heads, @ForAll long seed) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, seed, 1f, 1, heads, n, d), k = Tensor.randomNormal(arena, seed + 1, 1f, 1, heads, n, d);
            Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, heads, n, d), out = Tensor.zeros(arena, 1, heads, n, d);
            Tensor identity = Tensor.zeros(arena, 1, n, n);
            for (int i = 0; i < n; i++) identity.set(1f, 0, i, i);
            Linformer.of(identity, identity).on(tornado()).forward(q, k, v, out);
            ranOnDevice("attention");
            DenseReference.Result oracle = DenseReference.attention(q, k, v), naive = DenseReference.naiveFloat32(q, k, v, (b, h, i, j) -> true, Double.NaN);
            assertThat(Tolerance.maxError(out, oracle.output())).isLessThanOrEqualTo(Tolerance.exact(q, k, v, Double.NaN, naive, oracle).output());
        }
    }

    /** Views (q, k and v cut from one packed tensor) are wrapped in place, offsets and strides and all. */
    @Example
    void viewsOfOnePackedTensorAreReadInPlace() {
        try (Arena arena = Arena.ofShared()) {
            Tensor qkv = Tensor.randomNormal(arena, 7, 1f, 3, 2, 4, 37, 24);
            Tensor q = qkv.select(0, 0), k = qkv.select(0, 1), v = qkv.select(0, 2);
            Pattern window = Pattern.slidingWindow(5).or(Pattern.globalTokens(0));
            FusedAttentionProperties.checkAgainstOracle(arena, Attention.sparse(window).on(tornado()), q, k, v, window.asMask(37, 37));
            ranOnDevice("attention");
        }
    }

    /** An output that is a view of a larger tensor is written in place and the rest of its storage is left alone. */
    @Example
    void outputViewsLeaveTheRestOfTheirStorageAlone() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 20, 8), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, 20, 8);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 2, 20, 8);
            Tensor big = Tensor.zeros(arena, 3, 1, 2, 20, 8);
            big.fill(7f);
            Tensor out = big.select(0, 1);
            Attention.dense().on(tornado()).forward(q, k, v, out);
            DeviceRun run = ranOnDevice("attention");
            Tensor expected = Attention.dense().on(Backend.named("scalar")).forward(arena, q, k, v);
            float[] got = out.contiguous(arena).toArray(), want = expected.toArray();
            for (int i = 0; i < want.length; i++) assertThat(got[i]).isCloseTo(want[i], org.assertj.core.data.Offset.offset(1e-5f));
            for (float x : big.select(0, 0).contiguous(arena).toArray()) assertThat(x).isEqualTo(7f);
            for (float x : big.select(0, 2).contiguous(arena).toArray()) assertThat(x).isEqualTo(7f);
            // The view's whole storage went to the device (and back), besides q, k and v.
            long tensorBytes = 2 * 20 * 8 * Float.BYTES;
            assertThat(run.bytesToDevice()).isGreaterThanOrEqualTo(3 * tensorBytes + 3 * tensorBytes);
        }
    }

    /** An output that owns its storage is only copied back, never sent. */
    @Example
    void wholeOutputsAreOnlyCopiedBack() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, 64, 16), out = Tensor.zeros(arena, 1, 1, 64, 16);
            Attention attn = Attention.dense().on(tornado());
            attn.forward(q, q, q, out);
            attn.forward(q, q, q, out);   // the first execution also uploads the layout
            DeviceRun run = ranOnDevice("attention");
            assertThat(run.firstExecution()).isFalse();
            long tensorBytes = Tensor.HEADER_BYTES + 64 * 16 * Float.BYTES;
            assertThat(run.bytesToHost()).isGreaterThanOrEqualTo(tensorBytes);
            // q once (it is q, k and v), the shape parameters, and not the output.
            assertThat(run.bytesToDevice()).isBetween(tensorBytes, tensorBytes + 512);
        }
    }

    @Example
    void aPlanIsBuiltOnceAndReused() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 2, 100, 16), k = Tensor.randomNormal(arena, 2, 1f, 1, 2, 90, 16);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 2, 90, 16), out = Tensor.zeros(arena, 1, 2, 100, 16);
            Attention attn = Attention.sparse(Pattern.causal());
            attn.on(tornado()).forward(q, k, v, out);
            assertThat(ranOnDevice("attention").firstExecution()).isTrue();
            float[] first = out.toArray();
            out.fill(Float.NaN);
            attn.on(tornado()).forward(q, k, v, out);
            assertThat(ranOnDevice("attention").firstExecution()).isFalse();
            assertThat(out.toArray()).containsExactly(first);
        }
    }

    @Example
    void fullyMaskedRowsGiveZeroAndMinusInfinity() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, 9, 8), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, 9, 8);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 1, 9, 8);
            ElementPredicate evenRowsOnly = (i, j) -> i % 2 == 0;
            AttentionResult r = Attention.sparse(FusedAttentionProperties.spec("even rows", evenRowsOnly)).on(tornado())
                    .withBlockSizes(4, 4).forwardWithLse(arena, q, k, v);
            ranOnDevice("attention");
            for (int i = 1; i < 9; i += 2) {
                assertThat(r.logSumExp().get(0, 0, i)).isEqualTo(Float.NEGATIVE_INFINITY);
                for (int x = 0; x < 8; x++) assertThat(r.output().get(0, 0, i, x)).isEqualTo(0f);
            }
            for (int i = 0; i < 9; i += 2) assertThat(r.logSumExp().get(0, 0, i)).isFinite();
        }
    }

    /** Called directly, the device's explicit sparse path validates like the CPU path. */
    @Example
    void aPatternOfOtherLengthsIsRejectedByTheDevicePath() {
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.zeros(arena, 1, 1, 4, 2);
            CsrMatrix threeRows = new CsrMatrix(3, 4, new int[] {0, 0, 0, 0}, new int[0]);
            assertThatThrownBy(() -> ((TornadoBackend) tornado()).sparseAttention(x, x, x, threeRows, 1f, Tensor.zeros(arena, 1, 1, 4, 2), null))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("pattern is 3x4 but the call has qLen=4, kvLen=4");
            assertThatThrownBy(() -> SparseAttention.forward(tornado(), x, x, x, null, 1f, Tensor.zeros(arena, 1, 1, 4, 2), null))
                    .isInstanceOf(NullPointerException.class).hasMessage("pattern");
        }
    }

    /**
     * Every call clears the last-run record first: after a call that never reached the device (here
     * rejected before it), lastRun() throws instead of answering with the previous call's record.
     */
    @Example
    void aCallThatNeverReachedTheDeviceLeavesNoRecord() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, 8, 8);
            Attention.dense().on(tornado()).forward(arena, q, q, q);
            ranOnDevice("attention");
            Tensor wide = Tensor.zeros(arena, 1, 1, 8, 300);
            assertThatThrownBy(() -> Attention.dense().on(tornado()).forward(arena, wide, wide, q)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(TornadoBackend::lastRun).isInstanceOf(IllegalStateException.class).hasMessageContaining("did not complete on the device");
            Tensor a = Tensor.randomNormal(arena, 2, 1f, 4, 4), c = Tensor.zeros(arena, 4, 4);
            tornado().gemm(a, false, a, false, c, 1f, 0f);
            ranOnDevice("gemm");
            Tensor half = a.to(arena, ElementType.BF16);
            assertThatThrownBy(() -> tornado().gemm(half, false, a, false, c, 1f, 0f)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(TornadoBackend::lastRun).isInstanceOf(IllegalStateException.class);
        }
    }

    /**
     * Tensors over foreign memory (Tensor.wrap: no header slot for TornadoVM) are staged through
     * TornadoVM arrays, and the run counts each copy: q, k and v in, out in (it is a view of a
     * larger buffer) and out back. Results match the oracle and the rest of out's buffer is kept.
     */
    @Example
    void foreignMemoryIsStagedAndEveryCopyIsCounted() {
        try (Arena arena = Arena.ofShared()) {
            long[] shape = {1, 2, 10, 8};
            Tensor q = foreign(arena, Tensor.randomNormal(arena, 1, 1f, shape)), k = foreign(arena, Tensor.randomNormal(arena, 2, 1f, shape));
            Tensor v = foreign(arena, Tensor.randomNormal(arena, 3, 1f, shape));
            java.lang.foreign.MemorySegment buffer = arena.allocate(2 * 160 * Float.BYTES, 4);
            Tensor both = Tensor.wrap(buffer, 2, 1, 2, 10, 8);
            both.fill(7f);
            Tensor out = both.select(0, 1);
            Attention.dense().on(tornado()).forward(q, k, v, out);
            DeviceRun run = TornadoBackend.lastRun();
            assertThat(run.deviceKernelNanos()).isPositive();
            assertThat(run.hostCopies()).isEqualTo(5);
            DenseReference.Result oracle = DenseReference.attention(q, k, v), naive = DenseReference.naiveFloat32(q, k, v, (b, h, i, j) -> true, Double.NaN);
            assertThat(Tolerance.maxError(out, oracle.output())).isLessThanOrEqualTo(Tolerance.exact(q, k, v, Double.NaN, naive, oracle).output());
            for (float x : both.select(0, 0).contiguous(arena).toArray()) assertThat(x).isEqualTo(7f);
        }
    }

    /** A copy of {@code t} in memory Tessera did not allocate (no header slot in front of it). */
    private static Tensor foreign(Arena arena, Tensor t) {
        java.lang.foreign.MemorySegment segment = arena.allocate(t.elementCount() * Float.BYTES, 4);
        Tensor w = Tensor.wrap(segment, t.shape());
        w.copyFrom(t);
        assertThat(w.hasHeaderSlot()).isFalse();
        return w;
    }

    /** Half-precision tensors are rejected up front by every device entry point, naming the tensor, its type and the backend. */
    @Example
    void halfPrecisionTensorsAreRejectedNamingTheType() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, 8, 8), out = Tensor.zeros(arena, 1, 1, 8, 8);
            Tensor bf16 = q.to(arena, ElementType.BF16), f16 = q.to(arena, ElementType.F16);
            assertThatThrownBy(() -> tornado().attention(q, bf16, q, Attention.dense().layouts(1, 8, 8), 0.5f, out, null))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("k has element type BF16 but backend 'tornado' reads and writes F32 only");
            assertThatThrownBy(() -> Attention.dense().on(tornado()).forward(f16, q, q, out))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("q has element type F16 but backend 'tornado'");
            Tensor a = Tensor.randomNormal(arena, 2, 1f, 4, 4), c = Tensor.zeros(arena, 4, 4);
            assertThatThrownBy(() -> tornado().gemm(a, false, a.to(arena, ElementType.F16), false, c, 1f, 0f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("b has element type F16 but backend 'tornado'");
            CsrMatrix all = CsrMatrix.fromLayout(Pattern.full().compile(8, 8, 4, 4));
            assertThatThrownBy(() -> ((TornadoBackend) tornado()).sparseAttention(q, q, bf16, all, 0.5f, out, null))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("v has element type BF16 but backend 'tornado'");
        }
    }

    @Example
    void headDimsBeyondTheKernelsLocalMemoryAreRejected() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.zeros(arena, 1, 1, 4, 300), v = Tensor.zeros(arena, 1, 1, 4, 8);
            assertThatThrownBy(() -> Attention.dense().on(tornado()).forward(arena, q, q, v))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("headDim=300");
        }
    }

    @Example
    void theDeviceIsReportedHonestly() {
        Backend be = tornado();
        assertThat(be.isAvailable()).isTrue();
        assertThat(be.description()).startsWith("TornadoVM device 0:0");
        assertThat(TornadoBackend.devices()).isNotEmpty();
        assertThatThrownBy(() -> TornadoBackend.onDevice(7, 3))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no TornadoVM device 7:3").hasMessageContaining("devices: [0:0");
    }
}
