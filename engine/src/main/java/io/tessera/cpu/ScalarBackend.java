package io.tessera.cpu;

import io.tessera.backend.Backend;
import io.tessera.backend.SparseAttentionDevice;
import io.tessera.layout.CsrMatrix;
import io.tessera.tensor.Tensor;

/** Plain Java loops: the readable reference backend. Single-threaded unless asked otherwise. */
public final class ScalarBackend extends CpuBackend implements SparseAttentionDevice {
    public ScalarBackend() { this(1); }

    public ScalarBackend(int threads) { super(threads); }

    @Override public String name() { return "scalar"; }

    @Override public String description() { return "plain Java loops, " + threads + (threads == 1 ? " thread" : " threads"); }

    @Override public boolean isAvailable() { return true; }

    @Override public int priority() { return 0; }

    @Override public Backend withThreads(int threads) { return new ScalarBackend(threads); }

    @Override
    void attentionItem(AttentionCall call, int b, int h, int qBlock) {
        ScalarAttentionKernel.queryBlock(call, b, h, qBlock);
    }

    @Override
    void queryBlockGradients(AttentionCall call, int b, int h, int qBlock) {
        ScalarAttentionKernel.queryBlockGradients(call, b, h, qBlock);
    }

    @Override
    void keyBlockGradients(AttentionCall call, int b, int hk, int kvBlock) {
        ScalarAttentionKernel.keyBlockGradients(call, b, hk, kvBlock, false);
    }

    @Override
    void headGradients(AttentionCall call, int b, int hk) {
        ScalarAttentionKernel.headGradients(call, b, hk);
    }

    @Override
    int queryPadding() { return 0; }

    @Override
    void decodeItem(DecodeCall call, int item) { ScalarDecodeKernel.item(call, item); }

    @Override
    void gemmItem(GemmCall call, int item) {
        int from = item * SCALAR_GEMM_ROWS;
        ScalarGemm.rows(call, from, Math.min(call.m(), from + SCALAR_GEMM_ROWS));
    }

    @Override
    int gemmItems(GemmCall call) { return (call.m() + SCALAR_GEMM_ROWS - 1) / SCALAR_GEMM_ROWS; }

    private static final int SCALAR_GEMM_ROWS = 32;

    @Override public int preferredBlockQ() { return 64; }

    @Override public int preferredBlockKV() { return 64; }

    @Override
    public void sparseAttention(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        CpuSparseAttention.forward(threads, q, k, v, pattern, scale, out, lse);
    }
}
