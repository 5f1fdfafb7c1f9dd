package io.tessera.bench.decode;

import io.tessera.backend.Backend;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * A quick in-process probe of the decode step ({@link DecodeBenchmark}'s shape: B = 1, D = 128, 32
 * query heads over 8 KV heads, pages of 16, dense), for a loaded machine where JMH's averages are
 * noise: per cache type, the minimum over rounds of the step's wall time and of the CPU time all
 * threads of the process spent in it (ThreadMXBean), and beside it the same two for a plain
 * streaming read of the very K/V bytes the step reads, split over the same number of threads (the
 * floor a bandwidth-bound step would reach). Rounds alternate the types, so load changes hit
 * all of them alike. A ratio near 1 means the step is bound by memory; well above 1, by compute.
 *
 * <pre>java ... io.tessera.bench.decode.DecodeProbe [threads=2] [cacheLength=32768] [rounds=30] [types=F32,BF16]</pre>
 */
public final class DecodeProbe {
    private DecodeProbe() {}

    private static final int HEADS = DecodeBenchmark.HEADS, KV_HEADS = DecodeBenchmark.KV_HEADS, D = DecodeBenchmark.HEAD_DIM, PAGE = 16;
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    public static void main(String[] args) throws Exception {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        int length = args.length > 1 ? Integer.parseInt(args[1]) : 32768;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 30;
        String[] types = (args.length > 3 ? args[3] : "F32,BF16").split(",");
        if (threads < 1 || length < 1 || rounds < 1) throw new IllegalArgumentException("threads, cacheLength and rounds must be >= 1, got " + threads + ", " + length + ", " + rounds);
        ExecutorService readers = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "decode-probe-reader");
            t.setDaemon(true);
            return t;
        });
        try (Arena arena = Arena.ofShared()) {
            int n = types.length;
            KvCache[] caches = new KvCache[n];
            for (int i = 0; i < n; i++) caches[i] = filledCache(arena, ElementType.valueOf(types[i]), length);
            PagedAttention decode = PagedAttention.of(Pattern.full()).on(Backend.named("simd").withThreads(threads));
            Tensor q = Tensor.randomNormal(arena, 3, 1f, 1, HEADS, 1, D), out = Tensor.zeros(arena, 1, HEADS, 1, D);
            double[][] best = new double[n][4];   // step wall, step CPU, read wall, read CPU (ms)
            for (double[] b : best) java.util.Arrays.fill(b, Double.MAX_VALUE);
            int warmup = 10;
            for (int round = 0; round < warmup + rounds; round++) {
                for (int i = 0; i < n; i++) {
                    long cpu0 = processThreadsCpu(), t0 = System.nanoTime();
                    decode.forward(caches[i], 0, q, out, null);
                    long t1 = System.nanoTime(), cpu1 = processThreadsCpu();
                    long sink = DecodeBenchmark.plainRead(readers, threads, caches[i], new int[] {0}, length);
                    long t2 = System.nanoTime(), cpu2 = processThreadsCpu();
                    if (sink == 42) System.out.print("");   // keeps the reads alive
                    if (round < warmup) continue;
                    best[i][0] = Math.min(best[i][0], (t1 - t0) / 1e6);
                    best[i][1] = Math.min(best[i][1], (cpu1 - cpu0) / 1e6);
                    best[i][2] = Math.min(best[i][2], (t2 - t1) / 1e6);
                    best[i][3] = Math.min(best[i][3], (cpu2 - cpu1) / 1e6);
                }
            }
            System.out.printf(Locale.ROOT, "decode step, B=1, %d tokens, D=%d, %d/%d heads, pages of %d, %d thread(s), min of %d rounds%n", length, D, HEADS, KV_HEADS, PAGE, threads, rounds);
            for (int i = 0; i < n; i++) {
                long bytes = DecodeBenchmark.kvBytes(1, length, "dense", types[i]);
                System.out.printf(Locale.ROOT, "%-5s step %7.2f ms (%5.1f GB/s), CPU %7.2f ms | streaming read of its K/V %7.2f ms (%5.1f GB/s), CPU %7.2f ms | step/read: wall %.2f×, CPU %.2f×%n",
                        types[i], best[i][0], bytes / best[i][0] / 1e6, best[i][1], best[i][2], bytes / best[i][2] / 1e6, best[i][3], best[i][0] / best[i][2], best[i][1] / best[i][3]);
            }
            for (int i = 1; i < n; i++) {
                System.out.printf(Locale.ROOT, "%s step vs %s step: wall %.2f× faster, CPU %.2f× less%n", types[i], types[0], best[0][0] / best[i][0], best[0][1] / best[i][1]);
            }
        } finally {
            readers.shutdownNow();
        }
    }

    private static KvCache filledCache(Arena arena, ElementType type, int length) {
        KvCache cache = KvCache.allocate(arena, type, 1, (length + PAGE - 1) / PAGE, PAGE, KV_HEADS, D, D);
        for (int done = 0, chunk = 1024; done < length; done += chunk) {
            int count = Math.min(chunk, length - done);
            try (Arena tokens = Arena.ofConfined()) {
                cache.append(0, Tensor.randomNormal(tokens, 1 + done, 1f, 1, KV_HEADS, count, D), Tensor.randomNormal(tokens, 2 + done, 1f, 1, KV_HEADS, count, D));
            }
        }
        return cache;
    }

    /** CPU time of every live thread of the process (the step's workers, the readers, this one), in ns. */
    private static long processThreadsCpu() {
        long sum = 0;
        for (long id : THREADS.getAllThreadIds()) {
            long t = THREADS.getThreadCpuTime(id);
            if (t > 0) sum += t;
        }
        return sum;
    }
}
