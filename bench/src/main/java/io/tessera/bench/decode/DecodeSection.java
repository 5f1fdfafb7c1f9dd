package io.tessera.bench.decode;

import io.tessera.bench.Interleaved;
import io.tessera.bench.report.MachinePeak;
import io.tessera.bench.report.MedianTime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The main job's decode section: a few rows of {@link DecodeBenchmark} — batch 1, a 32,768-token
 * cache, dense in fp32 and bf16 and a 4096 window in fp32 — for Tessera's simd backend and, when the
 * {@code peers} build has them, PyTorch's SDPA through DJL and ONNX Runtime's GroupQueryAttention on the dense rows, on the same keys, values and query (each
 * checked against the float64 oracle in the benchmark's setup: a failed check fails the row), timed
 * call by call in one JVM ({@link Interleaved}: the rows of a pattern in turns; quick mode's window
 * row alone, after the dense rows). Time
 * per step, K/V GB/s, that as a share of the STREAM triad measured here and of a plain read of the
 * same bytes ({@code read} rows, in the same turns), and the speed-up over SDPA.
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
                // The plain read of the same bytes: the floor a step bound by memory would reach here.
                for (String type : every ? types : List.of("F32")) cases.add(new String[] {shape[0], shape[1], pattern, type, "read"});
                // The peer computes in float32 on the (rounded) cache values: one row per pattern.
                if (sdpa && every) cases.add(new String[] {shape[0], shape[1], pattern, "F32", "djl-sdpa"});
                if (onnxRuntime && every) cases.add(new String[] {shape[0], shape[1], pattern, "F32", "onnxruntime-gqa"});
            }
        }
        // The rows of one (batch, cache, pattern) take turns (io.tessera.bench.Interleaved), simd F32
        // first: the host's phases of seconds hit every engine alike, and each other row's ratio to
        // it is the median of the rounds'. The matches of one (batch, cache) share a JVM while their
        // caches fit (see jvms).
        Map<String, List<String[]>> groups = new LinkedHashMap<>();
        for (String[] c : cases) groups.computeIfAbsent(c[0] + "/" + c[1] + "/" + c[2], k -> new ArrayList<>()).add(c);
        List<DecodeReport.Row> rows = new ArrayList<>();
        int done = 0;
        for (List<List<String[]>> jvm : jvms(new ArrayList<>(groups.values()))) {
            List<Interleaved.MatchResult> results;
            try {
                results = measure(jvm, threads, full);
            } catch (Exception e) {
                results = java.util.Collections.nCopies(jvm.size(), new Interleaved.MatchResult(null, e.getMessage()));
            }
            for (int g = 0; g < jvm.size(); g++) {
                List<String[]> group = jvm.get(g);
                String[] c0 = group.getFirst();
                System.out.printf(Locale.ROOT, "[decode %d/%d] B=%s cache=%-6s %-10s threads=%d, %s: ", ++done, groups.size(), c0[0], c0[1], c0[2], threads,
                        group.size() == 1 ? "alone" : group.size() + " engines in turns");
                if (results.get(g).failure() != null) {
                    System.out.println("failed");
                    for (String[] c : group) notes.add("decode " + String.join("/", c) + " failed: " + results.get(g).failure());
                    continue;
                }
                StringBuilder line = new StringBuilder();
                for (int i = 0; i < group.size(); i++) {
                    Interleaved.Outcome o = results.get(g).outcomes().get(i);
                    DecodeReport.Row r = row(group.get(i), threads, o.time().median() * 1e3, o.time().halfWidth() * 1e3, o.speedup());
                    rows.add(r);
                    line.append(String.format(Locale.ROOT, "%s%s %s %.1f µs", line.isEmpty() ? "" : " | ", r.backend(), r.cacheType(), r.microseconds()));
                }
                System.out.println(line);
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
     * Bytes of cache the matches of one JVM may hold at once, counted as if every state had its own
     * cache and a peer its own copy besides (DecodeBenchmark shares one cache per shape and type
     * within a JVM, so this is an upper bound).
     */
    static final long JVM_CACHE_BYTES = 4L << 30;

    /**
     * The groups (each a match) as the JVMs they run in: the groups of one (batch, cache length)
     * together while every state's cache, a peer's copy counted twice, adds up to at most
     * {@link #JVM_CACHE_BYTES} (quick mode's 32K shape: 1.6 GB); past that, a JVM per group. One JVM
     * per shape saves the JVM's start, the peers' native libraries and the oracle (see
     * {@link DecodeBenchmark}) per group; and it lets the window's single row of quick mode run as a
     * match of its own beside the dense rows instead of in a JMH fork of its own (12 s).
     */
    static List<List<List<String[]>>> jvms(List<List<String[]>> groups) {
        Map<String, List<List<String[]>>> byShape = new LinkedHashMap<>();
        for (List<String[]> g : groups) byShape.computeIfAbsent(g.getFirst()[0] + "/" + g.getFirst()[1], k -> new ArrayList<>()).add(g);
        List<List<List<String[]>>> jvms = new ArrayList<>();
        for (List<List<String[]>> shape : byShape.values()) {
            long bytes = 0;
            for (List<String[]> g : shape) {
                for (String[] c : g) {
                    long cache = DecodeBenchmark.kvBytes(Integer.parseInt(c[0]), Integer.parseInt(c[1]), "dense", c[3]);
                    bytes += c[4].equals("simd") || c[4].equals("scalar") || c[4].equals("read") ? cache : 2 * cache;
                }
            }
            if (bytes <= JVM_CACHE_BYTES) jvms.add(shape);
            else for (List<String[]> g : shape) jvms.add(List.of(g));
        }
        return jvms;
    }

    /**
     * The groups of one JVM as its matches ({@link DecodeBenchmark#step}; its setup checks the
     * output against the oracle): each group's rows in turns, a group of one row alone.
     */
    static List<Interleaved.MatchResult> measure(List<List<String[]>> groups, int threads, boolean full) throws Exception {
        List<Interleaved.Contender> contenders = new ArrayList<>();
        List<List<Integer>> matches = new ArrayList<>();
        for (List<String[]> group : groups) {
            List<Integer> match = new ArrayList<>();
            for (String[] c : group) {
                Map<String, String> params = new LinkedHashMap<>();
                params.put("batch", c[0]);
                params.put("cacheLength", c[1]);
                params.put("pattern", c[2]);
                params.put("cacheType", c[3]);
                params.put("backend", c[4]);
                params.put("threads", String.valueOf(threads));
                match.add(contenders.size());
                contenders.add(new Interleaved.Contender(c[4] + " " + c[3], DecodeBenchmark.class, "step", params));
            }
            matches.add(match);
        }
        return Interleaved.runMatches(contenders, matches, Interleaved.Budget.forCalls(full), List.of());
    }

    private static DecodeReport.Row row(String[] c, int threads, double microseconds, double error, MedianTime paired) {
        return new DecodeReport.Row(c[4], Integer.parseInt(c[0]), Integer.parseInt(c[1]), c[2], c[3], 16, threads, microseconds, error, paired);
    }
}
