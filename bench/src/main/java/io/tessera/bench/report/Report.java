package io.tessera.bench.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * Writes the benchmark report: {@code report.md}, a self-contained {@code index.html} (charts
 * embedded), the charts as PNG and {@code results.csv}. Ratios are computed against Tessera's
 * SIMD measurement of the same pattern, length and thread count.
 */
public final class Report {
    private final List<Measurement> measurements;
    private final List<OracleCheck> checks;
    private final List<String> notes;
    private final Map<String, String> environment;
    private final Map<String, Path> layoutPictures;
    private final Map<Integer, MachinePeak> peaks;
    private final List<String> sections = new ArrayList<>();
    private final Map<String, MedianTime> pairedSpeedups = new LinkedHashMap<>();

    public Report(List<Measurement> measurements, List<OracleCheck> checks, List<String> notes,
                  Map<String, String> environment, Map<String, Path> layoutPictures) {
        this(measurements, checks, notes, environment, layoutPictures, Map.of());
    }

    /** With the machine's measured peaks by thread count: the tables then give each case's efficiency. */
    public Report(List<Measurement> measurements, List<OracleCheck> checks, List<String> notes,
                  Map<String, String> environment, Map<String, Path> layoutPictures, Map<Integer, MachinePeak> peaks) {
        this.measurements = List.copyOf(measurements);
        this.checks = List.copyOf(checks);
        this.notes = List.copyOf(notes);
        this.environment = new LinkedHashMap<>(environment);
        this.layoutPictures = new LinkedHashMap<>(layoutPictures);
        this.peaks = new TreeMap<>(peaks);
    }

    /**
     * Adds a section's Markdown (a {@code ## } heading, tables, images relative to the report's
     * directory) after the forward results, in the order added: the main job's training, decode,
     * variants and options sections.
     */
    public Report withSection(String markdown) {
        if (markdown == null) throw new NullPointerException("markdown");
        sections.add(markdown.strip());
        return this;
    }

    /**
     * Records a peer's speed-up measured in interleaved rounds ({@code io.tessera.bench.Interleaved}):
     * the median over rounds of the peer's call over Tessera's in the same round. The ratio table
     * then gives it instead of the quotient of the two medians.
     */
    public Report withPairedSpeedup(Measurement peer, MedianTime speedup) {
        pairedSpeedups.put(key(peer), speedup);
        return this;
    }

    private static String key(Measurement m) {
        return m.engineLabel() + "|" + m.pattern() + "|" + m.n() + "|" + m.threads();
    }

    /**
     * Achieved effective GFLOP/s over the FMA peak measured at the same thread count, or NaN when no
     * peak was measured at that count.
     */
    public double efficiency(Measurement m) {
        MachinePeak peak = peaks.get(m.threads());
        return peak == null ? Double.NaN : m.gflops() / peak.fmaGflops();
    }

    /** The machine section's lines: the environment, then each measured peak. */
    public Map<String, String> machine() {
        Map<String, String> lines = new LinkedHashMap<>(environment);
        peaks.forEach((threads, peak) -> lines.put("measured peak, " + threads + (threads == 1 ? " thread" : " threads"), peak.toString()));
        return lines;
    }

    /**
     * A comparison row: Tessera's time and a peer's on the same case, and, when the two ran in
     * interleaved rounds, the paired speed-up (else null).
     */
    public record Ratio(String pattern, int n, int threads, String peer, double tesseraMs, double peerMs, MedianTime paired) {
        /** Peer time over Tessera time (the median of the rounds' ratios when paired): above 1, Tessera is faster. */
        public double speedup() { return paired != null ? paired.median() : peerMs / tesseraMs; }
    }

    public List<Ratio> ratios() {
        List<Ratio> out = new ArrayList<>();
        for (Measurement p : measurements) {
            if (p.engine().equals("tessera")) continue;
            tessera(p.pattern(), p.n(), p.threads()).ifPresent(t -> out.add(new Ratio(p.pattern(), p.n(), p.threads(), p.engineLabel(), t.msPerCall(), p.msPerCall(),
                    pairedSpeedups.get(key(p)))));
        }
        return out;
    }

    private Optional<Measurement> tessera(String pattern, int n, int threads) {
        return measurements.stream().filter(m -> m.engine().equals("tessera") && m.engineLabel().endsWith("simd")
                && m.pattern().equals(pattern) && m.n() == n && m.threads() == threads).findFirst();
    }

    /** Time of dense over time of each pattern, per length, for Tessera SIMD at the most threads measured. */
    public Map<String, Map<String, Double>> speedupOverDense() {
        Map<String, Map<String, Double>> byN = new TreeMap<>();
        int threads = measurements.stream().mapToInt(Measurement::threads).max().orElse(1);
        for (Measurement m : measurements) {
            if (!m.engine().equals("tessera") || !m.engineLabel().endsWith("simd") || m.threads() != threads || m.pattern().equals("dense")) continue;
            tessera("dense", m.n(), threads).ifPresent(d -> byN.computeIfAbsent(String.format("n=%5d", m.n()), k -> new LinkedHashMap<>())
                    .put(m.pattern(), d.msPerCall() / m.msPerCall()));
        }
        return byN;
    }

    public void write(Path dir) throws IOException {
        Files.createDirectories(dir.resolve("charts"));
        Map<String, Path> charts = new LinkedHashMap<>();
        if (!measurements.isEmpty()) {
            charts.put("Time per call vs length (log-log)", dir.resolve("charts/time-vs-length.png"));
            Charts.timeVsLength(measurements, charts.get("Time per call vs length (log-log)"));
        }
        Map<String, Map<String, Double>> speedups = speedupOverDense();
        if (!speedups.isEmpty()) {
            charts.put("Speed-up over dense attention (Tessera SIMD)", dir.resolve("charts/speedup-over-dense.png"));
            Charts.speedups("Speed-up over dense (time dense / time pattern)", "× faster than dense (log scale)", speedups, charts.get("Speed-up over dense attention (Tessera SIMD)"));
        }
        List<Ratio> ratios = ratios();
        if (!ratios.isEmpty()) {
            Map<String, Map<String, Double>> byCase = new LinkedHashMap<>();
            for (Ratio r : ratios) byCase.computeIfAbsent(r.pattern() + " n=" + r.n(), k -> new LinkedHashMap<>()).put(r.peer(), r.speedup());
            charts.put("Tessera speed-up over peers", dir.resolve("charts/speedup-over-peers.png"));
            Charts.speedups("Tessera SIMD speed-up over peers (peer time / Tessera time)", "× faster than the peer (log scale; below 1× the peer is faster)", byCase, charts.get("Tessera speed-up over peers"));
        }
        Map<String, Map<Integer, Double>> memory = new LinkedHashMap<>();
        for (Measurement m : measurements) {
            if (!Double.isNaN(m.heapBytesPerCall())) {
                memory.computeIfAbsent(m.engineLabel() + " · " + m.pattern(), k -> new TreeMap<>()).put(m.n(), m.heapBytesPerCall() / (1 << 20));
            }
        }
        if (!memory.isEmpty()) {
            charts.put("Heap allocated per call vs length", dir.resolve("charts/memory-vs-length.png"));
            Charts.lines("Heap allocated per call (all threads: JMH gc profiler, or the thread MXBean in turns)", "MiB per call", memory, charts.get("Heap allocated per call vs length"));
        }
        String markdown = markdown(charts, dir);
        Files.writeString(dir.resolve("report.md"), markdown);
        Files.writeString(dir.resolve("index.html"), html(markdown, dir));
        Files.writeString(dir.resolve("results.csv"), csv());
    }

    private String csv() {
        StringBuilder sb = new StringBuilder("engine,label,pattern,n,threads,ms_per_call,ms_error,gflops,heap_bytes_per_call,efficiency\n");
        for (Measurement m : measurements) {
            sb.append(String.format(Locale.ROOT, "%s,\"%s\",%s,%d,%d,%.4f,%.4f,%.2f,%.0f,%.4f%n", m.engine(), m.engineLabel().replace("\"", "\"\""), m.pattern(), m.n(), m.threads(),
                    m.msPerCall(), m.msError(), m.gflops(), m.heapBytesPerCall(), efficiency(m)));
        }
        return sb.toString();
    }

    // ---------------------------------------------------------------- Markdown

    public String resultsTable() {
        StringBuilder sb = new StringBuilder("| engine | pattern | n | threads | ms / call | ± | GFLOP/s | % of FMA peak | heap / call |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Measurement m : measurements) {
            sb.append(String.format(Locale.ROOT, "| %s | %s | %d | %d | %.2f | %.2f | %.1f | %s | %s |%n", m.engineLabel(), m.pattern(), m.n(), m.threads(),
                    m.msPerCall(), m.msError(), m.gflops(), percent(efficiency(m)), bytes(m.heapBytesPerCall())));
        }
        return sb.toString();
    }

    public String ratioTable() {
        StringBuilder sb = new StringBuilder("| pattern | n | threads | peer | Tessera ms | peer ms | Tessera speed-up | ± | measured |\n|---|---:|---:|---|---:|---:|---:|---:|---|\n");
        for (Ratio r : ratios()) {
            sb.append(String.format(Locale.ROOT, "| %s | %d | %d | %s | %.2f | %.2f | %.2f× | %s | %s |%n", r.pattern(), r.n(), r.threads(), r.peer(), r.tesseraMs(), r.peerMs(), r.speedup(),
                    r.paired() == null ? "—" : String.format(Locale.ROOT, "%.2f", r.paired().halfWidth()),
                    r.paired() == null ? "separate forks" : "interleaved, " + r.paired().calls() + " rounds"));
        }
        return sb.toString();
    }

    private String checkTable() {
        StringBuilder sb = new StringBuilder("| engine | pattern | n | max-abs error vs float64 oracle | tolerance | |\n|---|---|---:|---:|---:|---|\n");
        for (OracleCheck c : checks) {
            sb.append(String.format(Locale.ROOT, "| %s | %s | %d | %.2e | %.2e | %s |%n", c.engineLabel(), c.pattern(), c.n(), c.maxAbsError(), c.tolerance(), c.passed() ? "ok" : "**FAILED**"));
        }
        return sb.toString();
    }

    private String markdown(Map<String, Path> charts, Path dir) {
        StringBuilder sb = new StringBuilder("# Tessera benchmark report\n\n");
        sb.append("## Machine\n\n");
        machine().forEach((k, v) -> sb.append("- **").append(k).append("**: ").append(v).append('\n'));
        sb.append("\n## Results\n\nEffective GFLOP/s count only the pairs each pattern allows (4·pairs·D·H), for Tessera and peers alike; "
                + "\"% of FMA peak\" divides them by the float32 FMA peak measured at the same thread count in this run.\n\n").append(resultsTable());
        if (!ratios().isEmpty()) {
            sb.append("\n## Tessera against peers (same shapes, same run)\n\n")
                    .append("\"interleaved\": Tessera and the peers took turns call by call in one JVM, so each round's engines ran in the same ")
                    .append("seconds of the machine; the speed-up is the median over rounds of (peer call / Tessera call) and ± the half-width of its ")
                    .append("95 % interval. \"separate forks\": the quotient of medians measured minutes apart.\n\n").append(ratioTable());
        }
        if (!checks.isEmpty()) sb.append("\n## Outputs checked against the float64 oracle\n\n").append(checkTable());
        for (String section : sections) sb.append('\n').append(section).append('\n');
        sb.append("\n## Charts\n\n");
        charts.forEach((title, file) -> sb.append("### ").append(title).append("\n\n![").append(title).append("](").append(dir.relativize(file)).append(")\n\n"));
        if (!layoutPictures.isEmpty()) {
            sb.append("## Block layouts used (n = 4096, 64×64 blocks; dark = FULL, light = PARTIAL)\n\n");
            layoutPictures.forEach((name, file) -> sb.append("**").append(name).append("**\n\n![").append(name).append("](").append(dir.relativize(file)).append(")\n\n"));
        }
        if (!notes.isEmpty()) {
            sb.append("## Notes\n\n");
            notes.forEach(n -> sb.append("- ").append(n).append('\n'));
        }
        return sb.toString();
    }

    // ---------------------------------------------------------------- HTML

    /**
     * The report as one self-contained page: the Markdown rendered (tables as GitHub writes them),
     * every image inlined as a data URI so the file can be mailed or archived alone.
     */
    private static String html(String markdown, Path dir) {
        List<org.commonmark.Extension> extensions = List.of(org.commonmark.ext.gfm.tables.TablesExtension.create());
        org.commonmark.node.Node document = org.commonmark.parser.Parser.builder().extensions(extensions).build().parse(markdown);
        String body = org.commonmark.renderer.html.HtmlRenderer.builder().extensions(extensions)
                .attributeProviderFactory(context -> (node, tag, attributes) -> {
                    if (node instanceof org.commonmark.node.Image && attributes.containsKey("src")) attributes.put("src", dataUri(dir.resolve(attributes.get("src"))));
                })
                .build().render(document);
        return "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tessera benchmark report</title><style>"
                + "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
                + "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                + "td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}pre{background:#f6f6f6;padding:.5em;overflow:auto}"
                + "</style></head><body>" + body + "</body></html>\n";
    }

    private static String dataUri(Path png) {
        try {
            return "data:image/png;base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(png));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("the report's image " + png + " cannot be read", e);
        }
    }

    static String percent(double fraction) {
        return Double.isNaN(fraction) ? "n/a" : String.format(Locale.ROOT, "%.1f %%", 100 * fraction);
    }

    static String bytes(double b) {
        if (Double.isNaN(b)) return "n/a";
        if (b < 1024) return String.format(Locale.ROOT, "%.0f B", b);
        if (b < 1 << 20) return String.format(Locale.ROOT, "%.1f KiB", b / 1024);
        return String.format(Locale.ROOT, "%.1f MiB", b / (1 << 20));
    }
}
