package io.tessera.bench.kernel;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.pattern.MaskFunction;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * What a TornadoVM row of the benchmark must pass before it is timed, in its own JMH fork (the
 * parent JVM runs without TornadoVM): the fork runs with TornadoVM's silent fallback to sequential
 * Java disabled ({@code -Dtornado.recover.bailout=False}, so a kernel the device cannot run throws
 * instead of being timed as Java), and the row's pattern on that backend matches the float64
 * oracle within the EXACT tolerance on a small input (n = 384, the main job's oracle-check size).
 */
public final class DeviceRowCheck {
    private DeviceRowCheck() {}

    /** Throws IllegalStateException, naming the row, if the fork may fall back silently or the backend misses the oracle. */
    public static void verify(Backend backend, String pattern) {
        String bailout = System.getProperty("tornado.recover.bailout");
        if (!"false".equalsIgnoreCase(bailout)) {
            throw new IllegalStateException("a TornadoVM row must run with -Dtornado.recover.bailout=False (got " + bailout
                    + "): otherwise a kernel the device cannot compile runs as sequential Java and is timed as the device");
        }
        int n = 384, h = 2, d = 64;
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.randomNormal(arena, 11, 1f, 1, h, n, d), k = Tensor.randomNormal(arena, 12, 1f, 1, h, n, d);
            Tensor v = Tensor.randomNormal(arena, 13, 1f, 1, h, n, d);
            MaskFunction mask = AttentionBenchmark.pattern(pattern).asMask(n, n);
            AttentionResult r = Attention.sparse(AttentionBenchmark.spec(pattern)).on(backend).forwardWithLse(arena, q, k, v);
            DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, Double.NaN);
            double error = Tolerance.maxError(r.output(), oracle.output()), tolerance = Tolerance.exact(q, k, v, mask, Double.NaN, oracle).output();
            if (!(error <= tolerance)) {
                throw new IllegalStateException("backend '" + backend.name() + "' misses the float64 oracle on " + pattern + " n=" + n
                        + ": max error " + error + " > EXACT tolerance " + tolerance);
            }
        }
    }
}
