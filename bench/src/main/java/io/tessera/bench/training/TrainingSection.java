package io.tessera.bench.training;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionGradients;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.bench.Interleaved;
import io.tessera.bench.Trace;
import io.tessera.bench.kernel.AttentionBenchmark;
import io.tessera.bench.peers.Peer;
import io.tessera.bench.peers.PeerBenchmark;
import io.tessera.bench.peers.TrainingPeer;
import io.tessera.bench.report.MedianTime;
import io.tessera.bench.report.OracleReference;
import io.tessera.pattern.MaskFunction;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The main job's training section: a training step (forward + backward of attention, B = 1, H = 8,
 * D = 64) for Tessera and every peer that can train, on the same inputs, timed in turns
 * ({@link Interleaved}, the benchmark classes' own setup; every case's match in one JVM); peak extra
 * memory of a steady step from {@link MemoryProbe} in a JVM of its own; gradients of every engine
 * checked against the float64 oracle at a small n. Written to {@code training.md}.
 */
public final class TrainingSection {
    private TrainingSection() {}

    /**
     * One measured training step. {@code extraBytes} −1: not measured. {@code pairedSpeedup}: for a
     * peer, the median over interleaved rounds of its step over Tessera's (null for Tessera).
     */
    public record Row(String engine, String label, String pattern, int n, int threads, double ms, double error, double gflops, long extraBytes,
                      MedianTime pairedSpeedup) {}

    /** One engine's gradients against the oracle. */
    public record GradientCheck(String engine, String pattern, int n, double maxError, double tolerance) {
        public boolean passed() { return maxError <= tolerance; }
    }

    public static TrainingPeer trainingPeer(Peer peer) {
        if (peer instanceof TrainingPeer t) return t;
        throw new IllegalArgumentException(peer.name() + " cannot run a training step");
    }

    static final List<String> PATTERNS = List.of("dense", "causal", "window256", "bigbird");

    /** Measures every case, writes {@code training.md} into {@code out}, returns the markdown. */
    public static String run(Path out, boolean full, int threads, List<Peer> peers, List<String> notes) throws Exception {
        List<TrainingPeer> trainers = new ArrayList<>();
        for (Peer p : peers) if (p instanceof TrainingPeer t) trainers.add(t);
        List<Row> rows = new ArrayList<>();
        // Quick mode keeps the main job within about five minutes: dense and a sliding window at
        // n = 4096 against the fused SDPA peer. The survey's n = 5000 experiment (every pattern, and
        // the matMul/softmax graph, seconds a step with n² memory) runs with --full.
        List<Integer> lengths = full ? List.of(1024, 4096, 5000) : List.of(4096);
        List<String> patterns = full ? PATTERNS : List.of("dense", "window256");
        List<String> engines = new ArrayList<>(List.of("tessera"));
        for (TrainingPeer t : trainers) if (full || !t.id().equals("djl-pytorch")) engines.add(t.id());
        // Tessera and the peers on one (pattern, n) take turns (io.tessera.bench.Interleaved): the
        // host's phases of seconds hit both alike, and each peer's ratio is the median of the rounds'.
        List<String[]> cases = new ArrayList<>();   // in the order of the matches below: by length, then pattern
        for (int n : lengths) for (String pattern : patterns) cases.add(new String[] {pattern, String.valueOf(n)});
        // Peak extra memory (MemoryProbe, a JVM each, ~10 s): measured before anything is timed, all
        // probes at once and beside the gradient checks, since memory does not depend on the clock:
        // dense in quick mode, for the engines' ratio; and the long-sequence claim, a sliding-window
        // step at n = 65,536.
        Map<String, Process> probes = new LinkedHashMap<>();
        for (String[] c : cases) {
            int n = Integer.parseInt(c[1]);
            for (String engine : engines) {
                boolean withMemory = full ? n == 5000 || engine.equals("tessera") && n == 4096 : c[0].equals("dense");
                if (withMemory) probes.put(probeKey(engine, c[0], n), startProbe(engine, c[0], n, threads));
            }
        }
        probes.put(probeKey("tessera", "window256", 65536), startProbe("tessera", "window256", 65536, threads));
        Trace.mark("memory probes started: " + probes.keySet());
        List<GradientCheck> checks;
        try {
            checks = gradientChecks(trainers, threads);
            Trace.mark("gradient checks done");
        } catch (Exception | Error e) {
            for (Process p : probes.values()) if (p != null) p.destroyForcibly();   // no probe outlives a failed section
            throw e;
        }
        Map<String, Long> memory = new LinkedHashMap<>();
        for (var e : probes.entrySet()) {
            memory.put(e.getKey(), probeResult(e.getValue()));
            Trace.mark("memory probe " + e.getKey() + " answered " + memory.get(e.getKey()) + " B");
        }
        // Quick mode: the matches of one length in one JVM (Interleaved.runMatches): the peer's native
        // library loaded and Tessera's kernels compiled once, each case still measured in rounds of its
        // own engines. --full keeps a JVM per case: every engine's state of every pattern (the
        // matrix-product peer's at n = 5000 included) would otherwise be resident at once.
        List<Interleaved.MatchResult> results = new ArrayList<>();
        List<List<String>> jvms = full ? patterns.stream().map(List::of).toList() : List.of(patterns);
        for (int n : lengths) for (List<String> ofJvm : jvms) {
            List<Interleaved.Contender> contenders = new ArrayList<>();
            List<List<Integer>> matches = new ArrayList<>();
            for (String pattern : ofJvm) {
                List<Integer> match = new ArrayList<>();
                for (String engine : engines) {
                    Map<String, String> params = new LinkedHashMap<>();
                    params.put(engine.equals("tessera") ? "backend" : "peer", engine.equals("tessera") ? "simd" : engine);
                    params.put("n", String.valueOf(n));
                    params.put("threads", String.valueOf(threads));
                    params.put("pattern", pattern);
                    match.add(contenders.size());
                    contenders.add(new Interleaved.Contender(engine, engine.equals("tessera") ? TrainingBenchmark.class : PeerTrainingBenchmark.class, "trainingStep", params));
                }
                matches.add(match);
            }
            System.out.printf(Locale.ROOT, "[train] n=%d: %d pattern%s in one JVM, each pattern's %d engines in turns ...%n", n, ofJvm.size(), ofJvm.size() == 1 ? "" : "s", engines.size());
            try {
                results.addAll(Interleaved.runMatches(contenders, matches, Interleaved.Budget.forSteps(full), List.of()));
            } catch (Exception e) {
                results.addAll(java.util.Collections.nCopies(ofJvm.size(), new Interleaved.MatchResult(null, e.getMessage())));
            }
        }
        int total = cases.size();
        for (int i = 0; i < total; i++) {
            String pattern = cases.get(i)[0];
            int n = Integer.parseInt(cases.get(i)[1]);
            System.out.printf(Locale.ROOT, "[train %2d/%d] %-10s n=%-5d threads=%d, %d engines in turns: ", i + 1, total, pattern, n, threads, engines.size());
            if (results.get(i).failure() != null) {
                System.out.println("failed: " + results.get(i).failure());
                notes.add("training step failed: " + pattern + " n=" + n + ": " + results.get(i).failure());
                continue;
            }
            StringBuilder line = new StringBuilder();
            for (Interleaved.Outcome o : results.get(i).outcomes()) {
                String engine = o.contender().label();
                double ms = o.time().median();
                double flops = 3.5 * io.tessera.bench.MainJob.flops(pattern, n, 64);   // forward + 2.5× forward
                Row r = new Row(engine, label(engine, trainers), pattern, n, threads, ms, o.time().halfWidth(), flops / (ms * 1e6),
                        memory.getOrDefault(probeKey(engine, pattern, n), -1L), o.speedup());
                rows.add(r);
                line.append(String.format(Locale.ROOT, "%s%s %.1f ms%s, extra %s", line.isEmpty() ? "" : " | ", engine, ms,
                        o.speedup() == null ? "" : String.format(Locale.ROOT, " (%.2f×)", o.speedup().median()), mib(r.extraBytes())));
            }
            System.out.println(line);
        }
        rows.add(new Row("tessera", "Tessera simd", "window256", 65536, threads, Double.NaN, Double.NaN, Double.NaN,
                memory.get(probeKey("tessera", "window256", 65536)), null));
        String markdown = markdown(rows, checks, threads);
        Files.createDirectories(out);
        Files.writeString(out.resolve("training.md"), markdown);
        return markdown;
    }

    private static String label(String engine, List<TrainingPeer> trainers) {
        if (engine.equals("tessera")) return "Tessera simd";
        return trainers.stream().filter(t -> t.id().equals(engine)).findFirst().map(Peer::name).orElse(engine);
    }

    private static String probeKey(String engine, String pattern, int n) { return engine + "/" + pattern + "/" + n; }

    /** Starts {@link MemoryProbe} in a JVM of its own with this JVM's class path; null if it cannot start. */
    static Process startProbe(String engine, String pattern, int n, int threads) {
        try {
            Path java = Path.of(System.getProperty("java.home"), "bin", "java");
            return new ProcessBuilder(java.toString(), "--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                    "-cp", System.getProperty("java.class.path"), MemoryProbe.class.getName(), engine, pattern, String.valueOf(n), String.valueOf(threads))
                    .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        } catch (Exception e) {
            return null;
        }
    }

    /** The probe's answer in bytes (its last line); −1 if it failed or did not start. */
    static long probeResult(Process p) {
        if (p == null) return -1;
        try {
            String output = new String(p.getInputStream().readAllBytes()).strip();
            if (p.waitFor() != 0) return -1;
            String[] lines = output.split("\n");
            return Long.parseLong(lines[lines.length - 1].strip());
        } catch (Exception e) {
            return -1;
        }
    }

    /** Tessera (both CPU backends) and every training peer against the float64 gradients at n = 384. */
    static List<GradientCheck> gradientChecks(List<TrainingPeer> trainers, int threads) throws Exception {
        List<GradientCheck> checks = new ArrayList<>();
        int n = 384, h = 2, d = 64;
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 11, 1f, 1, h, n, d), k = Tensor.randomNormal(arena, 12, 1f, 1, h, n, d);
            Tensor v = Tensor.randomNormal(arena, 13, 1f, 1, h, n, d), dOut = Tensor.randomNormal(arena, 14, 1f, 1, h, n, d);
            // The float64 and naive float32 gradients of every pattern first, on both cores (about 12 s
            // of the checks' 16 s on one): pure functions of the inputs, and nothing is timed meanwhile
            // but the memory probes' peaks, which do not depend on the clock.
            List<OracleReference<DenseReference.Gradients>> references = PATTERNS.parallelStream().map(p -> {
                MaskFunction mask = AttentionBenchmark.pattern(p).asMask(n, n);
                DenseReference.Gradients oracle = DenseReference.gradients(q, k, v, dOut, mask, Double.NaN);
                DenseReference.Gradients naive = DenseReference.naiveFloat32Gradients(q, k, v, dOut, mask, Double.NaN);
                return new OracleReference<>(oracle, Tolerance.gradient(all(naive), all(oracle)));   // the rule over dq, dk and dv together
            }).toList();
            for (int pi = 0; pi < PATTERNS.size(); pi++) {
                String p = PATTERNS.get(pi);
                DenseReference.Gradients oracle = references.get(pi).oracle();
                double tolerance = references.get(pi).tolerance();
                for (Backend b : Backend.available()) {
                    Attention attn = Attention.sparse(AttentionBenchmark.spec(p)).on(b);
                    AttentionResult r = attn.forwardWithLse(arena, q, k, v);
                    AttentionGradients g = attn.backward(arena, q, k, v, r.output(), r.logSumExp(), dOut);
                    checks.add(new GradientCheck("Tessera " + b.name(), p, n, maxError(new float[][] {g.dq().toArray(), g.dk().toArray(), g.dv().toArray()}, oracle), tolerance));
                }
                for (TrainingPeer t : trainers) {
                    t.prepare(h, n, d, q.toArray(), k.toArray(), v.toArray(), PeerBenchmark.mask(p, n), threads);
                    t.prepareGradient(dOut.toArray());
                    t.step();
                    checks.add(new GradientCheck(t.name(), p, n, maxError(t.gradients(), oracle), tolerance));
                    t.close();
                }
            }
        }
        return checks;
    }

    private static double maxError(float[][] got, DenseReference.Gradients oracle) {
        double[][] ref = {oracle.dq(), oracle.dk(), oracle.dv()};
        double worst = 0;
        for (int t = 0; t < 3; t++) worst = Math.max(worst, Tolerance.maxError(got[t], ref[t]));
        return worst;
    }

    /** dq, dk and dv end to end. */
    private static double[] all(DenseReference.Gradients g) {
        double[] all = new double[g.dq().length + g.dk().length + g.dv().length];
        System.arraycopy(g.dq(), 0, all, 0, g.dq().length);
        System.arraycopy(g.dk(), 0, all, g.dq().length, g.dk().length);
        System.arraycopy(g.dv(), 0, all, g.dq().length + g.dk().length, g.dv().length);
        return all;
    }

    static String mib(long bytes) {
        return bytes < 0 ? "n/a" : String.format(Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }

    static String markdown(List<Row> rows, List<GradientCheck> checks, int threads) {
        StringBuilder sb = new StringBuilder("## Training step (forward + backward)\n\n");
        sb.append("B = 1, H = 8, D = 64, ").append(threads).append(" threads. GFLOP/s credit every engine with the allowed pairs' FLOPs: ")
                .append("forward 4·pairs·D·H, backward 2.5× that. Peak extra memory: resident memory of a steady step beyond its inputs, ")
                .append("outputs and gradients (`MemoryProbe`, a JVM of its own).\n\n");
        sb.append("| engine | pattern | n | step ms (median) | ± | GFLOP/s | peak extra memory |\n|---|---|---:|---:|---:|---:|---:|\n");
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "| %s | %s | %d | %s | %s | %s | %s |%n", r.label(), r.pattern(), r.n(),
                    Double.isNaN(r.ms()) ? "—" : String.format(Locale.ROOT, "%.1f", r.ms()),
                    Double.isNaN(r.error()) ? "—" : String.format(Locale.ROOT, "%.1f", r.error()),
                    Double.isNaN(r.gflops()) ? "—" : String.format(Locale.ROOT, "%.1f", r.gflops()), mib(r.extraBytes())));
        }
        sb.append("\n### Ratios (same run)\n\n| comparison | n | ratio |\n|---|---:|---:|\n");
        for (Row r : rows) {
            if (!r.engine().equals("tessera") || Double.isNaN(r.ms())) continue;
            Row dense = find(rows, "tessera", "dense", r.n());
            if (dense != null && !r.pattern().equals("dense")) {
                sb.append(String.format(Locale.ROOT, "| Tessera %s / Tessera dense (time) | %d | %.2f |%n", r.pattern(), r.n(), r.ms() / dense.ms()));
            }
            for (Row peer : rows) {
                if (peer.engine().equals("tessera") || peer.n() != r.n() || !peer.pattern().equals(r.pattern()) || Double.isNaN(peer.ms())) continue;
                // Paired: the median of the interleaved rounds' ratios, with its 95 % interval.
                sb.append(peer.pairedSpeedup() == null
                        ? String.format(Locale.ROOT, "| %s %s / Tessera (time: >1 means Tessera is faster) | %d | %.2f |%n", peer.label(), r.pattern(), r.n(), peer.ms() / r.ms())
                        : String.format(Locale.ROOT, "| %s %s / Tessera (time, median of %d interleaved rounds: >1 means Tessera is faster) | %d | %.2f ± %.2f |%n",
                                peer.label(), r.pattern(), peer.pairedSpeedup().calls(), r.n(), peer.pairedSpeedup().median(), peer.pairedSpeedup().halfWidth()));
                if (r.extraBytes() >= 0 && peer.extraBytes() > 0) {
                    sb.append(String.format(Locale.ROOT, "| Tessera %s / %s %s (peak extra memory) | %d | %.3f |%n", r.pattern(), peer.label(), peer.pattern(), r.n(),
                            (double) r.extraBytes() / peer.extraBytes()));
                }
            }
        }
        sb.append("\n### Gradients against the float64 oracle (n = 384, H = 2)\n\n| engine | pattern | max error | tolerance | |\n|---|---|---:|---:|---|\n");
        for (GradientCheck c : checks) {
            sb.append(String.format(Locale.ROOT, "| %s | %s | %.2e | %.2e | %s |%n", c.engine(), c.pattern(), c.maxError(), c.tolerance(), c.passed() ? "ok" : "**FAILED**"));
        }
        return sb.toString();
    }

    private static Row find(List<Row> rows, String engine, String pattern, int n) {
        for (Row r : rows) if (r.engine().equals(engine) && r.pattern().equals(pattern) && r.n() == n && !Double.isNaN(r.ms())) return r;
        return null;
    }
}
