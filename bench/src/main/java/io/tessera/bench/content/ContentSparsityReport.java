package io.tessera.bench.content;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Issue #19's table in one process, without JMH: for each length and input, every method of
 * {@link ContentSparsityBenchmark} (dense, sliding window, LSH with 1/2/4 rounds, routing) is timed
 * round-robin (one call of each per round, so a change in the machine's load hits all of them
 * alike), keeping the least of the rounds: the layout build alone ({@code induce}, or compiling the
 * pattern), the whole call (build included), the build's share of the call, the speed-up of the
 * call over dense, and the error against dense attention (float64, sampled queries).
 *
 * <pre>
 * java ... io.tessera.bench.content.ContentSparsityReport [--rounds R] [--methods dense,lsh2,...] [--inputs clustered,unstructured] N...
 * </pre>
 * Default: 5 rounds, every method and input, n = 4096.
 */
public final class ContentSparsityReport {
    private ContentSparsityReport() {}

    public static void main(String[] args) {
        int rounds = 5;
        List<String> methods = List.of("dense", "window", "lsh1", "lsh2", "lsh4", "routing"), inputs = List.of("clustered", "unstructured");
        List<Integer> lengths = new ArrayList<>();
        for (int a = 0; a < args.length; a++) {
            switch (args[a]) {
                case "--rounds" -> rounds = Integer.parseInt(args[++a]);
                case "--methods" -> methods = List.of(args[++a].split(","));
                case "--inputs" -> inputs = List.of(args[++a].split(","));
                default -> lengths.add(Integer.parseInt(args[a]));
            }
        }
        if (lengths.isEmpty()) lengths.add(4096);
        if (rounds < 1) throw new IllegalArgumentException("--rounds must be >= 1, got " + rounds);
        Backend be = Backend.named("simd");
        System.out.printf("content sparsity, B=1 H=%d D=%d, backend %s, least of %d rounds (round-robin), load average %s%n",
                ContentSparsityBenchmark.HEADS, ContentSparsityBenchmark.HEAD_DIM, be.description(), rounds, loadAverage());
        System.out.printf("%6s %-13s %-8s %10s %10s %7s %9s %10s %10s%n", "n", "input", "method", "build ms", "call ms", "build%", "vs dense", "relErr", "maxAbs");
        for (int n : lengths) {
            for (String input : inputs) {
                try (Arena arena = Arena.ofShared()) {
                    Tensor[] qkv = ContentSparsityBenchmark.inputs(arena, input, n);
                    Map<String, ContentSparsityBenchmark.Runs> runs = new LinkedHashMap<>();
                    Map<String, Tensor> outs = new LinkedHashMap<>();
                    for (String m : methods) {
                        Tensor out = Tensor.zeros(arena, 1, ContentSparsityBenchmark.HEADS, n, ContentSparsityBenchmark.HEAD_DIM);
                        outs.put(m, out);
                        runs.put(m, ContentSparsityBenchmark.configure(m, n, be, qkv[0], qkv[1], qkv[2], out));
                    }
                    long[] build = new long[methods.size()], call = new long[methods.size()];
                    Arrays.fill(build, Long.MAX_VALUE);
                    Arrays.fill(call, Long.MAX_VALUE);
                    for (int r = -1; r < rounds; r++) {   // round −1 warms up
                        for (int x = 0; x < methods.size(); x++) {
                            ContentSparsityBenchmark.Runs run = runs.get(methods.get(x));
                            long t0 = System.nanoTime();
                            run.build().run();
                            long t1 = System.nanoTime();
                            run.call().run();
                            long t2 = System.nanoTime();
                            if (r >= 0) {
                                build[x] = Math.min(build[x], t1 - t0);
                                call[x] = Math.min(call[x], t2 - t1);
                            }
                        }
                    }
                    int dense = methods.indexOf("dense");
                    for (int x = 0; x < methods.size(); x++) {
                        double[] err = ContentSparsityBenchmark.errorVsDense(qkv[0], qkv[1], qkv[2], outs.get(methods.get(x)), 7);
                        System.out.printf("%6d %-13s %-8s %10.2f %10.2f %6.1f%% %9s %10.3e %10.3e%n", n, input, methods.get(x), build[x] / 1e6, call[x] / 1e6,
                                100.0 * build[x] / call[x], dense < 0 ? "-" : String.format("%.1fx", (double) call[dense] / call[x]), err[0], err[1]);
                    }
                }
            }
        }
    }

    private static String loadAverage() {
        double load = java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        return load < 0 ? "unknown" : String.format("%.1f on %d cores", load, Runtime.getRuntime().availableProcessors());
    }
}
