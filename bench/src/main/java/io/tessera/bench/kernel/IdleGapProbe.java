package io.tessera.bench.kernel;

import io.tessera.backend.Backend;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;

/**
 * The dense forward (B = 1, H = 8, D = 64) called the way the main job's harness calls it: every
 * call starts from an idle process (a pause, then a wait until the process's threads use less than
 * a quarter of a core over 2 ms, as {@code Interleaved.settle} does), so the pool's workers are
 * parked when the call begins. Per call it records the wall time; a second, synthetic call through
 * {@link Backend#forEachItem} with as many items as the forward (fixed arithmetic per item, about
 * the forward's per-item time) records when a worker thread started its first item, measured from
 * the call's start (the worker's start delay), and whether it ran on the caller's CPU.
 *
 * <p>{@code java ... io.tessera.bench.kernel.IdleGapProbe [n=1024] [threads=2] [gap=20] [rounds=200] [base=engine.jar]}:
 * with {@code base}, the same calls on that engine jar too (its own class loader), alternated with
 * this build's call by call (the order swapped every round): an A/B of two engine versions under
 * the same load. {@code gap=0} calls back to back (no pause, no idle wait).
 */
public final class IdleGapProbe {
    private IdleGapProbe() {}

    /** The forward's items per head at n = 1024 (query blocks of 128 rows at 512-bit vectors). */
    private static final int ITEMS_PER_HEAD_AT_1024 = 8;

    private static final MethodHandle SCHED_GETCPU = schedGetCpu();

    private static MethodHandle schedGetCpu() {
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("sched_getcpu").map(a -> linker.downcallHandle(a, FunctionDescriptor.of(ValueLayout.JAVA_INT))).orElse(null);
        } catch (RuntimeException | Error e) {
            return null;
        }
    }

    private static int cpu() {
        try {
            return SCHED_GETCPU == null ? -1 : (int) SCHED_GETCPU.invokeExact();
        } catch (Throwable t) {
            return -1;
        }
    }

    /**
     * The forward call (returns its wall milliseconds) and the synthetic pool call (returns wall
     * milliseconds, the worker's start delay in milliseconds or NaN if no worker ran an item, and 1
     * if the worker's first item ran on the caller's CPU) with this class loader's engine; public
     * so that {@code main} can call it reflectively in a loader that puts another engine jar first.
     */
    public static List<Supplier<double[]>> calls(int n, int threads) {
        int heads = AttentionBenchmark.HEADS;
        Runnable call = ForwardProbe.calls(n, "dense", threads, new String[] {"none"})[0];
        Supplier<double[]> forward = () -> {
            long t0 = System.nanoTime();
            call.run();
            return new double[] {(System.nanoTime() - t0) * 1e-6};
        };
        Backend be = Backend.named("simd").withThreads(threads);
        MemorySegment shared = Arena.ofAuto().allocate(8);
        int items = heads * Math.max(1, ITEMS_PER_HEAD_AT_1024 * n / 1024);
        // Each synthetic item's work grows like the forward's per item (n keys per query row).
        int work = 100 * n;
        long[] firstWorkerStart = new long[1];
        int[] workerCpu = new int[1];
        float[] sink = new float[threads];
        Supplier<double[]> pool = () -> {
            Thread caller = Thread.currentThread();
            firstWorkerStart[0] = Long.MAX_VALUE;
            workerCpu[0] = -2;
            int callerCpu = cpu();
            long t0 = System.nanoTime();
            be.forEachItem(items, item -> {
                long start = System.nanoTime();
                if (Thread.currentThread() != caller) {
                    synchronized (firstWorkerStart) {
                        if (start < firstWorkerStart[0]) {
                            firstWorkerStart[0] = start;
                            workerCpu[0] = cpu();
                        }
                    }
                }
                float x = item;
                for (int i = 0; i < work; i++) x = x * 0.999f + 1f;
                sink[0] += x;
            }, shared);
            long t1 = System.nanoTime();
            double delay = firstWorkerStart[0] == Long.MAX_VALUE ? Double.NaN : (firstWorkerStart[0] - t0) * 1e-6;
            return new double[] {(t1 - t0) * 1e-6, delay, workerCpu[0] == callerCpu ? 1 : 0};
        };
        return List.of(forward, pool);
    }

    private static final com.sun.management.OperatingSystemMXBean OS = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    /** The harness's wait: the pause, then until the process uses less than a quarter of a core over 2 ms (at most 200 ms). */
    private static void settle(int gapMillis) throws InterruptedException {
        if (gapMillis == 0) return;
        Thread.sleep(gapMillis);
        long deadline = System.nanoTime() + 200_000_000L;
        while (System.nanoTime() < deadline) {
            long cpu = OS.getProcessCpuTime(), t0 = System.nanoTime();
            Thread.sleep(2);
            if (OS.getProcessCpuTime() - cpu < (System.nanoTime() - t0) / 4) return;
        }
    }

    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        int n = 1024, threads = 2, gap = 20, rounds = 200;
        String base = null;
        for (String a : args) {
            if (a.startsWith("n=")) n = Integer.parseInt(a.substring(2));
            else if (a.startsWith("threads=")) threads = Integer.parseInt(a.substring(8));
            else if (a.startsWith("gap=")) gap = Integer.parseInt(a.substring(4));
            else if (a.startsWith("rounds=")) rounds = Integer.parseInt(a.substring(7));
            else if (a.startsWith("base=")) base = a.substring(5);
            else throw new IllegalArgumentException("unknown argument '" + a + "'");
        }
        List<String> labels = new ArrayList<>(List.of(base == null ? "this" : "new"));
        List<List<Supplier<double[]>>> engines = new ArrayList<>();
        engines.add(calls(n, threads));
        if (base != null) {
            java.net.URL self = IdleGapProbe.class.getProtectionDomain().getCodeSource().getLocation();
            ClassLoader loader = new java.net.URLClassLoader(new java.net.URL[] {Path.of(base).toUri().toURL(), self}, ClassLoader.getPlatformClassLoader());
            engines.add((List<Supplier<double[]>>) loader.loadClass(IdleGapProbe.class.getName()).getMethod("calls", int.class, int.class).invoke(null, n, threads));
            labels.add("base");
        }
        int e = engines.size();
        // Warm-up back to back, then a few idle-gap calls so that the measured ones see steady code.
        long warmEnd = System.nanoTime() + 8_000_000_000L;
        while (System.nanoTime() < warmEnd) for (List<Supplier<double[]>> c : engines) { c.get(0).get(); c.get(1).get(); }
        double[][] fwd = new double[e][rounds], poolWall = new double[e][rounds], delay = new double[e][rounds], sameCpu = new double[e][rounds];
        for (int r = 0; r < rounds; r++) {
            for (int j = 0; j < e; j++) {
                int i = (r % 2 == 0) ? j : e - 1 - j;
                settle(gap);
                fwd[i][r] = engines.get(i).get(0).get()[0];
                settle(gap);
                double[] p = engines.get(i).get(1).get();
                poolWall[i][r] = p[0];
                delay[i][r] = p[1];
                sameCpu[i][r] = p[2];
            }
        }
        System.out.printf(Locale.ROOT, "n=%d threads=%d gap=%d ms rounds=%d, load %s%n", n, threads, gap, rounds,
                String.format(Locale.ROOT, "%.2f", OS.getSystemLoadAverage()));
        for (int i = 0; i < e; i++) {
            double same = Arrays.stream(sameCpu[i]).sum() / rounds;
            System.out.printf(Locale.ROOT, "%-5s forward ms %s | pool ms %s | worker delay ms %s | worker on caller's cpu %.0f %%%n",
                    labels.get(i), summary(fwd[i]), summary(poolWall[i]), summary(delay[i]), 100 * same);
        }
    }

    /** min / p25 / median / p75 / p90 of the finite values. */
    private static String summary(double[] values) {
        double[] v = Arrays.stream(values).filter(Double::isFinite).sorted().toArray();
        if (v.length == 0) return "-";
        return String.format(Locale.ROOT, "min %5.2f p25 %5.2f med %5.2f p75 %5.2f p90 %5.2f", v[0], v[v.length / 4], v[v.length / 2], v[v.length * 3 / 4], v[v.length * 9 / 10]);
    }
}
