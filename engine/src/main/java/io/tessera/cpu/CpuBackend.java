package io.tessera.cpu;

import io.tessera.backend.Backend;
import io.tessera.backend.GradientGeometry;
import io.tessera.backend.PagedAttentionDevice;
import io.tessera.layout.BlockLayout;
import io.tessera.layout.HeadLayouts;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.Tensor;
import java.util.List;

/**
 * What the scalar and SIMD backends share: validation, the heavy-first schedule and the worker
 * pool. Subclasses supply the two per-item kernels.
 */
abstract sealed class CpuBackend implements Backend, PagedAttentionDevice permits ScalarBackend, SimdBackend {
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

    /** Decode: one (split, key/value head) item of a paged-attention call. */
    abstract void decodeItem(DecodeCall call, int item);

    /** Computes one GEMM work item. */
    abstract void gemmItem(GemmCall call, int item);

    abstract int gemmItems(GemmCall call);

    /** Query rows past qLen the kernel may read modifier tables at (a SIMD kernel's padded lanes). */
    abstract int queryPadding();

    @Override
    public final void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
        forward(AttentionCall.of(q, k, v, layouts, scale, out, lse));
    }

    @Override
    public final void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, ScoreMod mod, Tensor out, Tensor lse) {
        forward(AttentionCall.of(q, k, v, layouts, scale, out, lse).withMods(mod, queryPadding()));
    }

    private void forward(AttentionCall call) {
        HeadLayouts layouts = call.layouts;
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
        backward(AttentionCall.backward(q, k, v, layouts, scale, out, lse, dOut, dq, dk, dv));
    }

    /**
     * The backward pass through a score modifier. A learnable table's gradient is summed without
     * atomics: every key-major item (batch, kv head, key block), whichever schedule runs it, adds
     * its scores' gradients into its own partial sums, rows then keys in order, in both kernels;
     * the partials are then added here in (batch, key block) order, the same for any thread count.
     */
    @Override
    public final void attentionBackward(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, ScoreMod mod, Tensor out, Tensor lse,
                                        Tensor dOut, Tensor dq, Tensor dk, Tensor dv, List<Tensor> dParameters) {
        AttentionCall call = AttentionCall.backward(q, k, v, layouts, scale, out, lse, dOut, dq, dk, dv);
        if (mod == null) {
            GradientGeometry.checkParameterGradients(null, dParameters, q, k, v, out, lse, dOut, dq, dk, dv);
            backward(call);
            return;
        }
        if (!mod.differentiable()) {
            throw new UnsupportedOperationException("score modifier " + mod + " has a function that declares no derivative; give one with ScoreMod.of(name, function, derivative)");
        }
        GradientGeometry.checkParameterGradients(mod, dParameters, q, k, v, out, lse, dOut, dq, dk, dv);
        call.withMods(mod, queryPadding());
        backward(call);
        ScoreMod.Plan plan = call.mods;
        int batch = call.g.shape().batch(), heads = call.g.shape().heads(), perKv = call.g.shape().queryHeadsPerKvHead();
        int kvBlocks = layouts.first().kvBlocks();
        for (int st = 0; st < plan.steps(); st++) {
            int p = plan.parameter(st);
            if (p < 0) continue;
            Tensor d = dParameters.get(p);
            for (int h = 0; h < heads; h++) {
                for (int bucket = 0; bucket < plan.bucketCount(st); bucket++) {
                    float sum = 0f;
                    for (int b = 0; b < batch; b++) {
                        for (int kb = 0; kb < kvBlocks; kb++) sum += call.modPartials[call.partialOffset(st, b, h / perKv, kb, h % perKv) + bucket];
                    }
                    d.set(sum, h, bucket);
                }
            }
        }
    }

    private void backward(AttentionCall call) {
        HeadLayouts layouts = call.layouts;
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

    /**
     * Split-KV decode: every (split, key/value head) item in parallel, each into its own partial
     * slot, then every (sequence, key/value head) combines its splits in split order. The splits
     * are fixed by the page size, so the result is the same for any thread count.
     */
    @Override
    public final void pagedAttention(Tensor q, Tensor keyPool, Tensor valuePool, int[][] pageTables, io.tessera.pattern.DecodePlan plan,
                                     long[] pageGenerations, float scale, Tensor out, Tensor lse) {
        // The pools are read in place: the write record is not needed.
        DecodeCall call = DecodeCall.of(this, q, keyPool, valuePool, pageTables, plan, scale, out, lse);
        try {
            run(call.items(), call.itemTask, call.segments);
            run(Math.multiplyExact(call.batch, call.kvHeads), call.combineTask, call.segments);
            call.throwIfScoresOverflowed();
        } finally {
            call.release();
        }
    }

    @Override
    public final void gemm(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta) {
        GemmCall call = GemmCall.ofHalfStorage(a, transposeA, b, transposeB, c, alpha, beta);
        run(gemmItems(call), item -> gemmItem(call, item), call.a(), call.b(), call.c());
    }

    @Override
    public final void forEachItem(int count, java.util.function.IntConsumer task, java.lang.foreign.MemorySegment... touched) {
        if (count < 0) throw new IllegalArgumentException("count must be >= 0, got " + count);
        if (task == null) throw new NullPointerException("task");
        run(count, task::accept, touched);
    }

    private void run(int count, WorkerPool.ItemTask task, java.lang.foreign.MemorySegment... touched) {
        if (threads == 1) {
            try {
                for (int i = 0; i < count; i++) task.run(i);
            } finally {
                ThreadScratch.trimCurrentThread();
            }
        } else {
            WorkerPool.of(threads).forEach(count, task, touched);
        }
    }

    @Override
    public String toString() { return name() + " (" + description() + ")"; }
}
