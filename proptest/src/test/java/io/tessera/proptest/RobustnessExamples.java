package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.layout.BlockLayout;
import io.tessera.layout.BsrMatrix;
import io.tessera.layout.CsrMatrix;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import io.tessera.variant.conv.CausalConvolution;
import io.tessera.variant.factorized.ChainedAttention;
import io.tessera.variant.kernelized.LinearAttention;
import io.tessera.variant.kernelized.Performer;
import io.tessera.variant.lowrank.Linformer;
import io.tessera.variant.lowrank.Nystromformer;
import io.tessera.variant.sparse.SparseAttention;
import io.tessera.variant.sparse.TopKAttention;
import io.tessera.variant.tensorized.TensorizedAttention;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import net.jqwik.api.Example;

/**
 * Issue 17, one example per failure class the issue lists for the variants: values a row must
 * never see, overflow and underflow, aliasing, strides, hangs and integer overflow, silently
 * accepted nonsense, and determinism across JIT tiers. Each failed on the code before the fix.
 */
class RobustnessExamples {

    interface Variant { void forward(Tensor q, Tensor k, Tensor v, Tensor out); }

    // ------------------------------------------------------------ values a row must never see

    @Example
    void causalPerformerAndLinearAttentionRowsIgnoreLaterKeysAndValues() {
        List<Variant> variants = List.of(Performer.withFeatures(32).causal(true)::forward, LinearAttention.causal()::forward);
        for (Variant variant : variants) {
            for (float poison : new float[] {Float.NaN, Float.POSITIVE_INFINITY, 1e4f, -1e4f}) {
                for (int which = 0; which < 2; which++) {   // 0: a key row, 1: a value row
                    try (Arena arena = Arena.ofConfined()) {
                        int n = 300, at = 200;   // at lies inside the second chunk, after rows of the same chunk
                        Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, n, 16), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, n, 16);
                        Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 1, n, 16), clean = Tensor.zeros(arena, 1, 1, n, 16), poisoned = Tensor.zeros(arena, 1, 1, n, 16);
                        variant.forward(q, k, v, clean);
                        for (int c = 0; c < 16; c++) (which == 0 ? k : v).set(poison, 0, 0, at, c);
                        variant.forward(q, k, v, poisoned);
                        float[] a = clean.slice(2, 0, at).toArray(), b = poisoned.slice(2, 0, at).toArray();
                        assertThat(b).as("rows before %d with %s = %s", at, which == 0 ? "k" : "v", poison).containsExactly(a);
                    }
                }
            }
        }
    }

    @Example
    void causalConvolutionFftOutputsIgnoreLaterInputs() {
        CausalConvolution conv = CausalConvolution.of(CausalConvolutionProperties.weights(2, 100, 7), 1);
        for (float poison : new float[] {Float.NaN, Float.NEGATIVE_INFINITY, 1e30f}) {
            try (Arena arena = Arena.ofConfined()) {
                int n = 300, at = 250;
                Tensor x = Tensor.randomNormal(arena, 5, 1f, 1, 1, n, 4), clean = Tensor.zeros(arena, 1, 1, n, 4), poisoned = Tensor.zeros(arena, 1, 1, n, 4);
                conv.forward(x, clean, CausalConvolution.Path.FFT);
                x.set(poison, 0, 0, at, 1);
                conv.forward(x, poisoned, CausalConvolution.Path.FFT);
                assertThat(poisoned.slice(2, 0, at).toArray()).as("outputs before %d, x = %s", at, poison).containsExactly(clean.slice(2, 0, at).toArray());
            }
        }
    }

    // ------------------------------------------------------------ overflow and underflow

    /**
     * Finite inputs whose scores leave float32's range: +∞ scores gave all-NaN rows with LSE −∞
     * (the fully-masked value), all −∞ scores gave output 0 with LSE −∞ as if the row were masked.
     * Now the call says so, naming the first such row, on every backend; NaN or infinite values in a
     * row's own inputs give a NaN row with LSE NaN rather than −∞, and masked rows keep 0 and −∞.
     */
    @Example
    void fusedScoresThatOverflowFloat32AreAClearError() {
        for (String backend : new String[] {"scalar", "simd"}) {
            for (float keySign : new float[] {1f, -1f}) {   // +∞ scores, or every score −∞
                try (Arena arena = Arena.ofConfined()) {
                    int n = 37, d = 8, row = 21;
                    Tensor q = Tensor.randomNormal(arena, 31, 1f, 1, 2, n, d), k = Tensor.randomNormal(arena, 32, 1f, 1, 2, n, d);
                    Tensor v = Tensor.randomNormal(arena, 33, 1f, 1, 2, n, d);
                    for (int c = 0; c < d; c++) q.set(1e20f, 0, 1, row, c);
                    for (int j = 0; j < n; j++) for (int c = 0; c < d; c++) k.set(keySign * Math.abs(k.get(0, 1, j, c)) * 1e20f + keySign, 0, 1, j, c);
                    Attention attention = Attention.dense().on(Backend.named(backend));
                    assertThatThrownBy(() -> attention.forwardWithLse(arena, q, k, v))
                            .as("%s, key sign %s", backend, keySign)
                            .isInstanceOf(ArithmeticException.class)
                            .hasMessageContaining("overflowed float32 at batch 0, head 1, query row " + row);
                }
            }
            try (Arena arena = Arena.ofConfined()) {
                int n = 37, d = 8;
                Tensor q = Tensor.randomNormal(arena, 31, 1f, 1, 1, n, d), k = Tensor.randomNormal(arena, 32, 1f, 1, 1, n, d);
                Tensor v = Tensor.randomNormal(arena, 33, 1f, 1, 1, n, d);
                q.set(Float.NaN, 0, 0, 5, 3);
                for (int c = 0; c < d; c++) q.set(Float.POSITIVE_INFINITY, 0, 0, 6, c);   // garbage in the row's own query: NaN, not an error
                AttentionResult r = Attention.sparse(Pattern.causal()).on(Backend.named(backend)).forwardWithLse(arena, q, k, v);
                assertThat(r.logSumExp().get(0, 0, 5)).as("%s: LSE of a row with a NaN query", backend).isNaN();
                assertThat(r.output().get(0, 0, 5, 0)).as("%s: output of a row with a NaN query", backend).isNaN();
                assertThat(r.logSumExp().get(0, 0, 6)).as("%s: LSE of a row with an infinite query", backend).isNaN();
                assertThat(r.output().get(0, 0, 6, 0)).as("%s: output of a row with an infinite query", backend).isNaN();
                assertThat(r.logSumExp().get(0, 0, 4)).as("%s: LSE of a clean row", backend).isFinite();
                assertThat(r.logSumExp().get(0, 0, 7)).as("%s: LSE of a clean row", backend).isFinite();
            }
        }
    }

    /** φ = elu+1 of inputs near −120 is ~1e-52: fine in float64, 0 in float32 (0/0 before the fix). */
    @Example
    void linearAttentionOfFarNegativeInputsIsItsFloat64Definition() {
        for (boolean causal : new boolean[] {false, true}) {
            for (int side = 0; side < 2; side++) {   // 0: queries far negative, 1: keys far negative
                try (Arena arena = Arena.ofConfined()) {
                    int n = 40, d = 8;
                    Tensor q = Tensor.randomNormal(arena, 11, 1f, 1, 1, n, d), k = Tensor.randomNormal(arena, 12, 1f, 1, 1, n, d);
                    Tensor v = Tensor.randomNormal(arena, 13, 1f, 1, 1, n, d), out = Tensor.zeros(arena, 1, 1, n, d);
                    Tensor far = side == 0 ? q : k;
                    for (int i = 0; i < n; i++) for (int c = 0; c < d; c++) far.set(-120f + far.get(0, 0, i, c), 0, 0, i, c);
                    (causal ? LinearAttention.causal() : LinearAttention.bidirectional()).forward(q, k, v, out);
                    for (int i = 0; i < n; i++) {
                        double[] expected = new double[d];
                        double den = 0;
                        for (int j = 0; j < (causal ? i + 1 : n); j++) {
                            double s = 0;
                            for (int c = 0; c < d; c++) s += elu1(q.get(0, 0, i, c)) * elu1(k.get(0, 0, j, c));
                            den += s;
                            for (int c = 0; c < d; c++) expected[c] += s * v.get(0, 0, j, c);
                        }
                        for (int c = 0; c < d; c++) {
                            assertThat((double) out.get(0, 0, i, c)).as("causal=%s side=%d row %d", causal, side, i).isCloseTo(expected[c] / den, org.assertj.core.data.Offset.offset(1e-4));
                        }
                    }
                }
            }
        }
    }

    static double elu1(double x) { return x > 0 ? x + 1 : Math.exp(x); }

    /** Large-norm queries and keys: every FAVOR+ weight is positive, so each output is a convex combination of value rows. */
    @Example
    void performerOfLargeNormInputsStaysFiniteAndInsideTheValues() {
        for (boolean causal : new boolean[] {false, true}) {
            try (Arena arena = Arena.ofConfined()) {
                int n = 64, d = 16;
                Tensor q = Tensor.randomNormal(arena, 21, 12f, 1, 1, n, d), k = Tensor.randomNormal(arena, 22, 12f, 1, 1, n, d);
                Tensor v = Tensor.randomNormal(arena, 23, 1f, 1, 1, n, d), out = Tensor.zeros(arena, 1, 1, n, d);
                Performer.withFeatures(64).causal(causal).forward(q, k, v, out);
                RobustnessProperties.assertInsideValueHull(out, v, causal);
            }
        }
    }

    /**
     * Keys whose scores the fused kernel's float32 could not hold (a norm of 10^20, an infinity, a
     * NaN): the bidirectional Performer runs the feature path for that (batch, KV head) pair instead
     * of throwing, and the other pair, whose keys are ordinary, stays finite.
     */
    @Example
    void performerWithOverflowingKeysTakesTheFeaturePathForTheirHeadOnly() {
        for (float bad : new float[] {1e20f, Float.POSITIVE_INFINITY, Float.NaN}) {
            for (String backend : new String[] {"scalar", "simd"}) {
                try (Arena arena = Arena.ofConfined()) {
                    int n = 24, d = 8;
                    Tensor q = Tensor.randomNormal(arena, 61, 1f, 1, 4, n, d), k = Tensor.randomNormal(arena, 62, 1f, 1, 2, n, d);
                    Tensor v = Tensor.randomNormal(arena, 63, 1f, 1, 2, n, d), out = Tensor.zeros(arena, 1, 4, n, d);
                    k.set(bad, 0, 0, 5, 3);
                    Performer.withFeatures(16).on(Backend.named(backend)).forward(q, k, v, out);
                    for (int h = 2; h < 4; h++) for (int i = 0; i < n; i++) for (int c = 0; c < d; c++) {
                        assertThat(out.get(0, h, i, c)).as("%s key %s, head %d", backend, bad, h).matches(Float::isFinite);
                    }
                }
            }
        }
    }

    /** Landmarks that are nearly equal make A nearly rank one; 60 float32 iterations used to diverge to NaN. */
    @Example
    void nystromOnNearlyRankDeficientLandmarksStaysFinite() {
        try (Arena arena = Arena.ofConfined()) {
            int n = 64, d = 16;
            Tensor base = Tensor.randomNormal(arena, 31, 1f, 1, 1, 1, d), noise = Tensor.randomNormal(arena, 32, 1e-3f, 1, 1, n, d);
            Tensor q = Tensor.zeros(arena, 1, 1, n, d), k = Tensor.zeros(arena, 1, 1, n, d);
            for (int i = 0; i < n; i++) for (int c = 0; c < d; c++) {
                q.set(base.get(0, 0, 0, c) + noise.get(0, 0, i, c), 0, 0, i, c);
                k.set(base.get(0, 0, 0, c) - noise.get(0, 0, i, c), 0, 0, i, c);
            }
            Tensor v = Tensor.randomNormal(arena, 33, 1f, 1, 1, n, d), out = Tensor.zeros(arena, 1, 1, n, d);
            for (int iterations : new int[] {6, 20, 60, 200}) {
                Nystromformer.withLandmarks(16).iterations(iterations).forward(q, k, v, out);
                // Attention weights are nearly uniform here: the output is close to the mean value row.
                for (int c = 0; c < d; c++) {
                    double mean = 0;
                    for (int j = 0; j < n; j++) mean += v.get(0, 0, j, c) / n;
                    for (int i = 0; i < n; i++) {
                        assertThat((double) out.get(0, 0, i, c)).as("iterations %d", iterations).isCloseTo(mean, org.assertj.core.data.Offset.offset(0.05));
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ aliasing

    @Example
    void outputSharingMemoryWithAnInputIsRejectedByName() {
        try (Arena arena = Arena.ofConfined()) {
            int n = 16, d = 8;
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, n, d), v = Tensor.randomNormal(arena, 3, 1f, 1, 1, n, d);
            List<Variant> variants = List.of(LinearAttention.causal()::forward, Performer.withFeatures(8).causal(true)::forward,
                    Nystromformer.withLandmarks(4)::forward, Linformer.random(n, 4, 1, Linformer.Sharing.KEY_VALUE, 1)::forward,
                    TopKAttention.withK(3)::forward, ChainedAttention.of(List.of(Pattern.causal(), Pattern.causal()))::forward);
            for (Variant variant : variants) {
                for (String name : new String[] {"q", "k", "v"}) {
                    Tensor alias = name.equals("q") ? q : name.equals("k") ? k : v;
                    assertThatThrownBy(() -> variant.forward(q, k, v, alias)).as(name).isInstanceOf(IllegalArgumentException.class)
                            .hasMessageContaining("out shares memory with");
                }
            }
            // A view that overlaps only partly (the last rows of k).
            Tensor big = Tensor.randomNormal(arena, 4, 1f, 1, 1, 2 * n, d), partial = big.slice(2, n / 2, n / 2 + n);
            assertThatThrownBy(() -> LinearAttention.bidirectional().forward(q, big.slice(2, 0, n), v, partial)).hasMessageStartingWith("out shares memory with k");
            // Two heads of one buffer are disjoint: accepted.
            Tensor heads = Tensor.randomNormal(arena, 5, 1f, 1, 2, n, d);
            LinearAttention.bidirectional().forward(heads.slice(1, 0, 1), k, v, heads.slice(1, 1, 2));
            // Explicit sparse: out, and lse as a view of out's memory.
            CsrMatrix all = CsrMatrix.fromLayout(Pattern.causal().compile(n, n, 8, 8));
            assertThatThrownBy(() -> SparseAttention.forward(q, k, v, all, 0.3f, v, null)).hasMessageStartingWith("out shares memory with v");
            Tensor out = Tensor.zeros(arena, 1, 1, n, d);
            assertThatThrownBy(() -> SparseAttention.forward(q, k, v, all, 0.3f, out, out.select(3, 0))).hasMessageStartingWith("lse shares memory with out");
            // Convolution: out = x.
            Tensor x = Tensor.randomNormal(arena, 6, 1f, 1, 1, n, d);
            for (CausalConvolution.Path path : CausalConvolution.Path.values()) {
                assertThatThrownBy(() -> CausalConvolution.of(new float[][] {{0.5f, 0.5f}}, 1).forward(x, x, path)).hasMessageStartingWith("out shares memory with x");
            }
        }
    }

    /** Tensorized attention reads its inputs completely before writing out, so in place is allowed and exact. */
    @Example
    void tensorizedAttentionInPlaceEqualsOutOfPlace() {
        try (Arena arena = Arena.ofConfined()) {
            TensorizedAttention t = TensorizedAttention.random(6, 8, 3, 2, 2, 8, 1);
            Tensor x = Tensor.randomNormal(arena, 9, 1f, 6, 8), separate = Tensor.zeros(arena, 6, 8);
            t.forward(x, x, x, separate);
            t.forward(x, x, x, x);
            assertThat(x.toArray()).containsExactly(separate.toArray());
        }
    }

    // ------------------------------------------------------------ strides and views

    @Example
    void causalConvolutionHonoursTransposedAndStridedViews() {
        CausalConvolution conv = CausalConvolution.of(CausalConvolutionProperties.weights(2, 60, 3), 2);
        for (CausalConvolution.Path path : CausalConvolution.Path.values()) {
            try (Arena arena = Arena.ofConfined()) {
                int n = 90, channels = 6;
                Tensor stored = Tensor.randomNormal(arena, 7, 1f, 1, 1, channels, n), x = stored.transpose(2, 3);   // [1,1,n,channels], inner stride n
                Tensor expected = Tensor.zeros(arena, 1, 1, n, channels);
                conv.forward(x.contiguous(arena), expected, path);
                Tensor outStored = Tensor.zeros(arena, 1, 1, channels, n), out = outStored.transpose(2, 3);
                conv.forward(x, out, path);
                assertThat(out.toArray()).as("%s", path).containsExactly(expected.toArray());
                Tensor wide = Tensor.zeros(arena, 1, 1, n, 2 * channels), everyOther = wide.reshape(1, 1, n, channels, 2).select(4, 1);
                conv.forward(x, everyOther, path);
                assertThat(everyOther.toArray()).as("%s", path).containsExactly(expected.toArray());
            }
        }
    }

    @Example
    void attentionVariantsRejectStridedRowsByName() {
        try (Arena arena = Arena.ofConfined()) {
            int n = 8, d = 8;
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, 1, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, 1, n, d), v = Tensor.randomNormal(arena, 3, 1f, 1, 1, n, d);
            Tensor qT = Tensor.randomNormal(arena, 4, 1f, 1, 1, d, n).transpose(2, 3), out = Tensor.zeros(arena, 1, 1, n, d);
            List<Variant> variants = List.of(LinearAttention.causal()::forward, Performer.withFeatures(8)::forward, Nystromformer.withLandmarks(4)::forward,
                    Linformer.random(n, 4, 1, Linformer.Sharing.KEY_VALUE, 1)::forward, TopKAttention.withK(3)::forward,
                    ChainedAttention.of(List.of(Pattern.causal()))::forward);
            for (Variant variant : variants) {
                assertThatThrownBy(() -> variant.forward(qT, k, v, out)).hasMessageStartingWith("q must have a unit-stride last dimension");
                assertThatThrownBy(() -> variant.forward(q, k, qT, out)).hasMessageContaining("must have a unit-stride last dimension").hasMessageStartingWith("v");
            }
        }
    }

    // ------------------------------------------------------------ memory held after a call

    /**
     * Block sizes far beyond the lengths: per-thread scratch was sized by the requested blocks (one
     * call with 2^20-row blocks left hundreds of MiB held by the pool threads). Now it is sized by
     * the rows and keys a block actually holds, forward and backward, on both backends, and the
     * result is the one the default blocks give.
     */
    @Example
    void hugeBlockSizesAllocateOnlyWhatTheRowsNeed() {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        for (String backend : new String[] {"scalar", "simd"}) {
            try (Arena arena = Arena.ofConfined()) {
                int n = 50, d = 8;
                Tensor q = Tensor.randomNormal(arena, 41, 1f, 1, 2, n, d), k = Tensor.randomNormal(arena, 42, 1f, 1, 2, n, d);
                Tensor v = Tensor.randomNormal(arena, 43, 1f, 1, 2, n, d), dOut = Tensor.randomNormal(arena, 44, 1f, 1, 2, n, d);
                Attention usual = Attention.sparse(Pattern.causal()).on(Backend.named(backend).withThreads(1));
                Attention huge = usual.withBlockSizes(1 << 20, 1 << 20);
                AttentionResult expected = null, got = null;
                long[] allocated = new long[2];
                for (int round = 0; round < 2; round++) {   // round 0 warms up: the JIT and the layout caches allocate
                    for (int which = 0; which < 2; which++) {
                        Attention attention = which == 0 ? usual : huge;
                        long before = threads.getCurrentThreadAllocatedBytes();
                        AttentionResult r = attention.forwardWithLse(arena, q, k, v);
                        attention.backward(arena, q, k, v, r.output(), r.logSumExp(), dOut);
                        allocated[which] = threads.getCurrentThreadAllocatedBytes() - before;
                        if (which == 0) expected = r; else got = r;
                    }
                }
                // Relative to the usual blocks: at an emulated vector width the Vector API allocates per operation.
                assertThat(allocated[1]).as("%s: bytes allocated with 2^20-row blocks vs %d with the usual ones, n = 50", backend, allocated[0])
                        .isLessThan(2 * allocated[0] + (1L << 20));
                float[] want = expected.output().toArray(), have = got.output().toArray();
                for (int i = 0; i < want.length; i++) {
                    assertThat((double) have[i]).as("%s output %d", backend, i).isCloseTo(want[i], org.assertj.core.data.Offset.offset(1e-5));
                }
            }
        }
    }

    // ------------------------------------------------------------ hangs and integer overflow

    /** (taps − 1)·dilation overflowed int and the FFT length doubled past 2^30 to 0, for ever. */
    @Example
    void fftConvolutionWithHugeDilationEndsAndEqualsTheDirectPath() {
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (int dilation : new int[] {(1 << 30) + 5, Integer.MAX_VALUE}) {
                CausalConvolution conv = CausalConvolution.of(new float[][] {{0.5f, 0.25f, 0.125f}}, dilation);
                try (Arena arena = Arena.ofConfined()) {
                    Tensor x = Tensor.randomNormal(arena, 1, 1f, 1, 1, 8, 2), fft = Tensor.zeros(arena, 1, 1, 8, 2), direct = Tensor.zeros(arena, 1, 1, 8, 2);
                    conv.forward(x, fft, CausalConvolution.Path.FFT);
                    conv.forward(x, direct, CausalConvolution.Path.DIRECT);
                    for (int i = 0; i < 16; i++) assertThat(fft.toArray()[i]).isCloseTo(direct.toArray()[i], org.assertj.core.data.Offset.offset(1e-6f));
                }
            }
        });
    }

    @Example
    void sizesThatOverflowIntAreRejectedOrHandled() {
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            try (Arena arena = Arena.ofConfined()) {
                // top-k: qLen·k = 2^16 · 2^15 = 2^31 entries wrapped to a negative array size.
                Tensor q = Tensor.zeros(arena, 1, 1, 1 << 16, 1), k = Tensor.zeros(arena, 1, 1, 1 << 15, 1), out = Tensor.zeros(arena, 1, 1, 1 << 16, 1);
                assertThatThrownBy(() -> TopKAttention.withK(1 << 15).forward(q, k, k, out)).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("qLen·k");
                // Performer with D = 46341: a D×D block of D² > 2^31 doubles wrapped; m rows of D are all it needs.
                int d = 46_341;
                Tensor qd = Tensor.randomNormal(arena, 1, 0.01f, 1, 1, 2, d), kd = Tensor.randomNormal(arena, 2, 0.01f, 1, 1, 2, d);
                Tensor vd = Tensor.randomNormal(arena, 3, 1f, 1, 1, 2, 2), od = Tensor.zeros(arena, 1, 1, 2, 2);
                Performer.withFeatures(4).forward(qd, kd, vd, od);
                for (float o : od.toArray()) assertThat(o).isFinite();
                // m = Integer.MAX_VALUE features: an m×D projection no int-indexed GEMM takes (it ran out of memory).
                Tensor small = Tensor.zeros(arena, 1, 1, 2, 4);
                assertThatThrownBy(() -> Performer.withFeatures(Integer.MAX_VALUE).forward(small, small, small, Tensor.zeros(arena, 1, 1, 2, 4)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("m·headDim");
                // Linformer projections of k·n = 2^60 entries (it ran out of memory).
                assertThatThrownBy(() -> Linformer.random(1 << 30, 1 << 30, 1, Linformer.Sharing.KEY_VALUE, 1))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("k=1073741824 × n=1073741824");
            }
        });
    }

    @Example
    void nullArgumentsAreNamed() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.zeros(arena, 1, 1, 4, 4);
            List<Variant> variants = List.of(LinearAttention.causal()::forward, Performer.withFeatures(4)::forward, Nystromformer.withLandmarks(2)::forward,
                    Linformer.random(4, 2, 1, Linformer.Sharing.KEY_VALUE, 1)::forward, TopKAttention.withK(2)::forward,
                    ChainedAttention.of(List.of(Pattern.causal()))::forward);
            for (Variant variant : variants) {
                assertThatThrownBy(() -> variant.forward(null, t, t, Tensor.zeros(arena, 1, 1, 4, 4))).isInstanceOf(NullPointerException.class).hasMessage("q");
                assertThatThrownBy(() -> variant.forward(t, t, t, null)).isInstanceOf(NullPointerException.class).hasMessage("out");
            }
            assertThatThrownBy(() -> CausalConvolution.of(new float[][] {null}, 1)).isInstanceOf(NullPointerException.class).hasMessage("weights[0]");
            assertThatThrownBy(() -> ChainedAttention.of(Arrays.asList(Pattern.causal(), null))).isInstanceOf(NullPointerException.class).hasMessage("steps[1]");
            assertThatThrownBy(() -> CausalConvolution.of(new float[][] {{1f}}, 1).forward(t, null, CausalConvolution.Path.AUTO)).isInstanceOf(NullPointerException.class).hasMessage("out");
        }
    }

    // ------------------------------------------------------------ silently accepted nonsense

    @Example
    void nonsenseIsRejected() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.zeros(arena, 1, 1, 4, 4), out = Tensor.zeros(arena, 1, 1, 4, 4);
            assertThatThrownBy(() -> CausalConvolution.of(new float[][] {{1f}}, 1).forward(x, out, null)).isInstanceOf(NullPointerException.class).hasMessage("path");
            assertThatThrownBy(() -> CausalConvolution.of(new float[][] {{1f, Float.NaN}}, 1)).hasMessage("weights[0][1]=NaN must be finite");
            assertThatThrownBy(() -> Tensor.randomNormal(arena, 1, Float.NaN, 4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("stddev");
            assertThatThrownBy(() -> Tensor.randomNormal(arena, 1, Float.POSITIVE_INFINITY, 4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("stddev");
            assertThatThrownBy(() -> Tensor.randomNormal(arena, 1, -1f, 4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("stddev");
            assertThatThrownBy(() -> Tensor.randomUniform(arena, 1, Float.NEGATIVE_INFINITY, 0f, 4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("low");
            assertThatThrownBy(() -> Tensor.randomUniform(arena, 1, 0f, Float.NaN, 4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("high");
        }
        // CSR: an offset in the middle beyond the entries (it used to index past colIndices), a null array.
        assertThatThrownBy(() -> new CsrMatrix(2, 4, new int[] {0, 10, 2}, new int[] {0, 1})).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("rowOffsets");
        assertThatThrownBy(() -> new CsrMatrix(2, 4, new int[] {0, 1, 2}, null)).isInstanceOf(NullPointerException.class).hasMessage("colIndices");
        assertThatThrownBy(() -> new CsrMatrix(Integer.MAX_VALUE, 4, new int[] {0}, new int[0])).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("rows+1=2147483648");
        // BSR: element coordinates outside a block (c past blockKV used to wrap inside the 64-bit word).
        BlockLayout layout = Pattern.causal().compile(16, 16, 8, 8);
        BsrMatrix bsr = BsrMatrix.fromLayout(layout);
        assertThatThrownBy(() -> bsr.allows(0, 0, 8)).isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("c=8");
        assertThatThrownBy(() -> bsr.allows(0, 8, 0)).isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("r=8");
        assertThatThrownBy(() -> bsr.allows(bsr.blocks(), 0, 0)).isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("block=" + bsr.blocks());
        assertThatThrownBy(() -> bsr.allows(0, -1, 0)).isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("r=-1");
    }

    // ------------------------------------------------------------ determinism across JIT tiers

    /**
     * A fresh JVM runs explicit sparse and top-k attention 1,500 times: the first calls interpreted,
     * the last ones compiled by C2. Every result must carry the bits of the first. With
     * reduceLanes(ADD) in the row kernels, about all of the compiled calls differed.
     */
    @Example
    void explicitSparseResultsDoNotDependOnTheJitTier() throws IOException, InterruptedException {
        // Only widths the CPU has: wider ones are emulated in plain Java, the same code in every tier.
        String width = System.getProperty("tessera.vectorBitSize");
        if (width != null && Integer.parseInt(width) > jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize()) return;
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "--add-modules=jdk.incubator.vector", "-cp", System.getProperty("java.class.path")));
        if (width != null) command.add("-Dtessera.vectorBitSize=" + width);
        command.addAll(List.of(JitTierProbe.class.getName(), "1500"));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        if (!process.waitFor(240, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("the probe JVM did not finish in 240 s");
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.exitValue()).as(output).isZero();
        assertThat(output).contains("differing=0");
        assertThat(Arrays.stream(output.split("\n")).anyMatch(l -> l.startsWith("first="))).isTrue();
    }
}
