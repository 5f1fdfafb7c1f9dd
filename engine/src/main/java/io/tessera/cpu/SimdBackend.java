package io.tessera.cpu;

import io.tessera.backend.Backend;
import io.tessera.backend.SparseAttentionDevice;
import io.tessera.layout.CsrMatrix;
import io.tessera.tensor.Tensor;

/**
 * The Vector API backend, multi-threaded over (batch, head, query block). This class names no
 * Vector API type in its signatures, so it can be loaded (and report itself unavailable) on a JVM
 * started without {@code --add-modules jdk.incubator.vector}.
 */
public final class SimdBackend extends CpuBackend implements SparseAttentionDevice {
    public SimdBackend() { this(Runtime.getRuntime().availableProcessors()); }

    public SimdBackend(int threads) { super(threads); }

    /** True when the incubating Vector API module is in the boot layer. */
    public static boolean vectorApiPresent() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    }

    @Override public String name() { return "simd"; }

    @Override
    public String description() {
        if (!vectorApiPresent()) return "unavailable: add --add-modules jdk.incubator.vector to the java command";
        return "Vector API, " + VectorConfig.describe() + ", " + threads + (threads == 1 ? " thread" : " threads");
    }

    @Override public boolean isAvailable() { return vectorApiPresent(); }

    @Override public int priority() { return 10; }

    @Override public Backend withThreads(int threads) { return new SimdBackend(threads); }

    @Override
    void attentionItem(AttentionCall call, int b, int h, int qBlock) {
        SimdAttentionKernel.queryBlock(call, b, h, qBlock);
    }

    @Override
    void queryBlockGradients(AttentionCall call, int b, int h, int qBlock) {
        SimdAttentionKernel.queryBlockGradients(call, b, h, qBlock);
    }

    @Override
    void keyBlockGradients(AttentionCall call, int b, int hk, int kvBlock) {
        SimdAttentionKernel.keyBlockGradients(call, b, hk, kvBlock, false);
    }

    @Override
    void headGradients(AttentionCall call, int b, int hk) {
        SimdAttentionKernel.headGradients(call, b, hk);
    }

    @Override
    int queryPadding() { return SimdAttentionKernel.GROUP; }

    @Override
    void decodeItem(DecodeCall call, int item) { SimdDecodeKernel.item(call, item); }

    @Override
    void gemmItem(GemmCall call, int item) { SimdGemm.item(call, item, threads); }

    @Override
    int gemmItems(GemmCall call) { return SimdGemm.items(call, threads); }

    /** Several lane groups per block share each K/V tile copy. */
    @Override public int preferredBlockQ() { return 4 * SimdAttentionKernel.GROUP; }

    /**
     * 64: the block size patterns are written in (BigBird, Longformer, Sparse Transformer), so their
     * tiles stay FULL. 96 (a multiple of the QKᵀ step) measured marginally faster on dense layouts
     * but turned BigBird's 64-blocks into PARTIAL tiles.
     */
    @Override public int preferredBlockKV() { return 64; }

    @Override
    public void sparseAttention(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        CpuSparseAttention.forward(threads, q, k, v, pattern, scale, out, lse);
    }
}
