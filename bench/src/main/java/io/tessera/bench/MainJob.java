package io.tessera.bench;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionResult;
import io.tessera.bench.kernel.AttentionBenchmark;
import io.tessera.bench.training.TrainingSection;
import io.tessera.bench.peers.Peer;
import io.tessera.bench.peers.PeerBenchmark;
import io.tessera.bench.peers.PythonTorchPeer;
import io.tessera.bench.report.Compare;
import io.tessera.bench.report.MachinePeak;
import io.tessera.bench.report.Measurement;
import io.tessera.bench.report.MedianTime;
import io.tessera.bench.report.OracleCheck;
import io.tessera.bench.report.OracleReference;
import io.tessera.bench.report.Report;
import io.tessera.backend.Backend;
import io.tessera.layout.BlockLayout;
import io.tessera.bench.report.LayoutImages;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceLoader;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.profile.GCProfiler;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;

/**
 * The main job ({@code ./tessera bench}): Tessera's backends and the available peers on the same
 * shapes in one run, every output checked against the float64 oracle, then a report with tables
 * and charts. Quick by default (a representative subset with the fused peers and the training,
 * decode, variants, content and options sections: about five minutes on two cores); {@code --full} runs the whole
 * matrix, every peer and the survey's n = 5000 training experiment.
 */
public final class MainJob {
    private MainJob() {}

    static final String USAGE = """
            usage: ./tessera bench [--quick | --full] [--out DIR] [--no-peers] [--threads N] [--only REGEX]
                                   [--no-training | --training-only]
                   ./tessera bench --compare A B
              --quick          representative subset (default): ~5 minutes on 2 cores with the fused peers and the
                               training, decode, variants, content and options sections
              --full           every pattern at n = 512 … 16384, 1 and all threads, D = 64 and 128
              --out DIR        report directory (default: bench-report)
              --no-peers       measure Tessera only
              --threads N      threads for Tessera and peers (default: all processors)
              --only REGEX     only the forward cases whose progress-line name matches, e.g.
                               'simd dense n=1024' (the training section is then skipped)
              --no-training    skip the training-step section (forward + backward)
              --training-only  run only the training-step section
              --compare A B    compare two reports (directories or results.csv files), flagging
                               changes beyond JMH's measured error; runs nothing
            Any JMH option works directly on bench/target/benchmarks.jar (java -jar … -h).""";

    /** Parsed command line; {@code only} is null for every case, {@code compare} null unless comparing. */
    public record Options(boolean full, Path out, boolean peers, int threads, boolean forward, boolean training,
                          java.util.regex.Pattern only, List<Path> compare) {}

    public static Options parse(String[] args) {
        boolean full = false, peers = true, forward = true, training = true;
        Path out = Path.of("bench-report");
        int threads = Runtime.getRuntime().availableProcessors();
        java.util.regex.Pattern only = null;
        List<Path> compare = null;
        for (int a = 0; a < args.length; a++) {
            switch (args[a]) {
                case "--quick" -> full = false;
                case "--full" -> full = true;
                case "--no-peers" -> peers = false;
                case "--no-training" -> training = false;
                case "--training-only" -> forward = false;
                case "--out" -> out = Path.of(value(args, ++a, "--out"));
                case "--only" -> {
                    String regex = value(args, ++a, "--only");
                    try {
                        only = java.util.regex.Pattern.compile(regex);
                    } catch (java.util.regex.PatternSyntaxException e) {
                        throw new IllegalArgumentException("--only '" + regex + "' is not a regular expression: " + e.getDescription());
                    }
                }
                case "--compare" -> compare = List.of(Path.of(value(args, ++a, "--compare")), Path.of(value(args, ++a, "--compare (second report)")));
                case "--threads" -> {
                    threads = Integer.parseInt(value(args, ++a, "--threads"));
                    if (threads < 1) throw new IllegalArgumentException("--threads must be >= 1, got " + threads);
                }
                case "-h", "--help" -> {
                    System.out.println(USAGE);
                    System.exit(0);
                }
                default -> throw new IllegalArgumentException("unknown option '" + args[a] + "'\n" + USAGE);
            }
        }
        return new Options(full, out, peers, threads, forward, training, only, compare);
    }

    private static String value(String[] args, int a, String option) {
        if (a >= args.length) throw new IllegalArgumentException(option + " needs a value\n" + USAGE);
        return args[a];
    }

    /** One configuration to measure. */
    record Case(String engine, String backend, String pattern, int n, int headDim, int threads) {
        /** The name on the progress line, which {@code --only} matches. */
        String name() {
            return String.format(Locale.ROOT, "%s %s n=%d D=%d %dT", engine.equals("tessera") ? "tessera " + backend : engine, pattern, n, headDim, threads);
        }
    }

    public static void main(String[] args) throws Exception {
        Options options;
        try {
            options = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("tessera bench: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (options.compare() != null) {
            Path a = options.compare().get(0), b = options.compare().get(1);
            System.out.print(Compare.table(a.toString(), b.toString(), Compare.compare(Compare.read(a), Compare.read(b))));
            return;
        }
        Quiet.install();
        Instant start = Instant.now();
        List<String> notes = new ArrayList<>();
        // Debian's PyTorch is looked for (a python process importing torch, ~2 s) while the JVM peers load: neither is timed.
        List<String> torchNotes = new ArrayList<>();
        java.util.concurrent.CompletableFuture<PythonTorchPeer> torchSearch = options.peers()
                ? java.util.concurrent.CompletableFuture.supplyAsync(() -> PythonTorchPeer.detect(torchNotes)) : java.util.concurrent.CompletableFuture.completedFuture(null);
        List<Peer> peers = options.peers() ? availablePeers(notes) : List.of();
        if (!options.peers()) notes.add("peers skipped (--no-peers)");
        PythonTorchPeer torch = torchSearch.join();
        notes.addAll(torchNotes);
        Trace.mark("peers found");

        // The machine's peak first, once, while nothing else of this run is warm: every section divides by it.
        for (int t : options.threads() > 1 ? List.of(1, options.threads()) : List.of(options.threads())) {
            System.out.println("machine: " + MachinePeak.measuredOnce(t));
        }
        Trace.mark("machine peak measured");
        Sections sections = new Sections(notes);
        boolean everySection = options.only() == null;
        if (options.training() && everySection) {
            sections.run("training", null, () -> TrainingSection.run(options.out(), options.full(), options.threads(), peers, notes));
        } else if (options.training()) {
            notes.add("training section skipped: --only selects forward cases");
        }
        if (options.forward() && everySection) {
            // the decode step (issues #13, #14): a few JMH rows with their own progress lines
            sections.run("decode", null, () -> io.tessera.bench.decode.DecodeSection.run(options.out(), options.full(), options.threads(), options.peers(), notes));
            // timed in this process: the linear-time variants (#15), content-based sparsity (#19), score modifiers and half precision (#14, #16)
            sections.run("variants", "linear-time variants vs dense", () -> io.tessera.bench.variants.VariantsSection.run(options.out(), options.full(), options.threads()));
            sections.run("content", "content-based sparsity (LSH, routing) vs dense", () -> io.tessera.bench.content.ContentSection.run(options.out(), options.full(), options.threads()));
            sections.run("options", "score modifiers and half-precision storage",
                    () -> io.tessera.bench.kernel.KernelOptionsSection.run(options.out(), options.full(), options.threads(), options.peers(), notes));
        }
        if (!options.forward()) {
            for (Peer p : peers) p.close();
            return;
        }
        List<Case> cases = select(matrix(options, peers), options.only());
        List<PythonTorchPeer.TorchCase> torchCases = torch == null ? List.of() : selectTorch(torchCases(options), options.only());
        if (cases.isEmpty() && torchCases.isEmpty()) {
            System.err.println("tessera bench: --only '" + options.only() + "' matches no case; names look like '" + matrix(options, peers).getFirst().name() + "'");
            System.exit(2);
        }
        if (options.only() != null) notes.add("only the cases matching --only '" + options.only() + "'");
        Map<Integer, MachinePeak> peaks = new java.util.TreeMap<>();
        for (int t : cases.stream().map(Case::threads).distinct().sorted().toList()) peaks.put(t, MachinePeak.measuredOnce(t));
        System.out.print("checking every engine against the float64 oracle ... ");
        System.out.flush();
        List<OracleCheck> checks = oracleChecks(peers, options.threads());
        Trace.mark("forward oracle checks done");
        System.out.println(checks.stream().allMatch(OracleCheck::passed) ? "all " + checks.size() + " within tolerance"
                : checks.stream().filter(c -> !c.passed()).count() + " of " + checks.size() + " FAILED (see the report)");
        Instant forwardStart = Instant.now();
        List<Measurement> results = new ArrayList<>();
        Map<Measurement, MedianTime> paired = new LinkedHashMap<>();
        List<List<Case>> jobs = jobs(cases);
        Progress progress = new Progress(jobs.size(), plannedSeconds(options.full()));
        for (List<List<Case>> unit : units(jobs, options.full())) {
            if (unit.size() == 1 && unit.getFirst().size() == 1) {
                Case only = unit.getFirst().getFirst();
                System.out.print(progress.start(only.name()));
                System.out.flush();
                try {
                    Measurement m = measure(only, options.full(), peers);
                    results.add(m);
                    MachinePeak peak = peaks.get(only.threads());
                    System.out.println(progress.done(String.format(Locale.ROOT, "%9.2f ms ±%5.2f  %6.1f GFLOP/s %s", m.msPerCall(), m.msError(), m.gflops(),
                            peak == null ? "" : String.format(Locale.ROOT, "%5.1f%% of peak", 100 * m.gflops() / peak.fmaGflops()))));
                } catch (Exception e) {
                    System.out.println(progress.done("failed"));
                    failed(only, describe(e), notes);
                }
                continue;
            }
            System.out.printf(Locale.ROOT, "%d cases of %d thread%s in one JVM, each case's engines in turns ...%n", unit.size(), unit.getFirst().getFirst().threads(),
                    unit.getFirst().getFirst().threads() == 1 ? "" : "s");
            List<Interleaved.MatchResult> matches;
            try {
                matches = measureInTurns(unit, options.full(), peers);
            } catch (Exception e) {
                matches = java.util.Collections.nCopies(unit.size(), new Interleaved.MatchResult(null, describe(e)));
            }
            for (int j = 0; j < unit.size(); j++) {
                List<Case> job = unit.get(j);
                Case first = job.getFirst();
                System.out.print(progress.start(String.format(Locale.ROOT, "%s n=%d D=%d %dT: %s", first.pattern(), first.n(), first.headDim(), first.threads(),
                        job.size() == 1 ? "alone" : job.size() + " engines in turns")));
                if (matches.get(j).failure() != null) {
                    System.out.println(progress.done("failed"));
                    for (Case c : job) failed(c, matches.get(j).failure(), notes);
                    continue;
                }
                StringBuilder line = new StringBuilder();
                for (Interleaved.Outcome o : matches.get(j).outcomes()) {
                    Case c = job.get(Integer.parseInt(o.contender().label().substring(o.contender().label().indexOf('/') + 1)));
                    double ms = o.time().median();
                    Measurement m = new Measurement(c.engine(), label(c, peers), c.pattern(), c.n(), c.threads(), ms, o.time().halfWidth(),
                            flops(c.pattern(), c.n(), c.headDim()) / (ms * 1e6), o.heapBytesPerCall());
                    results.add(m);
                    if (o.speedup() != null) paired.put(m, o.speedup());
                    line.append(String.format(Locale.ROOT, "%s%s %.2f ms", line.isEmpty() ? "" : " | ", shortName(c), ms))
                            .append(o.speedup() == null ? "" : String.format(Locale.ROOT, " (%.2f×)", o.speedup().median()));
                }
                System.out.println(progress.done(line.toString()));
            }
        }
        if (!torchCases.isEmpty()) {
            for (Measurement m : torch.measure(torchCases, notes, checks)) {
                results.add(m);
                System.out.printf(Locale.ROOT, "[torch ] %-10s n=%-5d threads=%d %9.2f ms  %6.1f GFLOP/s%n", m.pattern(), m.n(), m.threads(), m.msPerCall(), m.gflops());
            }
        }
        sections.seconds.put("forward", Duration.between(forwardStart, Instant.now()).toSeconds());
        Trace.mark("forward measured (Debian's PyTorch included)");
        Map<String, Path> pictures = layoutPictures(options.out(), patterns(options.full()));
        Trace.mark("layout pictures drawn");
        Map<String, String> environment = environment(options, start);
        environment.put("time per section", sections.seconds.entrySet().stream().map(e -> e.getKey() + " " + e.getValue() + " s").collect(java.util.stream.Collectors.joining(", "))
                + ", whole run " + Duration.between(start, Instant.now()).toSeconds() + " s");
        Report report = new Report(results, checks, notes, environment, pictures, peaks);
        sections.markdown.forEach(report::withSection);
        paired.forEach(report::withPairedSpeedup);
        report.write(options.out());
        Trace.mark("report written");
        System.out.println();
        System.out.println(report.resultsTable());
        if (!report.ratios().isEmpty()) System.out.println(report.ratioTable());
        System.out.printf("report: %s (report.md, index.html) in %d s (%s)%n", options.out().toAbsolutePath().resolve("index.html"), Duration.between(start, Instant.now()).toSeconds(),
                environment.get("time per section"));
        for (Peer p : peers) p.close();
    }

    /** The sections before the forward matrix: each one's Markdown for the report and its time; a failed one is a note. */
    private static final class Sections {
        final Map<String, Long> seconds = new LinkedHashMap<>();
        final List<String> markdown = new ArrayList<>();
        private final List<String> notes;

        Sections(List<String> notes) { this.notes = notes; }

        /** Runs a section; {@code progress} is its one-line label, or null for a section that prints its own progress. */
        void run(String name, String progress, java.util.concurrent.Callable<String> section) {
            Instant t0 = Instant.now();
            Trace.mark("section " + name + " starts");
            if (progress != null) {
                System.out.print(progress + " ... ");
                System.out.flush();
            }
            try {
                String md = section.call();
                System.out.println(progress != null ? "done" : "");
                System.out.println(md);
                markdown.add(md);
            } catch (Exception e) {
                System.out.println("failed");
                notes.add(name + " section failed: " + describe(e));
            }
            seconds.put(name, Duration.between(t0, Instant.now()).toSeconds());
            Trace.mark("section " + name + " ended");
        }
    }

    static List<Case> select(List<Case> cases, java.util.regex.Pattern only) {
        return only == null ? cases : cases.stream().filter(c -> only.matcher(c.name()).find()).toList();
    }

    static List<PythonTorchPeer.TorchCase> selectTorch(List<PythonTorchPeer.TorchCase> cases, java.util.regex.Pattern only) {
        if (only == null) return cases;
        return cases.stream().filter(c -> only.matcher(String.format(Locale.ROOT, "torch %s n=%d D=%d %dT", c.pattern(), c.n(), c.headDim(), c.threads())).find()).toList();
    }

    /**
     * The JMH schedule of the main job's forked cases (the forward section's cases of one engine): one fork, quick
     * 2×1 s warm-up and 3×1 s measurement, full 3×1 s and 5×2 s ({@link #plannedSeconds} and the
     * report's "mode" line say the same), in sample mode: every call is timed, and the report gives
     * their median ({@link MedianTime}).
     */
    public static ChainedOptionsBuilder schedule(ChainedOptionsBuilder jmh, boolean full) {
        return jmh.mode(Mode.SampleTime).forks(1).warmupIterations(full ? 3 : 2).measurementIterations(full ? 5 : 3)
                .warmupTime(TimeValue.seconds(1)).measurementTime(TimeValue.seconds(full ? 2 : 1)).verbosity(VerboseMode.SILENT);
    }

    /** Seconds a case is planned to take: JMH's warm-up and measurement time plus about 2 s to start and set up the fork. */
    static double plannedSeconds(boolean full) {
        return full ? 3 * 1 + 5 * 2 + 2 : 2 * 1 + 3 * 1 + 2;
    }

    private static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder(String.valueOf(e.getMessage()));
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) sb.append(" <- ").append(c);
        return sb.toString();
    }

    static List<String> patterns(boolean full) {
        return full ? List.of("dense", "causal", "window256", "dilated", "bigbird", "longformer", "strided", "fixed")
                : List.of("dense", "causal", "window256", "bigbird");
    }

    static List<Case> matrix(Options o, List<Peer> peers) {
        List<Case> cases = new ArrayList<>();
        int all = o.threads();
        if (o.full()) {
            List<Integer> lengths = List.of(512, 1024, 2048, 4096, 8192, 16384);
            List<Integer> threadCounts = all > 1 ? List.of(1, all) : List.of(all);
            for (int d : List.of(64, 128)) for (int t : threadCounts) for (int n : lengths) for (String p : patterns(true)) {
                cases.add(new Case("tessera", "simd", p, n, d, t));
            }
            addTornado(cases, List.of(1024, 4096), all);
            cases.add(new Case("tessera", "scalar", "dense", 1024, 64, 1));
            for (Peer peer : peers) for (int t : threadCounts) for (int n : lengths) for (String p : patterns(true)) {
                if (n <= 8192) cases.add(new Case(peer.id(), "", p, n, 64, t));
            }
            return cases;
        }
        // Quick mode aims at five minutes on two cores: every pattern at n = 4096, where sparsity
        // pays; dense at 1024 and 4096 on all threads and on one (the kernel issue's targets). The
        // scalar backend (what the Vector API buys) runs with --full.
        for (String p : patterns(false)) cases.add(new Case("tessera", "simd", p, 4096, 64, all));
        cases.add(new Case("tessera", "simd", "dense", 1024, 64, all));
        if (all > 1) {
            cases.add(new Case("tessera", "simd", "dense", 1024, 64, 1));
            cases.add(new Case("tessera", "simd", "dense", 4096, 64, 1));
        }
        addTornado(cases, List.of(1024, 4096), all);
        // The fused peers (the strongest; the matrix-product ones run with --full) on every dense
        // case, and each on one masked pattern at n = 4096: ONNX Runtime on the window (a mask costs
        // it what dense costs), PyTorch's SDPA on causal (its own is_causal kernel, the strongest
        // causal peer); both with --full. On 1 thread at n = 4096 only ONNX Runtime (the #15 target's peer).
        for (Peer peer : peers) {
            if (!peer.fused()) continue;
            String masked = peer.id().startsWith("onnx") ? "window256" : "causal";
            for (Case c : List.copyOf(cases)) {
                boolean dense = c.pattern().equals("dense"), oneThreadLong = c.threads() == 1 && c.n() == 4096 && all > 1;
                if (c.engine().equals("tessera") && c.backend().equals("simd") && (dense || c.pattern().equals(masked))
                        && (!oneThreadLong || peer.id().startsWith("onnx"))) {
                    cases.add(new Case(peer.id(), "", c.pattern(), c.n(), c.headDim(), c.threads()));
                }
            }
        }
        return cases;
    }

    /** The TornadoVM device, when an SDK is present: dense and one sparse pattern (the issue's pair). */
    private static void addTornado(List<Case> cases, List<Integer> lengths, int threads) {
        if (tornadoArgfile() == null) return;
        for (int n : lengths) for (String p : List.of("dense", "window256")) cases.add(new Case("tessera", "tornado", p, n, 64, threads));
    }

    static List<PythonTorchPeer.TorchCase> torchCases(Options o) {
        List<PythonTorchPeer.TorchCase> cases = new ArrayList<>();
        if (!o.full()) {   // dense (Debian's 1.13 has no fused attention: its masked patterns cost what dense costs) at n = 1024: at 4096 a call takes seconds
            cases.add(new PythonTorchPeer.TorchCase("dense", 1024, 64, o.threads()));
            return cases;
        }
        for (int n : List.of(1024, 2048, 4096, 8192)) for (String p : List.of("dense", "causal", "window256")) cases.add(new PythonTorchPeer.TorchCase(p, n, 64, o.threads()));
        return cases;
    }

    static Measurement measure(Case c, boolean full, List<Peer> peers) throws Exception {
        boolean tessera = c.engine().equals("tessera");
        ChainedOptionsBuilder jmh = new OptionsBuilder()
                .include((tessera ? AttentionBenchmark.class : PeerBenchmark.class).getName() + ".forward")
                .param("n", String.valueOf(c.n())).param("headDim", String.valueOf(c.headDim()))
                .param("threads", String.valueOf(c.threads())).param("pattern", c.pattern())
                .addProfiler(GCProfiler.class);
        schedule(jmh, full);
        if (tessera) jmh.param("backend", c.backend());
        else jmh.param("peer", c.engine());
        // TornadoVM 5.2 fails at start-up under -ea; bailout=False: a kernel the device cannot run throws (DeviceRowCheck).
        RunResult run = Quiet.runSingle(jmh, c.backend().equals("tornado") ? List.of("@" + tornadoArgfile(), "-da", "-Dtornado.recover.bailout=False") : List.of());
        Result<?> primary = run.getPrimaryResult();
        // JMH names the secondary result "gc.alloc.rate.norm" (older versions prefix a "·").
        Result<?> alloc = run.getSecondaryResults().getOrDefault("gc.alloc.rate.norm", run.getSecondaryResults().get("·gc.alloc.rate.norm"));
        MedianTime time = MedianTime.of(primary);
        double ms = time.median();
        double flops = flops(c.pattern(), c.n(), c.headDim());
        return new Measurement(c.engine(), label(c, peers), c.pattern(), c.n(), c.threads(), ms, time.halfWidth(), flops / (ms * 1e6),
                alloc == null ? Double.NaN : alloc.getScore());
    }

    /** The engine's name in the report: "Tessera simd" or the peer's name with its version. */
    static String label(Case c, List<Peer> peers) {
        if (c.engine().equals("tessera")) return "Tessera " + c.backend();
        return peers.stream().filter(p -> p.id().equals(c.engine())).findFirst().map(Peer::name).orElse(c.engine());
    }

    private static String shortName(Case c) {
        return c.engine().equals("tessera") ? c.backend() : c.engine();
    }

    /**
     * The forward cases as the jobs they run in: Tessera's SIMD case and the peers' cases of the same
     * pattern, length, head size and thread count form one job, measured in turns in one JVM
     * ({@link Interleaved}; Tessera first, so each peer's per-round ratio is to Tessera); every
     * other case is a job of its own, a JMH fork. In the order of their first case.
     */
    static List<List<Case>> jobs(List<Case> cases) {
        Map<String, List<Case>> groups = new LinkedHashMap<>();
        for (Case c : cases) {
            boolean simdOrPeer = !c.engine().equals("tessera") || c.backend().equals("simd");
            String key = simdOrPeer ? c.pattern() + "|" + c.n() + "|" + c.headDim() + "|" + c.threads() : c.name();
            groups.computeIfAbsent(key, k -> new ArrayList<>()).add(c);
        }
        List<List<Case>> jobs = new ArrayList<>();
        for (List<Case> group : groups.values()) {
            boolean withTessera = group.stream().anyMatch(c -> c.engine().equals("tessera"));
            if (group.size() > 1 && withTessera) {
                List<Case> ordered = new ArrayList<>(group);
                ordered.sort(java.util.Comparator.comparing(c -> !c.engine().equals("tessera")));   // Tessera first, the peers in matrix order
                jobs.add(ordered);
            } else {
                for (Case c : group) jobs.add(List.of(c));
            }
        }
        return jobs;
    }

    private static void failed(Case c, String why, List<String> notes) {
        System.err.println("  " + c.name() + " failed: " + why);
        notes.add("failed: " + c.name() + ": " + why);
    }

    /**
     * The jobs as they run: each JMH job alone; in quick mode the jobs of several engines in turns
     * grouped by thread count, each group in one JVM ({@link Interleaved#runMatches}: the peers'
     * native libraries loaded once, Tessera's kernels compiled once; one thread count per JVM, since
     * PyTorch's intra-op thread count is one per process), and with them a Tessera simd case that
     * has no peer, as a match of its own (a JMH fork of its own took 8 s of the quick job for one
     * bigbird row). Other backends' single cases stay JMH jobs (TornadoVM's forks need the SDK's
     * JVM arguments). {@code full} keeps a JVM per job: its forty jobs of a thread count would hold
     * every peer's n² masks (up to n = 8192) at once. In the order of their first job.
     */
    static List<List<List<Case>>> units(List<List<Case>> jobs, boolean full) {
        Map<String, List<List<Case>>> units = new LinkedHashMap<>();
        for (List<Case> job : jobs) {
            Case first = job.getFirst();
            boolean inTurns = !full && (job.size() > 1 || first.engine().equals("tessera") && first.backend().equals("simd"));
            String key = inTurns ? "in turns " + first.threads() + "T" : "alone " + first.name();
            units.computeIfAbsent(key, k -> new ArrayList<>()).add(job);
        }
        return new ArrayList<>(units.values());
    }

    /**
     * Jobs of several engines on one case each, as the matches of one JVM; each match's outcomes
     * labelled {@code job/index} by their job and their index in it.
     */
    static List<Interleaved.MatchResult> measureInTurns(List<List<Case>> jobs, boolean full, List<Peer> peers) throws Exception {
        List<Interleaved.Contender> contenders = new ArrayList<>();
        List<List<Integer>> matches = new ArrayList<>();
        for (int j = 0; j < jobs.size(); j++) {
            List<Case> job = jobs.get(j);
            List<Integer> match = new ArrayList<>();
            for (int i = 0; i < job.size(); i++) {
                Case c = job.get(i);
                Map<String, String> params = new LinkedHashMap<>();
                if (c.engine().equals("tessera")) params.put("backend", c.backend());
                else params.put("peer", c.engine());
                params.put("n", String.valueOf(c.n()));
                params.put("headDim", String.valueOf(c.headDim()));
                params.put("threads", String.valueOf(c.threads()));
                params.put("pattern", c.pattern());
                match.add(contenders.size());
                contenders.add(new Interleaved.Contender(j + "/" + i, c.engine().equals("tessera") ? AttentionBenchmark.class : PeerBenchmark.class, "forward", params));
            }
            matches.add(match);
        }
        return Interleaved.runMatches(contenders, matches, Interleaved.Budget.forCalls(full), List.of());
    }

    /** The TornadoVM SDK's JVM argument file, or null when TORNADOVM_HOME is unset or has none. */
    static String tornadoArgfile() {
        String home = System.getenv("TORNADOVM_HOME");
        if (home == null) return null;
        Path argfile = Path.of(home, "tornado-argfile");
        return java.nio.file.Files.isRegularFile(argfile) ? argfile.toString() : null;
    }

    /** FLOPs of the allowed pairs of a pattern: 4·pairs·D·H (the same credit for every engine). */
    public static double flops(String pattern, int n, int headDim) {
        BlockLayout layout = AttentionBenchmark.spec(pattern).layouts(1, n, n, 64, 64).first();
        return layout.flops(headDim) * AttentionBenchmark.HEADS;
    }

    static List<Peer> availablePeers(List<String> notes) {
        List<Peer> peers = new ArrayList<>();
        for (ServiceLoader.Provider<Peer> provider : ServiceLoader.load(Peer.class).stream().toList()) {
            try {
                Peer p = provider.get();
                if (p.unavailableReason() == null) peers.add(p);
                else notes.add(p.name() + " skipped: " + p.unavailableReason());
            } catch (Throwable t) {
                notes.add(provider.type().getSimpleName() + " skipped: " + t);
            }
        }
        if (peers.isEmpty()) notes.add("no JVM peer on the class path: build the bench with the peers profile (./tessera bench does)");
        return peers;
    }

    /** Every engine's output on a small input of each pattern, against the float64 oracle. */
    static List<OracleCheck> oracleChecks(List<Peer> peers, int threads) throws Exception {
        List<OracleCheck> checks = new ArrayList<>();
        int n = CHECK_N, h = CHECK_HEADS, d = CHECK_DIM;
        try (Arena arena = Arena.ofShared()) {
            Tensor[] qkv = checkInputs(arena);
            Tensor q = qkv[0], k = qkv[1], v = qkv[2];
            List<String> patterns = List.of("dense", "causal", "window256", "bigbird", "strided");
            List<OracleReference<DenseReference.Result>> references = checkOracles(patterns);
            for (int pi = 0; pi < patterns.size(); pi++) {
                String p = patterns.get(pi);
                DenseReference.Result oracle = references.get(pi).oracle();
                double tolerance = references.get(pi).tolerance();
                for (Backend b : Backend.available()) {
                    AttentionResult r = Attention.sparse(AttentionBenchmark.spec(p)).on(b).forwardWithLse(arena, q, k, v);
                    checks.add(new OracleCheck("Tessera " + b.name(), p, n, Tolerance.maxError(r.output(), oracle.output()), tolerance));
                }
                for (Peer peer : peers) {
                    peer.prepare(h, n, d, q.toArray(), k.toArray(), v.toArray(), PeerBenchmark.mask(p, n), threads);
                    peer.run();
                    checks.add(new OracleCheck(peer.name(), p, n, Tolerance.maxError(peer.output(), oracle.output()), tolerance));
                }
            }
        }
        return checks;
    }

    /** The small case every engine's forward output is checked on (B = 1): long enough that every pattern is really sparse. */
    public static final int CHECK_N = 384, CHECK_HEADS = 2, CHECK_DIM = 64;

    /** q, k and v of the check case: N(0, 1) from seeds 11, 12 and 13. */
    public static Tensor[] checkInputs(Arena arena) {
        return new Tensor[] {Tensor.randomNormal(arena, 11, 1f, 1, CHECK_HEADS, CHECK_N, CHECK_DIM), Tensor.randomNormal(arena, 12, 1f, 1, CHECK_HEADS, CHECK_N, CHECK_DIM),
                Tensor.randomNormal(arena, 13, 1f, 1, CHECK_HEADS, CHECK_N, CHECK_DIM)};
    }

    private static final Map<String, OracleReference<DenseReference.Result>> CHECK_ORACLES = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * The float64 oracle of each pattern on {@link #checkInputs} with the EXACT tolerance, computed
     * once per run (the forward checks and Debian's PyTorch peer check against the same ones) and on
     * both cores at once (nothing is timed meanwhile; pure functions of the inputs).
     */
    public static List<OracleReference<DenseReference.Result>> checkOracles(List<String> patterns) {
        return patterns.parallelStream().map(p -> {
            OracleReference<DenseReference.Result> known = CHECK_ORACLES.get(p);
            if (known != null) return known;
            try (Arena arena = Arena.ofConfined()) {
                Tensor[] qkv = checkInputs(arena);
                MaskFunction mask = AttentionBenchmark.pattern(p).asMask(CHECK_N, CHECK_N);
                DenseReference.Result oracle = DenseReference.attention(qkv[0], qkv[1], qkv[2], mask, Double.NaN);
                OracleReference<DenseReference.Result> computed = new OracleReference<>(oracle, Tolerance.exact(qkv[0], qkv[1], qkv[2], mask, Double.NaN, oracle).output());
                CHECK_ORACLES.putIfAbsent(p, computed);
                return computed;
            }
        }).toList();
    }

    static Map<String, Path> layoutPictures(Path out, List<String> patterns) throws Exception {
        Path dir = out.resolve("layouts");
        Files.createDirectories(dir);
        Map<String, Path> pictures = new LinkedHashMap<>();
        for (String p : patterns) {
            if (p.equals("dense")) continue;
            Pattern pattern = AttentionBenchmark.pattern(p);
            Path file = dir.resolve(p + ".png");
            LayoutImages.writePng(pattern.compile(4096, 4096, 64, 64), file, 256);
            pictures.put(p + ": " + pattern, file);
        }
        return pictures;
    }

    static Map<String, String> environment(Options o, Instant start) {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("date", DateTimeFormatter.ISO_LOCAL_DATE_TIME.format(start.atOffset(ZoneOffset.UTC).withNano(0)) + " UTC");
        env.put("machine", cpuModel() + ", " + Runtime.getRuntime().availableProcessors() + " cores, " + (Runtime.getRuntime().maxMemory() >> 20) + " MiB max heap");
        env.put("JDK", System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"));
        env.put("Tessera backend", Backend.best().name() + ": " + Backend.best().description());
        env.put("commit", git("rev-parse", "--short", "HEAD"));
        Interleaved.Budget turns = Interleaved.Budget.forCalls(o.full());
        env.put("mode", (o.full() ? "full" : "quick") + "; Tessera and the peers of a case in turns, " + (o.full() ? "each case in a JVM of its own" : "the cases of one thread count one after the other in one JVM") + " (" + turns.warmupSeconds() + " s warm-up each, then at least "
                + turns.minRounds() + " rounds and " + turns.measureSeconds() + " s of calls); other cases in a JMH fork, " + (o.full() ? "3×1 s warm-up, 5×2 s" : "2×1 s warm-up, 3×1 s")
                + " measurement; every call timed: ms / call is the median, ± the half-width of its 95 % order-statistic interval; B=1, H=8");
        return env;
    }

    private static String cpuModel() {
        try {
            return Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name")).findFirst()
                    .map(l -> l.substring(l.indexOf(':') + 1).strip()).orElse(System.getProperty("os.arch"));
        } catch (Exception e) {
            return System.getProperty("os.arch");
        }
    }

    private static String git(String... args) {
        try {
            List<String> cmd = new ArrayList<>(List.of("git"));
            cmd.addAll(List.of(args));
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes()).strip();
            return p.waitFor() == 0 ? out : "unknown";
        } catch (Exception e) {
            return "unknown";
        }
    }
}
