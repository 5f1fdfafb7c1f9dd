package io.tessera.bench.training;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.bench.kernel.AttentionBenchmark;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;

/**
 * A quick probe of the training step's halves for profiling and A/B work on a shared machine:
 * forward (with LSE) and backward of B = 1, H = 8, D = 64 at one size, pattern and thread count,
 * each timed as the minimum over repetitions of wall time and of process CPU time (CPU time is what
 * other engineers' jobs disturb least). Arguments: n pattern threads reps [backend].
 */
public final class TrainingStepProbe {
    private TrainingStepProbe() {}

    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 4096;
        String pattern = args.length > 1 ? args[1] : "dense";
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        int reps = args.length > 3 ? Integer.parseInt(args[3]) : 5;
        String backend = args.length > 4 ? args[4] : "simd";
        int heads = TrainingBenchmark.HEADS, d = 64;
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, heads, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, heads, n, d);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, heads, n, d), dOut = Tensor.randomNormal(arena, 4, 1f, 1, heads, n, d);
            Tensor out = Tensor.zeros(arena, 1, heads, n, d), lse = Tensor.zeros(arena, 1, heads, n);
            Tensor dq = Tensor.zeros(arena, 1, heads, n, d), dk = Tensor.zeros(arena, 1, heads, n, d), dv = Tensor.zeros(arena, 1, heads, n, d);
            Attention attention = Attention.sparse(AttentionBenchmark.spec(pattern)).on(Backend.named(backend).withThreads(threads));
            double fWall = Double.MAX_VALUE, fCpu = Double.MAX_VALUE, bWall = Double.MAX_VALUE, bCpu = Double.MAX_VALUE;
            // -Dprobe.jfr=file.jfr: a JFR profile of the repetitions after the first two (warm-up and compilation).
            String jfr = System.getProperty("probe.jfr");
            jdk.jfr.Recording recording = null;
            for (int r = 0; r < reps; r++) {
                if (jfr != null && r == 2) {
                    recording = new jdk.jfr.Recording(jdk.jfr.Configuration.getConfiguration("profile"));
                    recording.start();
                }
                long w0 = System.nanoTime(), c0 = os.getProcessCpuTime();
                attention.forwardWithLse(q, k, v, out, lse);
                long w1 = System.nanoTime(), c1 = os.getProcessCpuTime();
                attention.backward(q, k, v, out, lse, dOut, dq, dk, dv);
                long w2 = System.nanoTime(), c2 = os.getProcessCpuTime();
                fWall = Math.min(fWall, (w1 - w0) / 1e6);
                fCpu = Math.min(fCpu, (c1 - c0) / 1e6);
                bWall = Math.min(bWall, (w2 - w1) / 1e6);
                bCpu = Math.min(bCpu, (c2 - c1) / 1e6);
                System.out.printf("rep %d: forward %.1f ms (cpu %.1f), backward %.1f ms (cpu %.1f)%n", r, (w1 - w0) / 1e6, (c1 - c0) / 1e6,
                        (w2 - w1) / 1e6, (c2 - c1) / 1e6);
            }
            if (recording != null) {
                recording.stop();
                recording.dump(java.nio.file.Path.of(jfr));
            }
            System.out.printf("n=%d %s threads=%d: min forward %.1f ms (cpu %.1f), min backward %.1f ms (cpu %.1f), backward/forward cpu %.2f, checksum %s%n",
                    n, pattern, threads, fWall, fCpu, bWall, bCpu, bCpu / fCpu, dq.get(0, 0, n / 2, 0) + dk.get(0, 0, n / 3, 1) + dv.get(0, 0, n - 1, 2));
        }
    }
}
