package io.tessera.bench.decode;

import io.tessera.bench.report.MachinePeak;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * Runs {@link DecodeBenchmark} and prints, per case, the time of a decode step, the K/V bytes it
 * reads per second, that as a share of the STREAM triad bandwidth measured in the same run
 * ({@link MachinePeak}, at the case's thread count), and the speed-up over a peer measured on the
 * same case.
 *
 * <pre>
 * java -cp bench/target/benchmarks.jar io.tessera.bench.decode.DecodeReport \
 *     [-p name=v1,v2 ...] [--warmup N] [--iterations N] [--time SECONDS]
 * </pre>
 * {@code -p} overrides a parameter of DecodeBenchmark (batch, cacheLength, pattern, cacheType, pageSize,
 * backend — e.g. {@code -p backend=simd,read,djl-sdpa} with a {@code -Ppeers} build; {@code read} is a
 * plain read of the step's K/V bytes, the memory floor —, threads).
 */
public final class DecodeReport {
    private DecodeReport() {}

    /**
     * One measured case. {@code paired}: when it ran in interleaved rounds with the simd F32 row of its
     * case ({@code io.tessera.bench.Interleaved}), the median over rounds of its step over that row's
     * step, with its interval; else null.
     */
    public record Row(String backend, int batch, int cacheLength, String pattern, String cacheType, int pageSize, int threads, double microseconds, double error,
                      io.tessera.bench.report.MedianTime paired) {
        public double gigabytesPerSecond() { return DecodeBenchmark.kvBytes(batch, cacheLength, pattern, cacheType) / (microseconds * 1e3); }

        String key() { return batch + "/" + cacheLength + "/" + pattern + "/" + cacheType + "/" + pageSize + "/" + threads; }
    }

    public static void main(String[] args) throws Exception {
        ChainedOptionsBuilder options = new OptionsBuilder().include(DecodeBenchmark.class.getName() + ".step").shouldFailOnError(true);
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "-p" -> {
                    String[] kv = args[++i].split("=", 2);
                    if (kv.length != 2) throw new IllegalArgumentException("-p takes name=v1,v2, got '" + args[i] + "'");
                    options.param(kv[0], kv[1].split(","));
                }
                case "--warmup" -> options.warmupIterations(Integer.parseInt(args[++i]));
                case "--iterations" -> options.measurementIterations(Integer.parseInt(args[++i]));
                case "--time" -> {
                    TimeValue t = TimeValue.seconds(Integer.parseInt(args[++i]));
                    options.warmupTime(t).measurementTime(t);
                }
                default -> throw new IllegalArgumentException("unknown argument '" + a + "'; see DecodeReport's documentation");
            }
        }
        Collection<RunResult> results = new Runner(options.build()).run();
        List<Row> rows = new ArrayList<>();
        for (RunResult r : results) {
            BenchmarkParams p = r.getParams();
            rows.add(new Row(p.getParam("backend"), Integer.parseInt(p.getParam("batch")), Integer.parseInt(p.getParam("cacheLength")), p.getParam("pattern"), p.getParam("cacheType"),
                    Integer.parseInt(p.getParam("pageSize")), Integer.parseInt(p.getParam("threads")),
                    r.getPrimaryResult().getScore(), r.getPrimaryResult().getScoreError(), null));
        }
        Map<Integer, MachinePeak> peaks = new LinkedHashMap<>();
        for (Row row : rows) if (!peaks.containsKey(row.threads())) peaks.put(row.threads(), MachinePeak.measuredOnce(row.threads()));
        for (MachinePeak peak : peaks.values()) System.out.println("machine: " + peak);
        System.out.print(table(rows, peaks));
    }

    /**
     * The table: one line per case; the speed-up column compares a Tessera backend with each peer on
     * its case (the median of the paired rounds' ratios where they ran in turns), and a half-precision
     * cache with the F32 one.
     */
    public static String table(List<Row> rows, Map<Integer, MachinePeak> peaks) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%-9s %5s %7s %-10s %-5s %5s %7s %12s %8s %9s  %s%n",
                "backend", "batch", "cache", "pattern", "type", "page", "threads", "µs/step", "GB/s", "of triad", "speed-up vs peers"));
        for (Row r : rows) {
            MachinePeak peak = peaks.get(r.threads());
            StringBuilder vs = new StringBuilder();
            if (r.backend().equals("simd") || r.backend().equals("scalar")) {
                for (Row other : rows) {
                    if (other.key().equals(r.key()) && other.backend().equals("read")) {
                        // Paired rows are relative to the case's simd F32 row: the read's over this row's.
                        double ratio = other.paired() != null ? other.paired().median() / (r.paired() == null ? 1 : r.paired().median()) : other.microseconds() / r.microseconds();
                        vs.append(String.format(Locale.ROOT, "at %.0f%% of a plain read of its bytes%s ", 100 * ratio, other.paired() != null ? " (paired)" : ""));
                    } else if (other.key().equals(r.key()) && !other.backend().equals("simd") && !other.backend().equals("scalar")) {
                        boolean paired = other.paired() != null && r.paired() == null;   // r is the first of the rounds
                        vs.append(paired ? String.format(Locale.ROOT, "%.2f× ±%.2f vs %s (paired) ", other.paired().median(), other.paired().halfWidth(), other.backend())
                                : String.format(Locale.ROOT, "%.2f× vs %s ", other.microseconds() / r.microseconds(), other.backend()));
                    }
                }
                if (!r.cacheType().equals("F32") && r.paired() != null) {
                    vs.append(String.format(Locale.ROOT, "%.2f× vs F32 (paired) ", 1 / r.paired().median()));
                }
            }
            sb.append(String.format(Locale.ROOT, "%-9s %5d %7d %-10s %-5s %5d %7d %12s %8.2f %8s  %s%n", r.backend(), r.batch(), r.cacheLength(), r.pattern(), r.cacheType(), r.pageSize(),
                    r.threads(), String.format(Locale.ROOT, "%.1f ±%.1f", r.microseconds(), r.error()), r.gigabytesPerSecond(),
                    peak == null ? "" : String.format(Locale.ROOT, "%.0f%%", 100 * r.gigabytesPerSecond() / peak.triadGBytesPerS()), vs.toString().trim()));
        }
        return sb.toString();
    }
}
