package io.tessera.backend;

import io.tessera.layout.HeadLayouts;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.Tensor;

/**
 * A device that runs Tessera's kernels. Implementations register through
 * {@link java.util.ServiceLoader} ({@code provides io.tessera.backend.Backend}); the engine ships
 * {@code scalar} (the readable reference) and {@code simd} (Vector API, multi-threaded);
 * {@code tornado-kernels} adds {@code tornado}.
 *
 * <p>Every operation writes into caller-supplied tensors: nothing is allocated per call on the
 * hot path beyond per-thread scratch that backends keep and reuse.
 */
public interface Backend {

    /** The backend called {@code name} ("scalar", "simd", "tornado", …); throws naming the known ones. */
    static Backend named(String name) { return BackendRegistry.named(name); }

    /** The highest-priority available backend; logs once which one and why. */
    static Backend best() { return BackendRegistry.best(); }

    /** Every registered backend that can run here, best first. */
    static java.util.List<Backend> available() { return BackendRegistry.available(); }

    /** Stable id: "scalar", "simd", "tornado". */
    String name();

    /** How this backend is configured and why, e.g. "Vector API, 512-bit species, 2 threads". */
    String description();

    /** Whether it can run here (the Vector API module present, a device found, …). */
    boolean isAvailable();

    /** Preference among available backends: {@code best()} picks the highest. */
    int priority();

    /** Query block size this backend's attention kernel is fastest with; layouts are compiled at it. */
    int preferredBlockQ();

    /** Key block size this backend's attention kernel is fastest with. */
    int preferredBlockKV();

    /** A backend of the same kind using {@code threads} worker threads (≥ 1). */
    Backend withThreads(int threads);

    /**
     * Fused block-sparse attention with an online softmax:
     * {@code out[b,h,i,:] = Σ_j softmax_j(scale·q_i·k_j) v_j} over the pairs the layout of head
     * {@code h} allows. q {@code [B,H,Nq,D]}, k {@code [B,Hkv,Nkv,D]}, v {@code [B,Hkv,Nkv,Dv]},
     * out {@code [B,H,Nq,Dv]}, lse {@code [B,H,Nq]} or null. Rows with no allowed key get 0 and
     * lse −∞.
     */
    void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse);

    /**
     * The gradients of {@link #attention} (FlashAttention-2 style: nothing n×n is stored; each tile's
     * probabilities are recomputed from {@code lse}). Given the forward's inputs, its output
     * {@code out} and log-sum-exp {@code lse}, and the loss gradient {@code dOut} ({@code [B,H,Nq,Dv]}),
     * writes {@code dq} {@code [B,H,Nq,D]}, {@code dk} {@code [B,Hkv,Nkv,D]} and {@code dv}
     * {@code [B,Hkv,Nkv,Dv]} (overwritten, not accumulated into). With grouped-query heads, dk and dv
     * sum over the query heads that share a key/value head. Rows with no allowed key (lse −∞) give
     * zero gradients; keys no query attends get dk = dv = 0. Deterministic for any thread count: no
     * gradient is accumulated by more than one thread.
     *
     * @throws UnsupportedOperationException if this backend has no backward pass
     */
    default void attentionBackward(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse,
                                   Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        throw new UnsupportedOperationException("backend '" + name() + "' has no attention backward pass; use the 'simd' or 'scalar' backend");
    }

    /**
     * {@link #attention} with a score modifier applied to every score before the softmax (null: none).
     * Backends that cannot run modifiers reject them here, naming the backend.
     */
    default void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, ScoreMod mod, Tensor out, Tensor lse) {
        if (mod == null) {
            attention(q, k, v, layouts, scale, out, lse);
            return;
        }
        throw new UnsupportedOperationException("backend '" + name() + "' does not run score modifiers (got " + mod + "); use the 'simd' or 'scalar' backend");
    }

    /**
     * {@link #attentionBackward} through a score modifier (null: none): also writes the gradients of
     * the modifier's learnable tensors into {@code dParameters}, one per {@link ScoreMod#parameters}
     * entry and shaped like it (overwritten), deterministically for any thread count.
     *
     * @throws UnsupportedOperationException if this backend cannot, or the modifier declares no derivative
     */
    default void attentionBackward(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, ScoreMod mod, Tensor out, Tensor lse,
                                   Tensor dOut, Tensor dq, Tensor dk, Tensor dv, java.util.List<Tensor> dParameters) {
        if (mod == null) {
            attentionBackward(q, k, v, layouts, scale, out, lse, dOut, dq, dk, dv);
            return;
        }
        throw new UnsupportedOperationException("backend '" + name() + "' does not run score modifiers (got " + mod + "); use the 'simd' or 'scalar' backend");
    }

    /**
     * {@code c = alpha·op(a)·op(b) + beta·c} on rank-2 tensors with unit-stride rows, where
     * {@code op(x)} is {@code x} or its transpose. With {@code beta == 0} c's old contents are ignored
     * (NaNs included).
     */
    void gemm(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta);

    /**
     * Runs {@code task.accept(i)} for every i in [0, count), independent items, on this backend's
     * worker threads (the caller's included), and returns when all are done: how operators built
     * from {@link #gemm} (the linear-time variants) run their heads in parallel. Items may run in
     * any order on any thread, so an item's result must not depend on which; a task must call
     * kernels on {@code withThreads(1)}, not on this backend (its threads are busy with the items).
     * {@code touched} are the caller's segments the tasks read or write: when one of them is
     * confined to the calling thread, every item runs on the caller. This default runs them in order.
     */
    default void forEachItem(int count, java.util.function.IntConsumer task, java.lang.foreign.MemorySegment... touched) {
        if (count < 0) throw new IllegalArgumentException("count must be >= 0, got " + count);
        if (task == null) throw new NullPointerException("task");
        for (int i = 0; i < count; i++) task.accept(i);
    }
}
