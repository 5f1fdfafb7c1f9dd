package io.tessera.cache;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * Buffers of one decode shape, reused for every generated token: a page's partial output and
 * log-sum-exp, and the float64 running merge (max LSE, rescaled sum of weights, rescaled output).
 */
final class DecodeScratch {
    final Tensor pageOut, pageLse;   // [1, H, qLen, Dv], [1, H, qLen]
    final double[] max, sum, acc;    // per row; acc is row-major [H·qLen, Dv]

    DecodeScratch(Arena arena, int heads, int qLen, int valueDim) {
        pageOut = Tensor.zeros(arena, 1, heads, qLen, valueDim);
        pageLse = Tensor.zeros(arena, 1, heads, qLen);
        int rows = Math.multiplyExact(heads, qLen);
        max = new double[rows];
        sum = new double[rows];
        acc = new double[Math.multiplyExact(rows, valueDim)];
    }
}
