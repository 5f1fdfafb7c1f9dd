package io.tessera.bench.peers;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.bench.kernel.AttentionBenchmark;
import io.tessera.bench.kernel.ScoreModBenchmark;
import io.tessera.bench.report.OracleCheck;
import io.tessera.bench.report.OracleReference;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.ScoreMod;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * PyTorch beside {@link ScoreModBenchmark} (issue #16: ALiBi as a float mask, soft-capping spelled
 * out) and {@code HalfPrecisionBenchmark} (issue #14: SDPA in bf16), on the same inputs (same seeds,
 * B = 1, H = 8), through an {@link SdpaVariantPeer} (build the bench with {@code -Ppeers}).
 * {@code storage} BF16 runs only with {@code mod} none. {@link #main} prints the oracle checks.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
public class SdpaVariantBenchmark {
    @Param({"djl-sdpa-variant"})
    public String peer;
    @Param({"4096"})
    public int n;
    @Param({"64"})
    public int headDim;
    @Param({"2"})
    public int threads;
    @Param({"dense", "causal"})
    public String pattern;
    @Param({"none", "alibi", "softcap", "alibi+softcap"})
    public String mod;
    @Param({"F32"})
    public String storage;

    /** Soft-capping's cap, as in {@link ScoreModBenchmark} (Gemma 2's). */
    public static final float CAP = 50f;

    private SdpaVariantPeer impl;

    public static SdpaVariantPeer find(String id) {
        for (SdpaVariantPeer p : ServiceLoader.load(SdpaVariantPeer.class)) if (p.id().equals(id)) return p;
        throw new IllegalArgumentException("no SDPA variant peer '" + id + "' on the class path (build bench with -Ppeers)");
    }

    static float[] slopes(String mod, int heads) { return mod.contains("alibi") ? ScoreMod.alibiSlopes(heads) : null; }

    static float cap(String mod) { return mod.contains("softcap") ? CAP : Float.NaN; }

    static boolean bf16(String storage) {
        return switch (storage) {
            case "F32" -> false;
            case "BF16" -> true;
            default -> throw new IllegalArgumentException("storage must be F32 or BF16, got '" + storage + "'");
        };
    }

    @Setup(Level.Trial)
    public void setup() throws Exception {
        impl = find(peer);
        if (impl.unavailableReason() != null) throw new IllegalStateException(impl.unavailableReason());
        int h = AttentionBenchmark.HEADS;
        try (Arena arena = Arena.ofConfined()) {
            impl.prepare(h, n, headDim,
                    Tensor.randomNormal(arena, 1, 1f, 1, h, n, headDim).toArray(),
                    Tensor.randomNormal(arena, 2, 1f, 1, h, n, headDim).toArray(),
                    Tensor.randomNormal(arena, 3, 1f, 1, h, n, headDim).toArray(),
                    PeerBenchmark.mask(pattern, n), slopes(mod, h), cap(mod), bf16(storage), threads);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        impl.close();
    }

    @Benchmark
    public SdpaVariantPeer forward() throws Exception {
        impl.run();
        return impl;
    }

    /**
     * The peer and Tessera's simd backend on a small input (n = 384, H = 2, D = 64) against the
     * float64 oracle with the same modifier, dense and causal; bf16 on the inputs rounded to
     * bfloat16 (both get the same values), with the EXACT contract plus one rounding of the output
     * to bf16 ({@link Tolerance#stored}), the bound Tessera's bf16 output meets.
     */
    public static List<OracleCheck> checks(SdpaVariantPeer peer, int threads) throws Exception {
        List<OracleCheck> checks = new ArrayList<>();
        int n = 384, h = 2, d = 64;
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 11, 1f, 1, h, n, d), k = Tensor.randomNormal(arena, 12, 1f, 1, h, n, d), v = Tensor.randomNormal(arena, 13, 1f, 1, h, n, d);
            double scale = 1 / Math.sqrt(d);
            List<String> patterns = List.of("dense", "causal"), mods = List.of("alibi", "softcap", "alibi+softcap");
            Tensor qb = q.to(arena, ElementType.BF16), kb = k.to(arena, ElementType.BF16), vb = v.to(arena, ElementType.BF16);
            Tensor qr = qb.to(arena, ElementType.F32), kr = kb.to(arena, ElementType.F32), vr = vb.to(arena, ElementType.F32);
            // The float64 oracles of every (pattern, modifier or bf16) first, on both cores (nothing is
            // timed meanwhile): pure functions of the inputs, most of the checks' time.
            List<String[]> cases = new ArrayList<>();   // pattern, modifier or "bf16"
            for (String p : patterns) {
                for (String mod : mods) cases.add(new String[] {p, mod});
                cases.add(new String[] {p, "bf16"});
            }
            Map<String, OracleReference<DenseReference.Result>> references = new java.util.concurrent.ConcurrentHashMap<>();   // by "pattern/case"
            cases.parallelStream().forEach(c -> {
                MaskFunction mask = AttentionBenchmark.pattern(c[0]).asMask(n, n);
                if (c[1].equals("bf16")) {
                    DenseReference.Result oracle = DenseReference.attention(qr, kr, vr, mask, Double.NaN);
                    double exact = Tolerance.exact(qr, kr, vr, mask, Double.NaN, oracle).output();
                    double tolerance = 0;
                    for (double x : oracle.output()) tolerance = Math.max(tolerance, Tolerance.stored(ElementType.BF16, exact, x));
                    references.put(c[0] + "/" + c[1], new OracleReference<>(oracle, tolerance));
                } else {
                    ScoreMod m = ScoreModBenchmark.mod(c[1], h);
                    DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale, m);
                    references.put(c[0] + "/" + c[1], new OracleReference<>(oracle, Tolerance.exact(q, k, v, scale, DenseReference.naiveFloat32(q, k, v, mask, scale, m), oracle).output()));
                }
            });
            for (String p : patterns) {
                for (String mod : mods) {
                    ScoreMod m = ScoreModBenchmark.mod(mod, h);
                    DenseReference.Result oracle = references.get(p + "/" + mod).oracle();
                    double tolerance = references.get(p + "/" + mod).tolerance();
                    Tensor mine = Attention.sparse(AttentionBenchmark.spec(p)).on(Backend.named("simd")).withScoreMod(m).forward(arena, q, k, v);
                    checks.add(new OracleCheck("Tessera simd, " + mod, p, n, Tolerance.maxError(mine, oracle.output()), tolerance));
                    peer.prepare(h, n, d, q.toArray(), k.toArray(), v.toArray(), PeerBenchmark.mask(p, n), slopes(mod, h), cap(mod), false, threads);
                    peer.run();
                    checks.add(new OracleCheck(peer.name() + ", " + mod, p, n, Tolerance.maxError(peer.output(), oracle.output()), tolerance));
                }
                DenseReference.Result oracle = references.get(p + "/bf16").oracle();
                double tolerance = references.get(p + "/bf16").tolerance();
                Tensor out = Tensor.zeros(arena, ElementType.BF16, 1, h, n, d);
                Attention.sparse(AttentionBenchmark.spec(p)).on(Backend.named("simd")).forward(qb, kb, vb, out);
                checks.add(new OracleCheck("Tessera simd, bf16", p, n, Tolerance.maxError(out.to(arena, ElementType.F32), oracle.output()), tolerance));
                peer.prepare(h, n, d, qr.toArray(), kr.toArray(), vr.toArray(), PeerBenchmark.mask(p, n), null, Float.NaN, true, threads);
                peer.run();
                checks.add(new OracleCheck(peer.name(), p, n, Tolerance.maxError(peer.output(), oracle.output()), tolerance));
            }
        }
        return checks;
    }

    /** Prints {@link #checks} for the peer named by the first argument (default djl-sdpa-variant). */
    public static void main(String[] args) throws Exception {
        try (SdpaVariantPeer p = find(args.length > 0 ? args[0] : "djl-sdpa-variant")) {
            if (p.unavailableReason() != null) throw new IllegalStateException(p.unavailableReason());
            for (OracleCheck c : checks(p, 2)) {
                System.out.printf(Locale.ROOT, "%-7s %-75s max |error| %.3e  tolerance %.3e  %s%n", c.pattern(), c.engineLabel(), c.maxAbsError(), c.tolerance(), c.passed() ? "ok" : "EXCEEDS");
            }
        }
    }
}
