package io.tessera.bench.kernel;

import io.tessera.backend.Backend;
import io.tessera.bench.Interleaved;
import io.tessera.bench.peers.SdpaVariantBenchmark;
import io.tessera.bench.peers.SdpaVariantPeer;
import io.tessera.bench.report.MedianTime;
import io.tessera.bench.report.OracleCheck;
import io.tessera.tensor.ElementType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceLoader;

/**
 * The main job's section on what a kernel option costs (issues #14 and #16): the fused forward at
 * n = 4096 (B = 1, H = 8, D = 64) with each built-in score modifier and with half-precision
 * storage, each against the same call without it.
 *
 * <p>Each option is a match of its own ({@link Interleaved}, the states of {@link ScoreModBenchmark}
 * and {@link HalfPrecisionBenchmark}): the plain call and the call with the option take turns, so a
 * round stays within one of the machine's phases (a round of all eight configurations spanned
 * several, and its intervals were ±0.2–0.35); the issues' targets ("≤ 10 % over no modifier", "no
 * slower than fp32") are judged on the median over rounds of the option's call over the plain
 * call's, with its interval. The matches of one pattern run one after the other in one JVM
 * ({@link Interleaved#runMatches}) sharing the plain call's state and warm-up: a JVM per option
 * started the peer's native library, set up and warmed the same plain call five times over.
 *
 * <p>The peer, PyTorch 2.7.1's SDPA through DJL with ALiBi as an additive float mask and with
 * bf16 inputs (as the issues ask), takes its turns in the match of the same option
 * ({@link SdpaVariantBenchmark}) when the {@code peers} build has it; its outputs are checked
 * against the float64 oracle.
 */
public final class KernelOptionsSection {
    private KernelOptionsSection() {}

    static final int N = 4096, HEADS = AttentionBenchmark.HEADS, DIM = 64;

    /** One configuration: the pattern, the modifier by {@link ScoreModBenchmark#mod} name, the storage of q, k, v and out. */
    record Config(String pattern, String mod, ElementType storage) {
        String label() {
            return pattern + (mod.equals("none") ? "" : ", " + mod) + (storage == ElementType.F32 ? "" : ", " + storage);
        }

        boolean baseline() { return mod.equals("none") && storage == ElementType.F32; }
    }

    /**
     * The configurations: with {@code full}, dense and causal with every modifier, both compositions
     * and both half types; quick mode, dense with the two modifiers and the half type the targets
     * name (ALiBi, soft-capping, BF16; a match each, about 6 s of the quick main job apiece).
     */
    static List<Config> configs(boolean full) {
        List<Config> c = new ArrayList<>();
        for (String pattern : full ? List.of("dense", "causal") : List.of("dense")) {
            List<String> mods = full ? List.of("none", "alibi", "softcap", "alibi+softcap") : List.of("none", "alibi", "softcap");
            for (String mod : mods) c.add(new Config(pattern, mod, ElementType.F32));
            c.add(new Config(pattern, "none", ElementType.BF16));
            if (full) c.add(new Config(pattern, "none", ElementType.F16));
        }
        return c;
    }

    /** A Tessera configuration as the benchmark state that runs it: modifiers through {@link ScoreModBenchmark}, storage through {@link HalfPrecisionBenchmark}. */
    static Interleaved.Contender contender(Config c, String backend, int threads) {
        Map<String, String> params = new LinkedHashMap<>();
        params.put("backend", backend);
        params.put("n", String.valueOf(N));
        params.put("headDim", String.valueOf(DIM));
        params.put("threads", String.valueOf(threads));
        params.put("pattern", c.pattern());
        if (c.storage() == ElementType.F32) {
            params.put("mod", c.mod());
            return new Interleaved.Contender(c.label(), ScoreModBenchmark.class, "forward", params);
        }
        if (!c.mod().equals("none")) throw new IllegalArgumentException("a modifier with half-precision storage is not a row of this section: " + c.label());
        params.put("storage", c.storage().name());
        return new Interleaved.Contender(c.label(), HalfPrecisionBenchmark.class, "forward", params);
    }

    /** The SDPA peer's configurations: ALiBi as a float mask and bf16 inputs, dense (with {@code full}: every modifier, causal too). */
    static List<String[]> peerCases(boolean full) {   // pattern, mod, storage
        List<String[]> cases = new ArrayList<>();
        for (String pattern : full ? List.of("dense", "causal") : List.of("dense")) {
            // Quick: the forward section has SDPA without a modifier already.
            for (String mod : full ? List.of("none", "alibi", "softcap", "alibi+softcap") : List.of("alibi")) cases.add(new String[] {pattern, mod, "F32"});
            cases.add(new String[] {pattern, "none", "BF16"});
        }
        return cases;
    }

    /** Measures, writes {@code options.md} into {@code out}, returns the markdown. */
    public static String run(Path out, boolean full, int threads, boolean peers, List<String> notes) throws Exception {
        String backend = Backend.best().name();
        SdpaVariantPeer peer = peers ? availablePeer(notes) : null;
        StringBuilder md = new StringBuilder("## Score modifiers and half-precision storage (fused forward, n = 4096, B = 1, H = 8, D = 64, ")
                .append(threads).append(" threads)\n\n");
        md.append("Each option is one match (`Interleaved`; a pattern's matches one after the other in one JVM, sharing the plain call): the plain fp32 call, the call with the option and, where the peer ")
                .append("runs that option, the peer's, in turns; × is the median over the rounds of (the call with the option / the plain call of the same round), ")
                .append("± its 95 % interval (a match of two or three calls keeps each round inside one of the host's phases). ")
                .append("Targets: a built-in modifier ≤ 1.10× (issue #16); half-precision storage ≤ 1.00× (issue #14).\n\n");
        StringBuilder tessera = new StringBuilder("| engine | configuration | median ms | ± | plain fp32 median ms | × without the option | ± |\n|---|---|---:|---:|---:|---:|---:|\n");
        StringBuilder versus = new StringBuilder();
        Map<String, List<Config>> byPattern = new LinkedHashMap<>();
        for (Config c : configs(full)) byPattern.computeIfAbsent(c.pattern(), p -> new ArrayList<>()).add(c);
        for (List<Config> ofPattern : byPattern.values()) {
            // Contender 0 is the plain call; then each option's call and, where the peer runs that option, the peer's.
            Config plain = ofPattern.stream().filter(Config::baseline).findFirst().orElseThrow();
            List<Interleaved.Contender> contenders = new ArrayList<>(List.of(contender(plain, backend, threads)));
            List<Config> options = new ArrayList<>();
            List<List<Integer>> matches = new ArrayList<>();
            List<String[]> peerOf = new ArrayList<>();
            for (Config option : ofPattern) {
                if (option.baseline()) continue;
                List<Integer> match = new ArrayList<>(List.of(0, contenders.size()));
                contenders.add(contender(option, backend, threads));
                String[] theirs = peer == null ? null : peerCases(full).stream()
                        .filter(c -> new Config(c[0], c[1], ElementType.valueOf(c[2])).label().equals(option.label())).findFirst().orElse(null);
                if (theirs != null) {
                    match.add(contenders.size());
                    contenders.add(peerContender(peer, theirs, threads, option));
                }
                options.add(option);
                matches.add(match);
                peerOf.add(theirs);
            }
            System.out.printf(Locale.ROOT, "%n  %s: %d options in one JVM, each option's calls in turns with the plain call ... ", plain.pattern(), options.size());
            System.out.flush();
            List<Interleaved.MatchResult> results;
            try {
                results = Interleaved.runMatches(contenders, matches, Interleaved.Budget.forCalls(full), List.of());
            } catch (Exception e) {
                notes.add("options section, " + plain.pattern() + ": " + e.getMessage());
                continue;
            }
            for (int i = 0; i < options.size(); i++) {
                Config option = options.get(i);
                Interleaved.MatchResult result = results.get(i);
                if (result.failure() != null) {
                    System.out.printf(Locale.ROOT, "%n    %s failed", option.label());
                    notes.add("options section, " + option.label() + ": " + result.failure());
                    continue;
                }
                Interleaved.Outcome base = result.outcomes().get(0), mine = result.outcomes().get(1);
                System.out.printf(Locale.ROOT, "%n    %s: %.3f× ± %.3f", option.label(), mine.speedup().median(), mine.speedup().halfWidth());
                tessera.append(String.format(Locale.ROOT, "| Tessera %s | %s | %.1f | %.1f | %.1f | %.3f× | %.3f |%n", backend, option.label(), mine.time().median(), mine.time().halfWidth(),
                        base.time().median(), mine.speedup().median(), mine.speedup().halfWidth()));
                if (peerOf.get(i) != null) {
                    Interleaved.Outcome o = result.outcomes().get(2);
                    MedianTime speedup = o.over(mine);
                    versus.append(String.format(Locale.ROOT, "| %s | %.1f | %.1f | %.1f | %.2f× ± %.2f |%n", option.label(), o.time().median(), o.time().halfWidth(),
                            mine.time().median(), speedup.median(), speedup.halfWidth()));
                }
            }
        }
        System.out.println();
        md.append(tessera);
        if (peer != null) {
            List<OracleCheck> checks = SdpaVariantBenchmark.checks(peer, threads);
            io.tessera.bench.Trace.mark("options peer checked");
            long failed = checks.stream().filter(c -> !c.passed()).count();
            // The peer's name tells the path of its last call (the checks ran several): name the engine only.
            String engine = peer.name().contains(" (") ? peer.name().substring(0, peer.name().indexOf(" (")) : peer.name();
            md.append("\n").append(engine).append(" (scaled_dot_product_attention; ALiBi as an additive float mask, bf16 on the inputs rounded by the peer), in the same rounds as Tessera's call with that option; ")
                    .append("its outputs against the float64 oracle: ").append(failed == 0 ? "all " + checks.size() + " within tolerance" : failed + " of " + checks.size() + " FAILED")
                    .append(". Tessera speed-up: the median over rounds of (peer call / Tessera's call of the same configuration).\n\n")
                    .append("| configuration | peer median ms | ± | Tessera median ms | Tessera speed-up |\n|---|---:|---:|---:|---:|\n").append(versus);
            peer.close();
        }
        String markdown = md.toString();
        if (out != null) {
            Files.createDirectories(out);
            Files.writeString(out.resolve("options.md"), markdown);
        }
        return markdown;
    }

    /** The SDPA peer on one of {@link #peerCases} ({pattern, mod, storage}), in the match of Tessera's {@code option}. */
    private static Interleaved.Contender peerContender(SdpaVariantPeer peer, String[] theirs, int threads, Config option) {
        Map<String, String> params = new LinkedHashMap<>();
        params.put("peer", peer.id());
        params.put("n", String.valueOf(N));
        params.put("headDim", String.valueOf(DIM));
        params.put("threads", String.valueOf(threads));
        params.put("pattern", theirs[0]);
        params.put("mod", theirs[1]);
        params.put("storage", theirs[2]);
        return new Interleaved.Contender("peer " + option.label(), SdpaVariantBenchmark.class, "forward", params);
    }

    private static SdpaVariantPeer availablePeer(List<String> notes) {
        for (SdpaVariantPeer p : ServiceLoader.load(SdpaVariantPeer.class)) {
            if (p.unavailableReason() == null) return p;
            notes.add(p.name() + " skipped: " + p.unavailableReason());
        }
        return null;
    }

    /** {@code java ... io.tessera.bench.kernel.KernelOptionsSection [--full] [threads]}: the Tessera rows only, printed. */
    public static void main(String[] args) throws Exception {
        boolean full = Arrays.asList(args).contains("--full");
        int threads = Arrays.stream(args).filter(a -> !a.startsWith("--")).mapToInt(Integer::parseInt).findFirst().orElse(Runtime.getRuntime().availableProcessors());
        System.out.print(run(null, full, threads, false, new ArrayList<>()));
    }
}
