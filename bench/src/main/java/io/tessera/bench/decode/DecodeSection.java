package io.tessera.bench.decode;

import io.tessera.bench.Interleaved;
import io.tessera.bench.Quiet;
import io.tessera.bench.report.MachinePeak;
import io.tessera.bench.report.MedianTime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * The main job's decode section: a few rows of {@link DecodeBenchmark} — batch 1, a 32,768-token
 * cache, dense in fp32 and bf16 and a 4096 window in fp32 — for Tessera's simd backend and, when the
 * {@code peers} build has them, PyTorch's SDPA through DJL and ONNX Runtime's GroupQueryAttention on the dense rows, on the same keys, values and query (each
 * checked against the float64 oracle in the benchmark's setup: a failed check fails the row). Time
 * per step, K/V GB/s, that as a share of the STREAM triad measured here, and the speed-up over SDPA.
 * Written to {@code decode.md}. With {@code full}, every type and peer for both patterns, batch 8,
 * caches of 4096 and 131,072 (batch 1), and f16.
 */
public final class DecodeSection {
    private DecodeSection() {}

    /** Measures the rows, writes {@code decode.md} into {@code out} (unless null), returns the markdown. */
    public static String run(Path out, boolean full, int threads, boolean peers, List<String> notes) throws Exception {
        List<String[]> cases = new ArrayList<>();   // batch, cacheLength, pattern, cacheType, backend
        // With peers allowed: those on the class path (-Ppeers) that can run here.
        boolean sdpa = peers && DecodePeer.available("djl-sdpa");
        boolean onnxRuntime = peers && DecodePeer.available("onnxruntime-gqa");   // ONNX Runtime's GroupQueryAttention with a past KV cache
        List<String> types = full ? List.of("F32", "BF16", "F16") : List.of("F32", "BF16");
        List<String[]> shapes = new ArrayList<>();
        shapes.add(new String[] {"1", "32768"});
        if (full) {
            shapes.add(new String[] {"1", "4096"});
            shapes.add(new String[] {"1", "131072"});
            shapes.add(new String[] {"8", "32768"});
        }
        for (String[] shape : shapes) {
            for (String pattern : List.of("dense", "window4096")) {
                // Quick mode: the window in F32 only, to show that it reads only its pages.
                boolean every = full || pattern.equals("dense");
                for (String type : every ? types : List.of("F32")) cases.add(new String[] {shape[0], shape[1], pattern, type, "simd"});
                // The peer computes in float32 on the (rounded) cache values: one row per pattern.
                if (sdpa && every) cases.add(new String[] {shape[0], shape[1], pattern, "F32", "djl-sdpa"});
                if (onnxRuntime && every) cases.add(new String[] {shape[0], shape[1], pattern, "F32", "onnxruntime-gqa"});
            }
        }
        // The rows of one (batch, cache, pattern) take turns in one JVM (io.tessera.bench.Interleaved),
        // simd F32 first: the host's phases of seconds hit every engine alike, and each other row's
        // ratio to it is the median of the rounds'.
        Map<String, List<String[]>> groups = new LinkedHashMap<>();
        for (String[] c : cases) groups.computeIfAbsent(c[0] + "/" + c[1] + "/" + c[2], k -> new ArrayList<>()).add(c);
        List<DecodeReport.Row> rows = new ArrayList<>();
        int done = 0;
        for (List<String[]> group : groups.values()) {
            String[] c0 = group.getFirst();
            System.out.printf(Locale.ROOT, "[decode %d/%d] B=%s cache=%-6s %-10s threads=%d, %s ... ", ++done, groups.size(), c0[0], c0[1], c0[2], threads,
                    group.size() == 1 ? "JMH fork" : group.size() + " engines in turns");
            System.out.flush();
            try {
                StringBuilder line = new StringBuilder();
                for (DecodeReport.Row r : measure(group, threads, full)) {
                    rows.add(r);
                    line.append(String.format(Locale.ROOT, "%s%s %s %.1f µs", line.isEmpty() ? "" : " | ", r.backend(), r.cacheType(), r.microseconds()));
                }
                System.out.println(line);
            } catch (Exception e) {
                System.out.println("failed");
                for (String[] c : group) notes.add("decode " + String.join("/", c) + " failed: " + e.getMessage());
            }
        }
        Map<Integer, MachinePeak> peaks = new LinkedHashMap<>();
        peaks.put(threads, MachinePeak.measuredOnce(threads));
        StringBuilder md = new StringBuilder("## Decode step (D = 128, 32 query heads over 8 KV heads, one query per sequence, pages of 16)\n\n");
        md.append("machine: ").append(peaks.get(threads)).append("\n\n```\n").append(DecodeReport.table(rows, peaks)).append("```\n");
        String markdown = md.toString();
        if (out != null) {
            Files.createDirectories(out);
            Files.writeString(out.resolve("decode.md"), markdown);
        }
        return markdown;
    }

    /**
     * The rows of one case in turns ({@link DecodeBenchmark#step}; its setup checks the output
     * against the oracle), or a JMH fork when the case has one row.
     */
    static List<DecodeReport.Row> measure(List<String[]> group, int threads, boolean full) throws Exception {
        if (group.size() == 1) {
            String[] c = group.getFirst();
            ChainedOptionsBuilder jmh = new OptionsBuilder()
                    .include(DecodeBenchmark.class.getName() + ".step")
                    .param("batch", c[0]).param("cacheLength", c[1]).param("pattern", c[2])
                    .param("cacheType", c[3]).param("backend", c[4]).param("threads", String.valueOf(threads))
                    .shouldFailOnError(true);
            RunResult run = Quiet.runSingle(io.tessera.bench.MainJob.schedule(jmh, full), List.of());
            MedianTime time = MedianTime.of(run.getPrimaryResult());   // the median step, as the forward cases
            return List.of(row(c, threads, time.median(), time.halfWidth(), null));
        }
        List<Interleaved.Contender> contenders = new ArrayList<>();
        for (String[] c : group) {
            Map<String, String> params = new LinkedHashMap<>();
            params.put("batch", c[0]);
            params.put("cacheLength", c[1]);
            params.put("pattern", c[2]);
            params.put("cacheType", c[3]);
            params.put("backend", c[4]);
            params.put("threads", String.valueOf(threads));
            contenders.add(new Interleaved.Contender(c[4] + " " + c[3], DecodeBenchmark.class, "step", params));
        }
        List<DecodeReport.Row> rows = new ArrayList<>();
        List<Interleaved.Outcome> outcomes = Interleaved.run(contenders, Interleaved.Budget.forCalls(full), List.of());
        for (int i = 0; i < group.size(); i++) {
            Interleaved.Outcome o = outcomes.get(i);
            rows.add(row(group.get(i), threads, o.time().median() * 1e3, o.time().halfWidth() * 1e3, o.speedup()));
        }
        return rows;
    }

    private static DecodeReport.Row row(String[] c, int threads, double microseconds, double error, MedianTime paired) {
        return new DecodeReport.Row(c[4], Integer.parseInt(c[0]), Integer.parseInt(c[1]), c[2], c[3], 16, threads, microseconds, error, paired);
    }
}
