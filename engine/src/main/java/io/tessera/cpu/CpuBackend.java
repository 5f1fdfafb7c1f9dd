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

    /** Backward pass: dq rows of one (batch, head, query block). */
    abstract void queryBlockGradients(AttentionCall call, int b, int h, int qBlock);

    /** Backward pass: dk and dv rows of one (batch, key/value head, key block), summed over its query heads. */
    abstract void keyBlockGradients(AttentionCall call, int b, int hk, int kvBlock);

    /** Backward pass: dq, dk and dv of one (batch, key/value head) in a single pass over its key blocks. */
    abstract void headGradients(AttentionCall call, int b, int hk);

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
        }, call.segments());
        call.throwIfScoresOverflowed();
    }

    /**
     * Two schedules that give the same bits. With enough (batch, key/value head) pairs to keep every
     * thread busy, one item per pair computes dq, dk and dv in a single pass over its key blocks
     * (5 tile products per tile). Otherwise, for parallelism, key-major items write dk and dv and
     * query-major items write dq (7 tile products: the scores and dP are computed in both). Either
     * way every gradient row has exactly one writer, so no atomics are needed and the result is the
     * same for any thread count; dq adds its per-tile contributions in key-block order in both.
     */
    @Override
    public final void attentionBackward(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse,
                                        Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        AttentionCall call = AttentionCall.backward(q, k, v, layouts, scale, out, lse, dOut, dq, dk, dv);
        int heads = call.g.shape().heads(), kvHeads = call.g.shape().kvHeads();
        long pairs = (long) call.g.shape().batch() * kvHeads;
        if (threads == 1 || pairs >= 2L * threads) {
            int[] items = AttentionSchedule.heavyFirstHeads(call);
            run(items.length, i -> headGradients(call, items[i] / kvHeads, items[i] % kvHeads), call.segments());
            return;
        }
        int qBlocks = layouts.first().qBlocks(), kvBlocks = layouts.first().kvBlocks();
        int[] keyItems = AttentionSchedule.heavyFirstKeyMajor(call), queryItems = AttentionSchedule.heavyFirst(call);
        int keyCount = keyItems.length;
        run(Math.addExact(keyCount, queryItems.length), i -> {
            if (i < keyCount) {
                int item = keyItems[i], kvBlock = item % kvBlocks, bhk = item / kvBlocks;
                keyBlockGradients(call, bhk / kvHeads, bhk % kvHeads, kvBlock);
            } else {
                int item = queryItems[i - keyCount], qBlock = item % qBlocks, bh = item / qBlocks;
                queryBlockGradients(call, bh / heads, bh % heads, qBlock);
            }
        }, call.segments());
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
