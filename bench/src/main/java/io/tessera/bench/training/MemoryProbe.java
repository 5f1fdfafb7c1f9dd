package io.tessera.bench.training;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.bench.kernel.AttentionBenchmark;
import io.tessera.bench.peers.PeerBenchmark;
import io.tessera.bench.peers.TrainingPeer;
import io.tessera.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Peak extra memory of one training step, run in a JVM of its own so nothing else is resident: steps
 * on a small input of the same pattern (until their heap garbage has stopped) warm up the code (JIT compilation, the library's
 * one-time initialisation, Tessera's per-thread scratch, which depends on block sizes and head
 * dimension, not on n), then the real inputs, outputs and gradients are allocated and touched, the
 * C heap's free memory goes back to the system ({@link #trimNativeHeap}), the kernel's peak-RSS
 * counter is reset, and one step runs. Printed, in bytes: {@code VmHWM − VmRSS}
 * before the step, plus what the step allocated on the Java heap (which the RSS peak cannot see, the
 * heap's pages being resident already) — everything the step holds at its peak beyond its tensors,
 * except Tessera's per-thread scratch of block-sized arrays (about 0.25 MiB per thread, resident since
 * the warm-up) — or −1 where Linux's counters are not available.
 *
 * <p>Usage: {@code MemoryProbe ENGINE PATTERN N THREADS} with ENGINE {@code tessera} or a peer id.
 */
public final class MemoryProbe {
    private MemoryProbe() {}

    public static void main(String[] args) throws Exception {
        String engine = args[0], pattern = args[1];
        int n = Integer.parseInt(args[2]), threads = Integer.parseInt(args[3]);
        try (Arena arena = Arena.ofShared()) {
            // Warm-up until the JIT has compiled the kernels: cold Vector API code allocates a vector
            // object per operation, garbage no steady step makes.
            // A second, longer size: the code of long rows has to be compiled too. The backward keeps a
            // head's transposed rows in the thread's head cache when they fit (n = 512) and streams them
            // otherwise (n = 16,384, as at 65,536); warmed at 512 only, the streaming path ran cold in
            // the measured step and its garbage read as 72 MiB, and Tessera's dense n = 4096 read 142 MiB
            // in some runs instead of its usual 14–15. Tessera from n = 2048 at n/2: its buffers are Java
            // arrays, counted by allocation (a larger n's are new arrays, counted in full). A peer only
            // beyond 16,384: its native buffers, freed after a warm-up at n/2 but still resident, hid the
            // measured step's (SDPA's dense 4096 read 0.0 MiB instead of 21). Never at the measured size
            // itself: the step's own scratch would then be resident before the measurement and not count.
            Runnable warm = step(arena, engine, pattern, Math.min(n, 512), threads);
            int longSize = n > 16384 ? 16384 : engine.equals("tessera") && n > 1024 ? n / 2 : 0;
            Runnable warmLong = longSize > 0 ? step(arena, engine, pattern, longSize, threads) : () -> { };
            // Until the steps' garbage has stopped: neither a count (a 200-step cap ended it after half a
            // second at n = 512, before C2 had compiled the kernels, and the measured step's boxing
            // garbage read as 60–110 MiB) nor a fixed time (8 s were not enough with two other probes on
            // the two cores: 89 MiB). Compiled steps allocate a few KiB; 16 of them in a row (two
            // rounds of the long size too) under STEADY_BYTES each, after at least 2 s, end it.
            long start = System.nanoTime();
            for (int i = 0, steady = 0; ; i++) {
                long heap = allocatedHeapBytes();
                warm.run();
                // The long size only after a second of the short one: its first call, on cold code, took
                // 5.3 s of a 23 s probe at 16,384 (window256, 2 threads), 4.7 GB of boxed vectors.
                if (i % 8 == 0 && System.nanoTime() - start >= 1_000_000_000L) warmLong.run();
                steady = allocatedHeapBytes() - heap < STEADY_BYTES ? steady + 1 : 0;
                long elapsed = System.nanoTime() - start;
                if (steady >= 16 && elapsed >= 2_000_000_000L) break;
                if (elapsed >= 90_000_000_000L) {   // never compiled: say so rather than print garbage
                    System.out.println(-1);
                    return;
                }
            }
            Runnable step = step(arena, engine, pattern, n, threads);
            System.gc();
            trimNativeHeap();
            boolean reset = resetPeak();
            long before = status("VmRSS"), heapBefore = allocatedHeapBytes();
            step.run();
            long peak = status("VmHWM"), heap = allocatedHeapBytes() - heapBefore;
            // Java arrays land in heap pages the warm-up already made resident, which the RSS peak cannot
            // see: what the step allocated on the heap (an upper bound: it counts garbage too) is added.
            System.out.println(before < 0 || peak < 0 || !reset ? -1 : Math.max(0, peak - before) + heap);
        }
    }

    /** Allocates and touches the step's tensors; the returned step allocates nothing of them. */
    private static Runnable step(Arena arena, String engine, String pattern, int n, int threads) throws Exception {
        int h = AttentionBenchmark.HEADS, d = 64;
        Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, h, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, h, n, d);
        Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, h, n, d), dOut = Tensor.randomNormal(arena, 4, 1f, 1, h, n, d);
        if (engine.equals("tessera")) {
            Tensor out = Tensor.zeros(arena, 1, h, n, d), lse = Tensor.zeros(arena, 1, h, n);
            Tensor dq = Tensor.zeros(arena, 1, h, n, d), dk = Tensor.zeros(arena, 1, h, n, d), dv = Tensor.zeros(arena, 1, h, n, d);
            Attention attention = Attention.sparse(AttentionBenchmark.spec(pattern)).on(Backend.named("simd").withThreads(threads));
            return () -> {
                attention.forwardWithLse(q, k, v, out, lse);
                attention.backward(q, k, v, out, lse, dOut, dq, dk, dv);
            };
        }
        TrainingPeer peer = TrainingSection.trainingPeer(PeerBenchmark.find(engine));
        peer.prepare(h, n, d, q.toArray(), k.toArray(), v.toArray(), PeerBenchmark.mask(pattern, n), threads);
        peer.prepareGradient(dOut.toArray());
        return () -> {
            try {
                peer.step();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        };
    }

    /** A warm-up step allocating less than this on the heap runs compiled code (cold Vector API code allocates MiBs). */
    private static final long STEADY_BYTES = 256 << 10;

    /** Bytes allocated on the Java heap by every thread so far. */
    private static long allocatedHeapBytes() {
        return ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean()).getTotalThreadAllocatedBytes();
    }

    /** Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0). */
    /**
     * Returns the C heap's free memory to the system ({@code malloc_trim(0)}, glibc), so that what the
     * measured step allocates natively is new resident memory. Without it a peer's step could reuse
     * memory its setup or warm-up had freed but glibc still held (after a large block is freed glibc
     * raises its mmap threshold, and later blocks of that size come from the heap and stay there when
     * freed): PyTorch's dense step at n = 4096 read 0.0 MiB in some runs, 20.5–20.8 MiB in others.
     * Nothing happens where the C library has no {@code malloc_trim}.
     */
    private static void trimNativeHeap() {
        java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
        java.util.Optional<java.lang.foreign.MemorySegment> trim = linker.defaultLookup().find("malloc_trim");
        if (trim.isEmpty()) return;
        try {
            java.lang.invoke.MethodHandle call = linker.downcallHandle(trim.get(),
                    java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT, java.lang.foreign.ValueLayout.JAVA_LONG));
            int released = (int) call.invokeExact(0L);   // 1 when memory went back to the system
        } catch (Throwable e) {
            throw new IllegalStateException("malloc_trim failed", e);
        }
    }

    private static boolean resetPeak() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** A /proc/self/status field in bytes, or −1. */
    private static long status(String field) throws IOException {
        Path p = Path.of("/proc/self/status");
        if (!Files.isReadable(p)) return -1;
        for (String line : Files.readAllLines(p)) {
            if (line.startsWith(field + ":")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
        return -1;
    }
}
