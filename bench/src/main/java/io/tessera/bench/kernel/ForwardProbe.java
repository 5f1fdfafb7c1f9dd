package io.tessera.bench.kernel;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.bench.report.MachinePeak;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * A quick A/B probe of the fused forward on a shared machine: the given score modifiers (by
 * {@link ScoreModBenchmark#mod} name, or {@code BF16} / {@code F16} storage) on one pattern and length, B = 1, H = 8, D = 64, interleaved
 * (every round runs every configuration once), one thread on the calling thread, so the call's
 * CPU time is the thread's ({@link ThreadMXBean}): time other processes take from the core does
 * not count, which wall time on a loaded 2-core machine does. Prints min and median CPU and wall
 * milliseconds, the ratio of CPU minima to the first configuration, and GFLOP/s (the dense
 * pattern's 4·n²·D·H) against the 1-thread FMA peak measured in the same process.
 *
 * <p>{@code java ... io.tessera.bench.kernel.ForwardProbe [n=4096] [pattern=dense] [seconds=20] [threads=1] [base=engine.jar] mod...}:
 * with {@code base}, the same calls on that engine jar too (its own class loader), interleaved with
 * this build's: an A/B of two engine versions in one process. A modifier written {@code mod@QxKV}
 * runs with blockQ = Q and blockKV = KV (an A/B of block sizes: {@code none none@128x64}).
 */
public final class ForwardProbe {
    private ForwardProbe() {}

    /**
     * The calls of {@code mods} on one shared set of inputs, with this class loader's engine; public so
     * that {@code main} can call it reflectively in a loader that puts another engine jar first.
     */
    public static Runnable[] calls(int n, String pattern, int threads, String[] mods) {
        int heads = AttentionBenchmark.HEADS, dim = 64;
        Arena arena = Arena.ofAuto();
        Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, heads, n, dim);
        Tensor k = Tensor.randomNormal(arena, 2, 1f, 1, heads, n, dim);
        Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, heads, n, dim);
        Tensor out = Tensor.zeros(arena, 1, heads, n, dim);
        Backend be = Backend.named("simd").withThreads(threads);
        Runnable[] calls = new Runnable[mods.length];
        for (int i = 0; i < mods.length; i++) {
            // "mod@QxKV": that modifier with blockQ = Q and blockKV = KV instead of the backend's preference;
            // "BF16" or "F16": no modifier, q, k and v stored in that type.
            String[] parts = mods[i].split("@");
            boolean half = parts[0].equals("BF16") || parts[0].equals("F16");
            Attention attention = Attention.sparse(AttentionBenchmark.spec(pattern)).on(be).withScoreMod(ScoreModBenchmark.mod(half ? "none" : parts[0], heads));
            if (parts.length > 1) {
                String[] sizes = parts[1].split("x");
                attention = attention.withBlockSizes(Integer.parseInt(sizes[0]), Integer.parseInt(sizes[1]));
            }
            attention.layouts(heads, n, n);
            Attention call = attention;
            io.tessera.tensor.ElementType type = half ? io.tessera.tensor.ElementType.valueOf(parts[0]) : io.tessera.tensor.ElementType.F32;
            Tensor qi = half ? q.to(arena, type) : q, ki = half ? k.to(arena, type) : k, vi = half ? v.to(arena, type) : v;
            calls[i] = () -> call.forward(qi, ki, vi, out);
        }
        return calls;
    }

    public static void main(String[] args) throws Exception {
        int n = 4096, threads = 1;
        double seconds = 20;
        String pattern = "dense", base = null;
        List<String> mods = new ArrayList<>();
        for (String a : args) {
            if (a.startsWith("n=")) n = Integer.parseInt(a.substring(2));
            else if (a.startsWith("pattern=")) pattern = a.substring(8);
            else if (a.startsWith("seconds=")) seconds = Double.parseDouble(a.substring(8));
            else if (a.startsWith("threads=")) threads = Integer.parseInt(a.substring(8));
            else if (a.startsWith("base=")) base = a.substring(5);
            else mods.add(a);
        }
        if (mods.isEmpty()) mods = List.of("none", "alibi", "softcap", "alibi+softcap");
        String[] modArray = mods.toArray(String[]::new);
        List<String> labels = new ArrayList<>();
        List<Runnable> all = new ArrayList<>(List.of(calls(n, pattern, threads, modArray)));
        for (String m : mods) labels.add(base == null ? m : "new " + m);
        if (base != null) {
            // The other engine first, then this jar (the probe class and everything else).
            java.net.URL self = ForwardProbe.class.getProtectionDomain().getCodeSource().getLocation();
            ClassLoader loader = new java.net.URLClassLoader(new java.net.URL[] {Path.of(base).toUri().toURL(), self}, ClassLoader.getPlatformClassLoader());
            Runnable[] other = (Runnable[]) loader.loadClass(ForwardProbe.class.getName()).getMethod("calls", int.class, String.class, int.class, String[].class)
                    .invoke(null, n, pattern, threads, modArray);
            all.addAll(List.of(other));
            for (String m : mods) labels.add("base " + m);
        }
        int heads = AttentionBenchmark.HEADS, dim = 64, count = all.size();
        Runnable[] calls = all.toArray(Runnable[]::new);
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        {
            // Warm-up by this thread's CPU time, not wall time: on a loaded machine 5 wall seconds were
            // 1 CPU second, and the first measured calls still ran before C2 (100 MB allocated per call).
            long warmUp = (long) (Math.min(5, seconds / 4) * 1e9), cpu0 = mx.getCurrentThreadCpuTime();
            do for (Runnable call : calls) call.run(); while (mx.getCurrentThreadCpuTime() - cpu0 < warmUp);
            com.sun.management.ThreadMXBean alloc = (com.sun.management.ThreadMXBean) mx;
            long[] bytes = new long[count];
            for (int i = 0; i < count; i++) {
                long a0 = alloc.getCurrentThreadAllocatedBytes();
                calls[i].run();
                bytes[i] = alloc.getCurrentThreadAllocatedBytes() - a0;
            }
            List<double[]> cpu = new ArrayList<>(), wall = new ArrayList<>();
            long end = System.nanoTime() + (long) (seconds * 1e9);
            while (cpu.size() < 3 || (System.nanoTime() < end && cpu.size() < 400)) {
                double[] c = new double[count], w = new double[count];
                for (int i = 0; i < count; i++) {
                    long c0 = mx.getCurrentThreadCpuTime(), t0 = System.nanoTime();
                    calls[i].run();
                    w[i] = (System.nanoTime() - t0) / 1e6;
                    c[i] = (mx.getCurrentThreadCpuTime() - c0) / 1e6;
                }
                cpu.add(c);
                wall.add(w);
            }
            double peak = MachinePeak.measure(1).fmaGflops();
            double flops = 4.0 * n * n * dim * heads;
            System.out.printf(Locale.ROOT, "n=%d %s threads=%d rounds=%d, 1-thread FMA peak %.1f GFLOP/s%n", n, pattern, threads, cpu.size(), peak);
            double first = 0;
            for (int i = 0; i < count; i++) {
                double[] cs = column(cpu, i), ws = column(wall, i);
                if (i % mods.size() == 0) first = cs[0];
                double gflops = flops / (threads == 1 ? cs[0] : ws[0]) * 1e-6;
                System.out.printf(Locale.ROOT, "%-22s cpu min %8.1f med %8.1f | wall min %8.1f med %8.1f | %.3fx | %.1f GFLOP/s = %.1f %% of %d x peak | %d B allocated%n",
                        labels.get(i), cs[0], cs[cs.length / 2], ws[0], ws[ws.length / 2], cs[0] / first, gflops, 100 * gflops / (peak * threads), threads, bytes[i]);
            }
        }
    }

    private static double[] column(List<double[]> rounds, int i) {
        double[] c = rounds.stream().mapToDouble(r -> r[i]).toArray();
        Arrays.sort(c);
        return c;
    }
}
