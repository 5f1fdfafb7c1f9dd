package io.tessera.bench.kernel;

import io.tessera.attention.Attention;
import io.tessera.pattern.MaskFunction;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * What a TornadoVM row of the benchmark must pass before it is timed, in its own JMH fork (the
 * parent JVM runs without TornadoVM): the fork runs with TornadoVM's silent fallback to sequential
 * Java disabled ({@code -Dtornado.recover.bailout=False}, so a kernel the device cannot run throws
 * instead of being timed as Java), and the row's own call (same tensors, same execution plan as
 * the measurement) matches the float64 oracle within the EXACT tolerance on a sample of its query
 * rows in every head (the whole n×n oracle would take minutes at n = 4096).
 */
public final class DeviceRowCheck {
    private DeviceRowCheck() {}

    /** Rows checked per call: spread over the sequence, both ends included. */
    static final int SAMPLED_ROWS = 12;

    /**
     * Runs {@code attention} once into {@code out} and throws IllegalStateException, naming the row,
     * if the fork may fall back silently or a sampled row misses the oracle.
     */
    public static void verify(Attention attention, String pattern, Tensor q, Tensor k, Tensor v, Tensor out) {
        String bailout = System.getProperty("tornado.recover.bailout");
        if (!"false".equalsIgnoreCase(bailout)) {
            throw new IllegalStateException("a TornadoVM row must run with -Dtornado.recover.bailout=False (got " + bailout
                    + "): otherwise a kernel the device cannot compile runs as sequential Java and is timed as the device");
        }
        attention.forward(q, k, v, out);
        int n = (int) q.size(2), kvLen = (int) k.size(2);
        MaskFunction mask = AttentionBenchmark.pattern(pattern).asMask(n, kvLen);
        try (Arena arena = Arena.ofConfined()) {
            for (int s = 0; s < SAMPLED_ROWS; s++) {
                int row = (int) ((long) s * (n - 1) / (SAMPLED_ROWS - 1));
                Tensor qRow = q.slice(2, row, row + 1).contiguous(arena);
                MaskFunction rowMask = (b, h, i, j) -> mask.allowed(b, h, row + i, j);
                DenseReference.Result oracle = DenseReference.attention(qRow, k, v, rowMask, Double.NaN);
                double error = Tolerance.maxError(out.slice(2, row, row + 1).contiguous(arena), oracle.output());
                double tolerance = Tolerance.exact(qRow, k, v, rowMask, Double.NaN, oracle).output();
                if (!(error <= tolerance)) {
                    throw new IllegalStateException("backend '" + attention.backend().name() + "' misses the float64 oracle on " + pattern
                            + " n=" + n + ", query row " + row + ": max error " + error + " > EXACT tolerance " + tolerance);
                }
            }
        }
    }
}
