package io.tessera.bench.decode;

import io.tessera.bench.Quiet;
import io.tessera.bench.report.MachinePeak;
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
        List<DecodeReport.Row> rows = new ArrayList<>();
        int done = 0;
        for (String[] c : cases) {
            System.out.printf(Locale.ROOT, "[decode %2d/%d] %-8s B=%s cache=%-6s %-10s %-4s threads=%d ... ", ++done, cases.size(), c[4], c[0], c[1], c[2], c[3], threads);
            System.out.flush();
            try {
                DecodeReport.Row r = measure(Integer.parseInt(c[0]), Integer.parseInt(c[1]), c[2], c[3], c[4], threads, full);
                rows.add(r);
                System.out.printf(Locale.ROOT, "%.1f µs%n", r.microseconds());
            } catch (Exception e) {
                System.out.println("failed");
                notes.add("decode " + String.join("/", c) + " failed: " + e.getMessage());
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

    /** One JMH run of {@link DecodeBenchmark#step} (its setup checks the output against the oracle). */
    static DecodeReport.Row measure(int batch, int cacheLength, String pattern, String cacheType, String backend, int threads, boolean full) throws Exception {
        ChainedOptionsBuilder jmh = new OptionsBuilder()
                .include(DecodeBenchmark.class.getName() + ".step")
                .param("batch", String.valueOf(batch)).param("cacheLength", String.valueOf(cacheLength)).param("pattern", pattern)
                .param("cacheType", cacheType).param("backend", backend).param("threads", String.valueOf(threads))
                .shouldFailOnError(true);
        RunResult run = Quiet.runSingle(io.tessera.bench.MainJob.schedule(jmh, full), List.of());
        io.tessera.bench.report.MedianTime time = io.tessera.bench.report.MedianTime.of(run.getPrimaryResult());   // the median step, as the forward cases
        return new DecodeReport.Row(backend, batch, cacheLength, pattern, cacheType, 16, threads, time.median(), time.halfWidth());
    }
}
