package io.tessera.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * {@code c = alpha·op(a)·op(b) + beta·c} on the device: the classic local-memory tiled GEMM, one
 * {@link #TILE}×{@link #TILE} work-group per output tile, each item one element. Transposes and
 * strides are folded into element strides ({@code op(a)[i][p] = a[aOff + i·aRow + p·aCol]}), so one
 * kernel serves every combination; ragged edges load zeros.
 */
final class GemmKernel {
    private GemmKernel() {}

    static final int TILE = 16;

    static final int M = 0, N = 1, K = 2;
    static final int A_OFF = 3, A_ROW = 4, A_COL = 5, B_OFF = 6, B_ROW = 7, B_COL = 8, C_OFF = 9, C_ROW = 10;
    static final int PARAMS = 11;
    /** Indices into coefficients. */
    static final int ALPHA = 0, BETA = 1;

    static void gemm(KernelContext ctx, FloatArray a, FloatArray b, FloatArray c, IntArray params, FloatArray coefficients) {
        float[] aTile = ctx.allocateFloatLocalArray(TILE * TILE);
        float[] bTile = ctx.allocateFloatLocalArray(TILE * TILE);
        int m = params.get(M), n = params.get(N), depth = params.get(K);
        int aOff = params.get(A_OFF), aRow = params.get(A_ROW), aCol = params.get(A_COL);
        int bOff = params.get(B_OFF), bRow = params.get(B_ROW), bCol = params.get(B_COL);
        int tx = ctx.localIdx, ty = ctx.localIdy;
        int j = ctx.groupIdx * TILE + tx;
        int i = ctx.groupIdy * TILE + ty;
        float sum = 0f;
        for (int p0 = 0; p0 < depth; p0 += TILE) {
            float x = 0f;
            if (i < m && p0 + tx < depth) {
                x = a.get(aOff + i * aRow + (p0 + tx) * aCol);
            }
            aTile[ty * TILE + tx] = x;
            float y = 0f;
            if (p0 + ty < depth && j < n) {
                y = b.get(bOff + (p0 + ty) * bRow + j * bCol);
            }
            bTile[ty * TILE + tx] = y;
            ctx.localBarrier();
            for (int p = 0; p < TILE; p++) {
                sum += aTile[ty * TILE + p] * bTile[p * TILE + tx];
            }
            ctx.localBarrier();
        }
        if (i < m && j < n) {
            int at = params.get(C_OFF) + i * params.get(C_ROW) + j;
            float beta = coefficients.get(BETA);
            float result = coefficients.get(ALPHA) * sum;
            // beta = 0 ignores c's old contents, NaNs included, as the Backend contract says.
            if (beta != 0f) {
                result += beta * c.get(at);
            }
            c.set(at, result);
        }
    }
}
