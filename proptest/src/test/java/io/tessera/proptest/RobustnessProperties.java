package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import io.tessera.variant.conv.CausalConvolution;
import io.tessera.variant.factorized.ChainedAttention;
import io.tessera.variant.kernelized.LinearAttention;
import io.tessera.variant.kernelized.Performer;
import io.tessera.variant.lowrank.Linformer;
import io.tessera.variant.lowrank.Nystromformer;
import io.tessera.variant.sparse.TopKAttention;
import java.lang.foreign.Arena;
import java.time.Duration;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Assume;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterTry;

/**
 * The robustness suite of issue 17: hostile values (NaN, ±∞, huge, subnormal), hostile sizes and
 * parameters (0, 1, negative, Integer.MAX_VALUE), each try under a watchdog. The properties take
 * jqwik's default tries: 100 in CI (junit-platform.properties), 2,000 with {@code -Pexhaustive}.
 *
 * <p>The properties: every variant factory and call either works or throws an
 * IllegalArgumentException / NullPointerException / IndexOutOfBoundsException with a message,
 * promptly (never another exception type, never a hang); a non-finite or huge input at position p
 * of a causal variant leaves every earlier output bit-identical; inside their numeric domain the
 * kernelized variants give finite outputs inside the convex hull of the value rows.
 */
class RobustnessProperties {
    /** Each try is cut off after this long: the watchdog for hangs. */
    static final Duration WATCHDOG = Duration.ofSeconds(Integer.getInteger("tessera.robustness.watchdogSeconds", 30));

    // ------------------------------------------------------------ generators

    /** Hostile floats: non-finite, extreme, subnormal, signed zeros, and ordinary values. */
    @Provide
    static Arbitrary<Float> hostileFloats() {
        return Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(3, Arbitraries.of(Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY)),
                net.jqwik.api.Tuple.of(3, Arbitraries.of(Float.MAX_VALUE, -Float.MAX_VALUE, 1e30f, -1e30f, 1e4f, -1e4f, 200f, -200f)),
                net.jqwik.api.Tuple.of(2, Arbitraries.of(Float.MIN_VALUE, -Float.MIN_VALUE, Float.MIN_NORMAL, 1e-30f, 0f, -0f)),
                net.jqwik.api.Tuple.of(2, Arbitraries.floats().between(-10f, 10f)));
    }

    /** Hostile sizes and parameters: the edges of int and the small values next to 0. */
    @Provide
    static Arbitrary<Integer> hostileInts() {
        return Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(4, Arbitraries.of(0, 1, -1, 2, Integer.MAX_VALUE, Integer.MIN_VALUE, Integer.MAX_VALUE / 2 + 1, 1 << 16, (1 << 30) + 1, 46_341)),
                net.jqwik.api.Tuple.of(3, Arbitraries.integers().between(-3, 70)));
    }

    // ------------------------------------------------------------ clear errors, no hangs

    @Property
    void hostileParametersGiveAResultOrAClearError(@ForAll("hostileInts") int a, @ForAll("hostileInts") int b, @ForAll @IntRange(min = 0, max = 7) int variant,
                                                    @ForAll @IntRange(min = 1, max = 40) int n) {
        assertTimeoutPreemptively(WATCHDOG, () -> {
            try (Arena arena = Arena.ofConfined()) {
                Tensor q = Tensor.randomNormal(arena, a, 1f, 1, 1, n, 4), k = Tensor.randomNormal(arena, b, 1f, 1, 1, n, 4);
                Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, 1, n, 4), out = Tensor.zeros(arena, 1, 1, n, 4);
                try {
                    switch (variant) {
                        case 0 -> CausalConvolution.of(new float[][] {new float[Math.floorMod(a, 300) + 1]}, b).forward(q, out, CausalConvolution.Path.FFT);
                        case 1 -> CausalConvolution.of(new float[][] {new float[Math.floorMod(b, 9) + 1]}, a).forward(q, out, CausalConvolution.Path.DIRECT);
                        case 2 -> TopKAttention.withK(a).forward(q, k, v, out);
                        case 3 -> Performer.withFeatures(Math.min(a, 1 << 12)).causal(b % 2 == 0).forward(q, k, v, out);
                        case 4 -> Nystromformer.withLandmarks(a).iterations(Math.min(b, 500)).forward(q, k, v, out);
                        // Linformer.random draws its k·n projection on first use: a legal but huge k·n costs nothing
                        // when the call's length is not n (rejected first), and products past int indexing are
                        // rejected up front.
                        case 5 -> Linformer.random(a, b, 1, Linformer.Sharing.KEY_VALUE, 1).forward(q, k, v, out);
                        case 6 -> ChainedAttention.axial(a, b).forward(q, k, v, out);
                        default -> ChainedAttention.sparseTransformer(a, b % 2 == 0).forward(q, k, v, out);
                    }
                } catch (IllegalArgumentException | NullPointerException | IndexOutOfBoundsException e) {
                    // Thrown by a check of ours (top frame in Tessera, a message), not by the JVM or a segment inside a kernel.
                    if (e instanceof ArrayIndexOutOfBoundsException || (e instanceof NullPointerException && String.valueOf(e.getMessage()).contains("because"))
                            || e.getMessage() == null || e.getMessage().isBlank() || !e.getStackTrace()[0].getClassName().startsWith("io.tessera")) {
                        throw new AssertionError("not a clear error of Tessera's own: " + e, e);
                    }
                } catch (OutOfMemoryError e) {   // a size not rejected up front (and an Error would end the whole run)
                    throw new AssertionError("ran out of memory instead of rejecting a size up front", e);
                }
            }
        });
    }

    // ------------------------------------------------------------ causality under hostile values

    @Property
    void aHostileInputNeverReachesAnEarlierRow(@ForAll("hostileFloats") float poison, @ForAll @IntRange(min = 2, max = 300) int n,
                                               @ForAll @IntRange(min = 0, max = 299) int atRaw, @ForAll @IntRange(min = 0, max = 3) int variant,
                                               @ForAll @IntRange(min = 0, max = 2) int tensor, @ForAll long seed) {
        int at = 1 + atRaw % (n - 1), d = 4;
        assertTimeoutPreemptively(WATCHDOG, () -> {
            try (Arena arena = Arena.ofConfined()) {
                Tensor q = Tensor.randomNormal(arena, seed, 1f, 1, 1, n, d), k = Tensor.randomNormal(arena, seed + 1, 1f, 1, 1, n, d);
                Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 1, n, d);
                Tensor clean = Tensor.zeros(arena, 1, 1, n, d);
                Tensor target = variant >= 2 ? q : tensor == 0 ? q : tensor == 1 ? k : v;
                Runnable run = switch (variant) {
                    case 0 -> () -> Performer.withFeatures(16).causal(true).forward(q, k, v, clean);
                    case 1 -> () -> LinearAttention.causal().forward(q, k, v, clean);
                    case 2 -> () -> CausalConvolution.of(CausalConvolutionProperties.weights(1, 70, seed), 1).forward(q, clean, CausalConvolution.Path.FFT);
                    default -> () -> CausalConvolution.of(CausalConvolutionProperties.weights(1, 5, seed), 2).forward(q, clean, CausalConvolution.Path.DIRECT);
                };
                run.run();
                float[] before = clean.toArray();
                for (int c = 0; c < d; c++) target.set(poison, 0, 0, at, c);
                run.run();   // writes clean again, now from the poisoned input
                float[] after = clean.toArray();
                for (int i = 0; i < at * d; i++) {
                    if (Float.floatToRawIntBits(before[i]) != Float.floatToRawIntBits(after[i])) {
                        throw new AssertionError("variant " + variant + ": output " + (i / d) + "," + (i % d) + " changed from " + before[i] + " to " + after[i]
                                + " when input row " + at + " became " + poison);
                    }
                }
            }
        });
    }

    // ------------------------------------------------------------ numeric domain of the kernelized variants

    /**
     * Inside the domain the README states (finite inputs, ‖x‖ up to ~1e3·D^¼ for FAVOR+, any finite
     * input for elu+1, max|v|·n·m well below 1e29), outputs are finite and, as every weight is
     * positive, inside the per-column range of the attended value rows.
     */
    @Property
    void kernelizedOutputsAreFiniteConvexCombinations(@ForAll @IntRange(min = -3, max = 8) int logScale, @ForAll @IntRange(min = 1, max = 200) int n,
                                                       @ForAll boolean causal, @ForAll boolean performer, @ForAll long seed) {
        float scale = (float) Math.pow(4, logScale);   // 1/64 … 65536
        Assume.that(!performer || scale <= 256);
        assertTimeoutPreemptively(WATCHDOG, () -> {
            try (Arena arena = Arena.ofConfined()) {
                int d = 8;
                Tensor q = Tensor.randomNormal(arena, seed, scale, 1, 1, n, d), k = Tensor.randomNormal(arena, seed + 1, scale, 1, 1, n, d);
                Tensor v = Tensor.randomNormal(arena, seed + 2, 1f, 1, 1, n, d), out = Tensor.zeros(arena, 1, 1, n, d);
                if (performer) Performer.withFeatures(32).causal(causal).forward(q, k, v, out);
                else (causal ? LinearAttention.causal() : LinearAttention.bidirectional()).forward(q, k, v, out);
                assertInsideValueHull(out, v, causal);
            }
        });
    }

    /** Each output column lies within [min, max] of the attended value rows' column (a positive-weight average), up to rounding. */
    static void assertInsideValueHull(Tensor out, Tensor v, boolean causal) {
        int n = (int) v.size(2), dv = (int) v.size(3), qLen = (int) out.size(2);
        for (int c = 0; c < dv; c++) {
            double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
            if (!causal) for (int j = 0; j < n; j++) { lo = Math.min(lo, v.get(0, 0, j, c)); hi = Math.max(hi, v.get(0, 0, j, c)); }
            for (int i = 0; i < qLen; i++) {
                if (causal) { lo = Math.min(lo, v.get(0, 0, i, c)); hi = Math.max(hi, v.get(0, 0, i, c)); }
                float o = out.get(0, 0, i, c);
                double slack = 1e-4 * Math.max(1, Math.max(Math.abs(lo), Math.abs(hi)));
                assertThat(o).as("row %d col %d", i, c).isFinite();
                assertThat((double) o).as("row %d col %d", i, c).isBetween(lo - slack, hi + slack);
            }
        }
    }
}
