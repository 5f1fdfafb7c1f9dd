package io.tessera.cpu;

import io.tessera.backend.Backend;

import io.tessera.layout.HeadLayouts;
import io.tessera.tensor.Tensor;

/**
 * What the scalar and SIMD backends share: validation, the heavy-first schedule and the worker
 * pool. Subclasses supply the two per-item kernels.
 */
abstract sealed class CpuBackend implements Backend permits ScalarBackend, SimdBackend {
    protected final int threads;

    protected CpuBackend(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        this.threads = threads;
    }

    public int threads() { return threads; }

    /** Computes one (batch, head, query block) work item. */
    abstract void attentionItem(AttentionCall call, int b, int h, int qBlock);

    /** Computes one GEMM work item. */
    abstract void gemmItem(GemmCall call, int item);

    abstract int gemmItems(GemmCall call);

    @Override
    public final void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
        AttentionCall call = AttentionCall.of(q, k, v, layouts, scale, out, lse);
        int heads = call.g.shape().heads(), qBlocks = layouts.first().qBlocks();
        int[] items = AttentionSchedule.heavyFirst(call);
        run(items.length, i -> {
            int item = items[i];
            int qBlock = item % qBlocks, bh = item / qBlocks;
            attentionItem(call, bh / heads, bh % heads, qBlock);
        }, call.q, call.k, call.v, call.out, call.lse);
    }

    @Override
    public final void gemm(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta) {
        GemmCall call = GemmCall.of(a, transposeA, b, transposeB, c, alpha, beta);
        run(gemmItems(call), item -> gemmItem(call, item), call.a(), call.b(), call.c());
    }

    private void run(int count, WorkerPool.ItemTask task, java.lang.foreign.MemorySegment... touched) {
        if (threads == 1) {
            for (int i = 0; i < count; i++) task.run(i);
        } else {
            WorkerPool.of(threads).forEach(count, task, touched);
        }
    }

    @Override
    public String toString() { return name() + " (" + description() + ")"; }
}
