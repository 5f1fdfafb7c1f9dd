package io.tessera.bench.report;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * What the machine the benchmarks ran on can do, measured from Java in the same run: the float32
 * FMA peak through the Vector API and the memory bandwidth of a STREAM-style triad. The report
 * divides each case's effective GFLOP/s by the peak at its thread count (its efficiency).
 *
 * <p>Both are best-of-several short runs after a warm-up, so they are what this JVM reaches on this
 * machine right now (other load included), not the vendor's figure.
 *
 * @param threads         threads used for the measurement
 * @param fmaGflops       float32 GFLOP/s of independent FMA chains in every thread (2 FLOPs per lane)
 * @param triadGBytesPerS bytes moved per second by {@code a[i] = b[i] + s·c[i]}, counted as STREAM
 *                        does (two loads and a store of 4 bytes per element)
 * @param vectorBits      width of the species used
 */
public record MachinePeak(int threads, double fmaGflops, double triadGBytesPerS, int vectorBits) {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    /** Independent accumulators: enough to cover FMA latency (4–5 cycles) on two FMA ports. */
    private static final int CHAINS = 12;
    private static final int FMA_ROUNDS = 30_000_000;
    /** Triad arrays of 8 Mi floats (32 MiB each, 96 MiB in all): far beyond any last-level cache here. */
    private static final int TRIAD_LENGTH = 8 << 20;
    private static final int REPEATS = 5;

    /** Measures with {@code threads} threads (the whole measurement takes about a second or two). */
    public static MachinePeak measure(int threads) throws Exception {
        return measure(threads, FMA_ROUNDS, TRIAD_LENGTH, REPEATS);
    }

    private static final java.util.Map<Integer, MachinePeak> MEASURED = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * The peak at {@code threads} threads measured once per run: every section of the main job
     * divides by the same figures, so their efficiency columns compare. The best of {@link #READINGS}
     * measurements {@link #READING_GAP_MS} ms apart: the host here has phases of seconds, and one
     * reading in a disturbed second (2 threads: FMA 282.7 GFLOP/s, triad 18.1 GB/s, against 409.2
     * and 51.9 in the run before) made every efficiency column of that report meaningless.
     */
    public static MachinePeak measuredOnce(int threads) throws Exception {
        MachinePeak peak = MEASURED.get(threads);
        if (peak == null) {
            peak = measure(threads);
            for (int r = 1; r < READINGS; r++) {
                Thread.sleep(READING_GAP_MS);
                peak = peak.best(measure(threads));
            }
            MEASURED.put(threads, peak);
        }
        return peak;
    }

    static final int READINGS = 3;
    static final int READING_GAP_MS = 1000;

    /** The higher FMA rate and the higher triad bandwidth of this reading and {@code other} (same threads and width). */
    public MachinePeak best(MachinePeak other) {
        if (other.threads != threads || other.vectorBits != vectorBits) {
            throw new IllegalArgumentException("readings differ in threads or width: " + this + " vs " + other);
        }
        return new MachinePeak(threads, Math.max(fmaGflops, other.fmaGflops), Math.max(triadGBytesPerS, other.triadGBytesPerS), vectorBits);
    }

    /** The same at other sizes (the tests use small ones: the numbers are then rough). */
    public static MachinePeak measure(int threads, int fmaRounds, int triadLength, int repeats) throws Exception {
        if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        if (fmaRounds < 1) throw new IllegalArgumentException("fmaRounds must be >= 1, got " + fmaRounds);
        if (triadLength < threads) throw new IllegalArgumentException("triadLength must be >= threads (" + threads + "), got " + triadLength);
        if (repeats < 1) throw new IllegalArgumentException("repeats must be >= 1, got " + repeats);
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "tessera-peak");
            t.setDaemon(true);
            return t;
        });
        try {
            return new MachinePeak(threads, fma(pool, threads, fmaRounds, repeats), triad(pool, threads, triadLength, repeats), SPECIES.vectorBitSize());
        } finally {
            pool.shutdownNow();
        }
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "FMA peak %.1f GFLOP/s (float32, %d-bit Vector API, %d thread%s); memory %.1f GB/s (STREAM triad, %d thread%s)",
                fmaGflops, vectorBits, threads, threads == 1 ? "" : "s", triadGBytesPerS, threads, threads == 1 ? "" : "s");
    }

    private static double fma(ExecutorService pool, int threads, int rounds, int repeats) throws Exception {
        double best = 0;
        int calls = Math.ceilDiv(rounds, ROUNDS_PER_CALL), perCall = Math.ceilDiv(rounds, calls) + 1 & ~1;
        for (int i = 0; i < 2000; i++) fmaRounds(Math.min(perCall, 2_000));   // JIT warm-up: C2 compiles fmaRounds on its own
        for (int r = 0; r < repeats; r++) {
            long t0 = System.nanoTime();
            runAll(pool, threads, i -> {
                float sink = 0;
                for (int call = 0; call < calls; call++) sink += fmaRounds(perCall);
                return sink;
            });
            double seconds = (System.nanoTime() - t0) * 1e-9;
            double flops = 2.0 * SPECIES.length() * CHAINS * (double) perCall * calls * threads;
            best = Math.max(best, flops / seconds * 1e-9);
        }
        return best;
    }

    /*
     * How the FMA loop is run matters as much as the loop. Measured on an AVX2 Zen 3 (JDK 25): one
     * call of 30 M rounds runs on-stack-replacement code, where the vectors live across the OSR entry
     * and are not scalarized: 57 GFLOP/s per core, 40 % under what the attention micro-kernels reach.
     * Inlined into a caller's loop it measured 45–76. Called in chunks as a method of its own (C2 inlines
     * methods up to 325 bytecodes, so the loop is unrolled twice to stay above that) it reaches 95,
     * which is 2 FMAs per cycle at the clock the kernels run at. Accumulators are the FMA's addend, as
     * in the kernels (acc = x·y + acc).
     */
    private static final int ROUNDS_PER_CALL = 20_000;

    /** CHAINS independent dependency chains of FMAs, rounds (even) per chain; returns a value depending on all so none is dead code. */
    static float fmaRounds(int rounds) {
        FloatVector a = FloatVector.broadcast(SPECIES, 0.999999f), b = FloatVector.broadcast(SPECIES, 1e-7f);
        FloatVector c0 = FloatVector.broadcast(SPECIES, 1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0,
                c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (int i = 0; i < rounds; i += 2) {
            c0 = a.fma(b, c0); c1 = a.fma(b, c1); c2 = a.fma(b, c2); c3 = a.fma(b, c3);
            c4 = a.fma(b, c4); c5 = a.fma(b, c5); c6 = a.fma(b, c6); c7 = a.fma(b, c7);
            c8 = a.fma(b, c8); c9 = a.fma(b, c9); c10 = a.fma(b, c10); c11 = a.fma(b, c11);
            c0 = a.fma(b, c0); c1 = a.fma(b, c1); c2 = a.fma(b, c2); c3 = a.fma(b, c3);
            c4 = a.fma(b, c4); c5 = a.fma(b, c5); c6 = a.fma(b, c6); c7 = a.fma(b, c7);
            c8 = a.fma(b, c8); c9 = a.fma(b, c9); c10 = a.fma(b, c10); c11 = a.fma(b, c11);
        }
        FloatVector sum = c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11);
        return sum.lane(0);
    }

    private static double triad(ExecutorService pool, int threads, int length, int repeats) throws Exception {
        float[] a = new float[length], b = new float[length], c = new float[length];
        java.util.Arrays.fill(b, 1f);
        java.util.Arrays.fill(c, 2f);
        int chunk = Math.ceilDiv(length, threads);
        runAll(pool, threads, t -> triadRange(a, b, c, 0.5f, Math.min(length, t * chunk), Math.min(length, (t + 1) * chunk)));   // warm-up, first touch
        double best = 0;
        for (int r = 0; r < repeats; r++) {
            long t0 = System.nanoTime();
            runAll(pool, threads, t -> triadRange(a, b, c, 0.5f, Math.min(length, t * chunk), Math.min(length, (t + 1) * chunk)));
            double seconds = (System.nanoTime() - t0) * 1e-9;
            best = Math.max(best, 3.0 * Float.BYTES * length / seconds * 1e-9);
        }
        for (int i = 0; i < length; i++) {
            if (a[i] != 2f) throw new IllegalStateException("triad computed a[" + i + "] = " + a[i] + ", expected 1 + 0.5·2 = 2");
        }
        return best;
    }

    static float triadRange(float[] a, float[] b, float[] c, float s, int from, int to) {
        int i = from;
        FloatVector scale = FloatVector.broadcast(SPECIES, s);
        for (int upper = from + SPECIES.loopBound(to - from); i < upper; i += SPECIES.length()) {
            FloatVector.fromArray(SPECIES, c, i).fma(scale, FloatVector.fromArray(SPECIES, b, i)).intoArray(a, i);
        }
        for (; i < to; i++) a[i] = b[i] + s * c[i];
        return to > from ? a[to - 1] : 0;
    }

    private interface Work { float run(int thread); }

    private static void runAll(ExecutorService pool, int threads, Work work) throws Exception {
        List<Future<Float>> futures = new ArrayList<>(threads);
        for (int t = 0; t < threads; t++) {
            int thread = t;
            futures.add(pool.submit((Callable<Float>) () -> work.run(thread)));
        }
        for (Future<Float> f : futures) f.get();
    }
}
