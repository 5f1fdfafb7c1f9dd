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
 * Peak extra memory of one training step, run in a JVM of its own so nothing else is resident:
 * inputs, outputs and gradients are allocated and touched, then one step warms up (JIT, scratch,
 * the library's caches), then the kernel's peak-RSS counter is reset and a second step runs.
 * Printed: {@code VmHWM(second step) − VmRSS(after allocating the tensors)} in bytes, i.e. what a
 * steady training step holds beyond its tensors (retained scratch and caches included), or −1
 * where Linux's counters are not available.
 *
 * <p>Usage: {@code MemoryProbe ENGINE PATTERN N THREADS} with ENGINE {@code tessera} or a peer id.
 */
public final class MemoryProbe {
    private MemoryProbe() {}

    public static void main(String[] args) throws Exception {
        String engine = args[0], pattern = args[1];
        int n = Integer.parseInt(args[2]), threads = Integer.parseInt(args[3]), h = AttentionBenchmark.HEADS, d = 64;
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, h, n, d), k = Tensor.randomNormal(arena, 2, 1f, 1, h, n, d);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, h, n, d), dOut = Tensor.randomNormal(arena, 4, 1f, 1, h, n, d);
            Runnable step;
            if (engine.equals("tessera")) {
                Tensor out = Tensor.zeros(arena, 1, h, n, d), lse = Tensor.zeros(arena, 1, h, n);
                Tensor dq = Tensor.zeros(arena, 1, h, n, d), dk = Tensor.zeros(arena, 1, h, n, d), dv = Tensor.zeros(arena, 1, h, n, d);
                Attention attention = Attention.sparse(AttentionBenchmark.spec(pattern)).on(Backend.named("simd").withThreads(threads));
                step = () -> {
                    attention.forwardWithLse(q, k, v, out, lse);
                    attention.backward(q, k, v, out, lse, dOut, dq, dk, dv);
                };
            } else {
                TrainingPeer peer = TrainingSection.trainingPeer(PeerBenchmark.find(engine));
                peer.prepare(h, n, d, q.toArray(), k.toArray(), v.toArray(), PeerBenchmark.mask(pattern, n), threads);
                peer.prepareGradient(dOut.toArray());
                step = () -> {
                    try {
                        peer.step();
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                };
            }
            System.gc();
            long before = status("VmRSS");
            step.run();
            boolean reset = resetPeak();
            step.run();
            long peak = status("VmHWM");
            System.out.println(before < 0 || peak < 0 || !reset ? -1 : Math.max(0, peak - before));
        }
    }

    /** Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0). */
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
