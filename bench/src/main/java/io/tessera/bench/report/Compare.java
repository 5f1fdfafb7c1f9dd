package io.tessera.bench.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code ./tessera bench --compare A B}: two runs' {@code results.csv} side by side, case by case.
 * A change counts only when it is larger than the noise measured in the runs: the two confidence
 * intervals ({@code ms_error}, the half-widths; the median's 95 % interval since the main job
 * times every call, JMH's 99.9 % interval of the mean in older reports) must not overlap, i.e.
 * {@code |B − A| > errA + errB}. Anything smaller is reported as within noise.
 */
public final class Compare {
    private Compare() {}

    /** One measured case as read back from a {@code results.csv}. */
    public record Row(String engine, String label, String pattern, int n, int threads, double ms, double msError) {
        String key() { return label + " · " + pattern + " · n=" + n + " · " + threads + "T"; }
    }

    /** What happened to a case between run A and run B. */
    public enum Verdict { FASTER, SLOWER, WITHIN_NOISE, NO_NOISE_ESTIMATE, ONLY_IN_A, ONLY_IN_B }

    /** A case of either run and its verdict; {@code a} or {@code b} is null when the case ran once. */
    public record Change(String key, Row a, Row b, Verdict verdict) {
        /** Time B over time A: below 1, B is faster. NaN when the case is missing from one run. */
        public double ratio() { return a == null || b == null ? Double.NaN : b.ms() / a.ms(); }
    }

    /** Reads a report's {@code results.csv}, given it or its directory. Columns are found by name. */
    public static List<Row> read(Path path) throws IOException {
        Path file = Files.isDirectory(path) ? path.resolve("results.csv") : path;
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("no results.csv at " + path + " (give a report directory or its results.csv)");
        }
        List<String> lines = Files.readAllLines(file);
        if (lines.isEmpty()) throw new IllegalArgumentException(file + " is empty");
        List<String> header = splitCsv(lines.get(0));
        int engine = column(file, header, "engine"), label = column(file, header, "label"), pattern = column(file, header, "pattern"),
                n = column(file, header, "n"), threads = column(file, header, "threads"), ms = column(file, header, "ms_per_call"),
                err = column(file, header, "ms_error");
        List<Row> rows = new ArrayList<>();
        for (int l = 1; l < lines.size(); l++) {
            if (lines.get(l).isBlank()) continue;
            List<String> f = splitCsv(lines.get(l));
            if (f.size() != header.size()) {
                throw new IllegalArgumentException(file + " line " + (l + 1) + " has " + f.size() + " fields, the header has " + header.size());
            }
            try {
                rows.add(new Row(f.get(engine), f.get(label), f.get(pattern), Integer.parseInt(f.get(n)), Integer.parseInt(f.get(threads)),
                        Double.parseDouble(f.get(ms)), Double.parseDouble(f.get(err))));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(file + " line " + (l + 1) + ": " + e.getMessage());
            }
        }
        return rows;
    }

    /** Every case of A and B, in A's order then B's new cases, with its verdict. */
    public static List<Change> compare(List<Row> a, List<Row> b) {
        Map<String, Row> inB = new LinkedHashMap<>();
        for (Row r : b) inB.put(r.key(), r);
        List<Change> out = new ArrayList<>();
        for (Row ra : a) {
            Row rb = inB.remove(ra.key());
            out.add(new Change(ra.key(), ra, rb, rb == null ? Verdict.ONLY_IN_A : verdict(ra, rb)));
        }
        for (Row rb : inB.values()) out.add(new Change(rb.key(), null, rb, Verdict.ONLY_IN_B));
        return out;
    }

    static Verdict verdict(Row a, Row b) {
        if (!Double.isFinite(a.msError()) || !Double.isFinite(b.msError())) return Verdict.NO_NOISE_ESTIMATE;
        double delta = b.ms() - a.ms();
        if (Math.abs(delta) <= a.msError() + b.msError()) return Verdict.WITHIN_NOISE;
        return delta < 0 ? Verdict.FASTER : Verdict.SLOWER;
    }

    /** The comparison as a Markdown table with a one-line summary. */
    public static String table(String nameA, String nameB, List<Change> changes) {
        StringBuilder sb = new StringBuilder();
        sb.append("A = ").append(nameA).append("\nB = ").append(nameB).append("\n\n");
        sb.append("| case | A ms ± | B ms ± | B / A | verdict |\n|---|---:|---:|---:|---|\n");
        Map<Verdict, Integer> counts = new LinkedHashMap<>();
        for (Change c : changes) {
            counts.merge(c.verdict(), 1, Integer::sum);
            sb.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s |%n", c.key(), time(c.a()), time(c.b()),
                    Double.isNaN(c.ratio()) ? "" : String.format(Locale.ROOT, "%.3f", c.ratio()), describe(c)));
        }
        sb.append('\n');
        List<String> parts = new ArrayList<>();
        counts.forEach((v, k) -> parts.add(k + " " + v.name().toLowerCase(Locale.ROOT).replace('_', ' ')));
        sb.append(changes.size()).append(" cases: ").append(String.join(", ", parts))
                .append(" (a change counts when |B − A| exceeds the sum of the two runs' error half-widths)\n");
        return sb.toString();
    }

    private static String time(Row r) {
        return r == null ? "—" : String.format(Locale.ROOT, "%.3f ± %.3f", r.ms(), r.msError());
    }

    private static String describe(Change c) {
        return switch (c.verdict()) {
            case FASTER -> String.format(Locale.ROOT, "**faster** (%.1f %%)", 100 * (c.ratio() - 1));
            case SLOWER -> String.format(Locale.ROOT, "**slower** (+%.1f %%)", 100 * (c.ratio() - 1));
            case WITHIN_NOISE -> "within noise";
            case NO_NOISE_ESTIMATE -> "no error estimate";
            case ONLY_IN_A -> "only in A";
            case ONLY_IN_B -> "only in B";
        };
    }

    private static int column(Path file, List<String> header, String name) {
        int i = header.indexOf(name);
        if (i < 0) throw new IllegalArgumentException(file + " has no '" + name + "' column (header: " + header + ")");
        return i;
    }

    /** Splits one CSV line: fields may be double-quoted, with "" for a quote inside. */
    static List<String> splitCsv(String line) {
        List<String> fields = new ArrayList<>();
        StringBuilder field = new StringBuilder();
        boolean quoted = false;
        for (int i = 0; i < line.length(); i++) {
            char ch = line.charAt(i);
            if (quoted) {
                if (ch == '"' && i + 1 < line.length() && line.charAt(i + 1) == '"') { field.append('"'); i++; }
                else if (ch == '"') quoted = false;
                else field.append(ch);
            } else if (ch == '"') {
                quoted = true;
            } else if (ch == ',') {
                fields.add(field.toString());
                field.setLength(0);
            } else {
                field.append(ch);
            }
        }
        fields.add(field.toString());
        return fields;
    }
}
